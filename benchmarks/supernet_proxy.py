"""Does the supernet score rank candidates by their accuracy after the protocol's fine-tune?

Yardstick: the 31 ResNet-20 architectures at 30 % of its latency that
``results/candidate_ceiling_resnet20_30pct/`` fine-tuned as the head-to-head protocol does (their
mean final test accuracy over its seeds is the truth; no new fine-tune is needed). For each
supernet setting (``--epochs``, ``--sampled``) a supernet is trained as ``search --scorer supernet``
trains it (the search space and budget range of the protocol's searches: steps of 8, max ratio
0.9, budgets projected with the protocol's lookup table), then every candidate is scored the way a
search scores it (sliced, BN recalibrated on the search's fixed batches, validation accuracy; and
minus the validation loss) and timed. Spearman correlations with the final accuracy are written
to ``proxy.csv`` beside the ceiling study's own proxies (BN recalibration, short fine-tunes).

Writes ``results/supernet_proxy/`` (proxy.csv, scores.csv, supernets/ with each supernet's
record; a rerun reuses finished supernets and rows). Usage:
python benchmarks/supernet_proxy.py [--epochs 1 2 4] [--sampled 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch
from common import ROOT, result_dir
from scipy.stats import spearmanr

from autoprune.analysis import analyse_model
from autoprune.atomic import write_text_atomic
from autoprune.checkpoint import load_or_create, shipped_weights
from autoprune.costs import create_cost_model
from autoprune.data import load_splits
from autoprune.dynamic.supernet import SupernetScorer, SupernetSettings
from autoprune.evaluation import CandidateEvaluator
from autoprune.pruning import rank_channels
from autoprune.pruning.widths import WidthChoices
from autoprune.scoring import negative_loss
from autoprune.search.supernet import prepare_supernet

CEILING = ROOT / "results" / "candidate_ceiling_resnet20_30pct"
TABLE = ROOT / "results" / "head_to_head" / "tables" / "resnet20.csv"
MAX_RATIO, ROUND_TO, VAL_SIZE, BN_BATCHES, BUDGET = 0.9, 8, 2000, 5, 0.3


def truth() -> pd.DataFrame:
    """The ceiling study's candidates and their mean final test accuracy over its seeds."""
    candidates = pd.read_csv(CEILING / "candidates.csv")
    scores = pd.read_csv(CEILING / "scores.csv")
    final = scores[scores["seed"] >= 0].groupby("index")["test_ft"].mean()
    return candidates.assign(final=candidates["index"].map(final))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--sampled", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    out = result_dir("supernet_proxy")
    torch.set_num_threads(2)
    splits = load_splits("fashion-mnist")
    dense = load_or_create("resnet20", shipped_weights("resnet20"), require_weights=True).eval()
    analysis = analyse_model(dense, torch.zeros(1, 1, 28, 28))
    ranking = rank_channels(analysis, "l1", batches=splits.train(64, shuffle=False))
    n = len(analysis.groups)
    choices = WidthChoices.grid(analysis.groups, [0.0] * n, [MAX_RATIO] * n, ROUND_TO)
    cost = create_cost_model("lut", analysis, table=str(TABLE))
    evaluator = CandidateEvaluator(analysis, ranking, splits, VAL_SIZE, BN_BATCHES)
    cands = truth()
    rows_path = out / "scores.csv"
    rows = pd.read_csv(rows_path).to_dict("records") if rows_path.is_file() else []
    done = {(r["epochs"], r["sampled"]) for r in rows}

    def bn_seconds() -> float:
        """The first stage's cost per candidate, timed now on this machine (10 candidates)."""
        start = time.perf_counter()
        for kept in cands["kept"].head(10):
            evaluator(json.loads(kept))
        return (time.perf_counter() - start) / 10

    if rows:  # the settings finished before, published before the next one trains
        write_text_atomic(out / "proxy.csv", proxy_table(cands, pd.DataFrame(rows), bn_seconds()).to_csv(index=False))
    for epochs in args.epochs:
        if (epochs, args.sampled) in done:
            continue
        settings = SupernetSettings(epochs=epochs, sampled=args.sampled, seed=0)
        start = time.perf_counter()
        supernet = prepare_supernet(analysis, ranking, splits, cost, choices, settings, [BUDGET],
                                    out / "supernets" / f"e{epochs}-n{args.sampled}", dense, args.device)
        train_s = time.perf_counter() - start
        scorer = SupernetScorer(supernet, evaluator.bn_data, evaluator.val_data, BN_BATCHES)
        for row in cands.itertuples():
            kept = json.loads(row.kept)
            start = time.perf_counter()
            acc = scorer(kept)
            seconds = time.perf_counter() - start
            loss = negative_loss(supernet.set_widths(kept).eval(), evaluator.val_data)
            rows.append({"epochs": epochs, "sampled": args.sampled, "index": row.index, "supernet_acc": acc,
                         "supernet_neg_loss": loss, "seconds": round(seconds, 3), "train_s": round(train_s, 1)})
        write_text_atomic(rows_path, pd.DataFrame(rows).to_csv(index=False))
        print(f"supernet E={epochs} n={args.sampled}: trained in {train_s:.0f} s", flush=True)
        write_text_atomic(out / "proxy.csv", proxy_table(cands, pd.DataFrame(rows), bn_seconds()).to_csv(index=False))
    print((out / "proxy.csv").read_text())


def proxy_table(cands: pd.DataFrame, rows: pd.DataFrame, bn_seconds: float) -> pd.DataFrame:
    """One row per scorer and setting: Spearman with the final accuracy and seconds per candidate."""
    ceiling = json.loads((CEILING / "summary.json").read_text())["spearman_with_final"]
    table = [{"yardstick": "resnet20-30pct", "scorer": "bn (first stage)", "epochs": 0, "n": 0,
              "spearman": round(ceiling["search_score"], 3), "seconds_per_candidate": round(bn_seconds, 3)}]
    table += [{"yardstick": "resnet20-30pct", "scorer": f"short fine-tune {k.split('_')[1]} steps", "epochs": 0,
               "n": 0, "spearman": round(v, 3), "seconds_per_candidate": None}
              for k, v in ceiling.items() if k.startswith("short_")]
    final = cands.set_index("index")["final"]
    for (epochs, n), part in rows.groupby(["epochs", "sampled"]):
        for column, name in (("supernet_acc", "supernet accuracy"), ("supernet_neg_loss", "supernet -loss")):
            rho = spearmanr(part[column], part["index"].map(final)).statistic
            table.append({"yardstick": "resnet20-30pct", "scorer": name, "epochs": int(epochs), "n": int(n),
                          "spearman": round(float(rho), 3), "seconds_per_candidate": round(part["seconds"].mean(), 3),
                          "train_s": float(part["train_s"].iloc[0])})
    return pd.DataFrame(table)


if __name__ == "__main__":
    main()
