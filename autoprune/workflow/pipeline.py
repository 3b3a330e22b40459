"""search -> apply -> fine-tune -> export in one run folder; resumable stage by stage.

Folder: ``search/`` (a search run folder), ``apply/``, ``finetune/``, ``export/`` (each as written by
its stage) and ``pipeline.json`` (the headline numbers). With ``resume`` an interrupted search is
continued and finished stages are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from autoprune.atomic import read_json, write_json_atomic
from autoprune.data import Splits, load_splits
from autoprune.errors import ConfigError
from autoprune.finetune import FinetuneConfig
from autoprune.latency import LatencySettings
from autoprune.records import PipelineRecord
from autoprune.scoring import load_loss, load_score
from autoprune.search import SearchConfig, SearchRun
from autoprune.search.history import read_history
from autoprune.workflow.stages import apply_stage, export_stage, finetune_stage


def run_pipeline(search: SearchConfig, ft: FinetuneConfig, out: str | Path, distill: bool = False,
                 settings: LatencySettings = LatencySettings(), resume: bool = False, command: str = "",
                 splits: Splits | None = None, progress: bool = True) -> PipelineRecord:
    """Run every stage not finished yet; returns (and writes) ``pipeline.json``.

    ``splits``: data as an object (Python API) instead of by the config's name.
    """
    out = Path(out)
    search.out = str(out / "search")
    if splits is None:
        splits = load_splits(search.data, search.data_dir, input_shape=search.input_shape)
    done = len(read_history(out / "search" / "history.csv"))
    if done and not resume:
        raise ConfigError(f"{out} already holds a pipeline run; pass --resume to continue it or choose another --out")
    if done < search.episodes:
        SearchRun(search, command, splits, progress).run(resume=done > 0)
    policy = out / "search" / "best_policy.json"
    if not policy.is_file():
        raise ConfigError(f"the search found no feasible policy (see {out / 'search' / 'history.csv'}); "
                          f"loosen --budget or --max-ratio")
    source = search.model_source()
    score, _ = load_score(search.score)
    apply = _stage(out / "apply" / "apply.json", resume, lambda: apply_stage(
        policy, source, splits, out / "apply", require_weights=search.data != "synthetic", score=score))
    tuned = _stage(out / "finetune" / "finetune.json", resume, lambda: finetune_stage(
        out / "apply" / "model.pt", splits, ft, out / "finetune", teacher_weights=source.weights,
        distill=distill, progress=progress, score=score, loss=load_loss(search.loss)))
    export = _stage(out / "export" / "export.json", resume,
                    lambda: export_stage(out / "finetune" / "model.pt", out / "export", settings))
    summary = {"dense_test_acc": apply["dense_test_acc"], "pruned_test_acc_bn": apply["pruned_test_acc_bn"],
               "finetuned_test_acc": tuned["test_acc"], "finetune_epochs": ft.epochs,
               "params": [apply["dense_params"], apply["pruned_params"]], **{k: export.get(k) for k in (
                   "latency_ms", "dense_latency_ms", "budget_ms", "latency_over_budget", "within_budget_tolerance")}}
    write_json_atomic(out / "pipeline.json", summary)
    return summary


def _stage(marker: Path, resume: bool, run) -> dict[str, Any]:
    """``run()`` unless resuming and ``marker`` (the stage's summary) already exists."""
    if resume and marker.is_file():
        tqdm.write(f"skipping {marker.parent.name}: already done ({marker})")
        return read_json(marker)
    return run()
