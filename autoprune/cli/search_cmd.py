"""``autoprune search``: find per-group pruning ratios that meet a budget (RL agent or baseline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoprune.agents import SEED_RULES, list_searchers, parse_overrides
from autoprune.cli.common import command_line, ensure_writable_dir
from autoprune.cli.loading import add_data_args, add_model_args, model_source
from autoprune.data import parse_augment
from autoprune.envs import BUDGET_RULES
from autoprune.search import SearchConfig, SearchRun

D = SearchConfig()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search pruning ratios for a budget (writes a run folder)")
    add_search_args(p)
    p.add_argument("--out", default=D.out, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.set_defaults(func=run)


def add_search_args(p: argparse.ArgumentParser) -> None:
    """Every search setting but the output folder (shared with ``autoprune pipeline``)."""
    p.add_argument("--config", default=None, metavar="FILE.yaml",
                   help="settings from a YAML file named as in a run's config.yaml; options given on the "
                        "command line win")
    add_model_args(p, default=D.model)
    add_data_args(p)
    p.add_argument("--score", default=None, metavar="FILE.py:FUNCTION",
                   help="score candidates with FUNCTION(model, batches) -> float, higher is better (default: accuracy)")
    p.add_argument("--loss", default=None, metavar="FILE.py:FUNCTION",
                   help="training loss FUNCTION(output, target) for the short fine-tunes (default: cross-entropy)")
    p.add_argument("--cost-model", default=D.cost_model,
                   help="lut (profiled on this machine when no --table), flops, roofline, ort-measured, or a plug-in")
    p.add_argument("--table", default=None, help="latency table CSV for --cost-model lut")
    p.add_argument("--provider", default=None, metavar="NAME",
                   help="ONNX Runtime execution provider that profiles and times (cpu, cuda, tensorrt, openvino, "
                        "coreml, ...; default: cpu)")
    p.add_argument("--latency-threads", type=int, default=D.latency_threads,
                   help="ONNX Runtime threads when profiling and timing (and exporting, in pipeline)")
    p.add_argument("--latency-batch", type=int, default=D.latency_batch, help="batch size latency is measured at")
    p.add_argument("--hardware-profile", default=None,
                   help="device class for --cost-model roofline (cortex-a53, ..., or a YAML file)")
    p.add_argument("--budget", default=D.budget, help="fraction of dense (50%% or 0.5) or absolute (0.15ms)")
    p.add_argument("--agent", default=D.agent, help=f"one of {', '.join(list_searchers())}")
    p.add_argument("--preset", default=D.preset,
                   help="hyper-parameter preset of the agent (quick: smoke tests only, too short to learn)")
    p.add_argument("--agent-param", action="append", default=[], metavar="KEY=VALUE",
                   help="override one preset hyper-parameter (repeatable)")
    p.add_argument("--episodes", type=int, default=D.episodes, help="candidates evaluated (seed rules included)")
    p.add_argument("--seed", type=int, default=D.seed, help="random seed (same seed: same history)")
    p.add_argument("--n-envs", type=int, default=D.n_envs,
                   help="score candidates in this many parallel worker processes (SB3 agents)")
    p.add_argument("--val-size", type=int, default=D.val_size, help="validation images per candidate")
    p.add_argument("--bn-batches", type=int, default=D.bn_batches, help="BN recalibration batches")
    p.add_argument("--eval-mode", default=D.eval_mode, choices=["physical", "masked"],
                   help="score candidates on a pruned copy (default) or with masks on the dense model")
    p.add_argument("--min-ratio", type=float, default=D.min_ratio, help="least share of a group pruned")
    p.add_argument("--max-ratio", type=float, default=D.max_ratio, help="largest share of a group pruned")
    p.add_argument("--round-to", type=int, default=D.round_to, help="keep channel counts a multiple of this")
    p.add_argument("--importance", default=D.importance, help="l1, l2, bn_scale or taylor")
    p.add_argument("--reward", default=D.reward, help="accuracy, amc or penalty")
    p.add_argument("--budget-rule", default=D.budget_rule, choices=list(BUDGET_RULES),
                   help="project: each finished proposal is projected onto the budget (no position bias); "
                        "wall: AMC's per-step action wall")
    p.add_argument("--seeds", nargs="*", default=D.seeds, metavar="RULE",
                   help=f"one-shot rules played as the first episodes ({', '.join(SEED_RULES)}; none: --seeds)")
    p.add_argument("--rerank-top", type=int, default=D.rerank_top,
                   help="after the search, fine-tune this many best candidates briefly and keep the best "
                        "by that second score (0: off)")
    p.add_argument("--rerank-steps", type=int, default=D.rerank_steps, help="SGD steps of that short fine-tune")
    p.add_argument("--verify-top", type=int, default=D.verify_top,
                   help="after the search, time this many best candidates here and keep the best within "
                        "budget (lut tables profiled on this machine; 0: off)")


def config_from_args(args: argparse.Namespace, out: str | None = None) -> SearchConfig:
    """The run's settings: from the run folder's config.yaml when resuming, else from the arguments
    (and ``--config FILE`` for those the command line leaves at their defaults). ``out``: the
    folder a pipeline gives its search."""
    pipeline_folder = out is not None
    out = out or args.out
    if args.resume and (out == args.out or (Path(out) / "config.yaml").is_file()):
        config = SearchConfig.load(Path(out) / "config.yaml")
        if Path(config.out).resolve() != Path(out).resolve():  # a copied or moved run folder
            print(f"note: {out}/config.yaml names the folder {config.out}; resuming in {out}, the folder given")
        config.out = str(out)  # the folder the user names is the one read and written
        if args.episodes != D.episodes:
            config.episodes = args.episodes  # a resumed run may be extended
        return config.validate()
    source = model_source(args)
    parse_augment(getattr(args, "augment", None))  # used by pipeline's fine-tuning: refused here, before any work
    config = SearchConfig(
        model=source.ref, model_args=source.args, weights=args.weights,
        input_shape=list(source.input_shape) if source.input_shape else None, data=args.data, data_dir=args.data_dir,
        score=args.score, loss=args.loss, torch_device=args.torch_device, cost_model=args.cost_model,
        table=args.table, hardware_profile=args.hardware_profile, provider=args.provider,
        latency_threads=args.latency_threads, latency_batch=args.latency_batch, budget=args.budget,
        agent=args.agent, preset=args.preset, agent_params=parse_overrides(args.agent_param),
        episodes=args.episodes, seed=args.seed, n_envs=args.n_envs, val_size=args.val_size, bn_batches=args.bn_batches, eval_mode=args.eval_mode,
        min_ratio=args.min_ratio, max_ratio=args.max_ratio, round_to=args.round_to,
        importance=args.importance, reward=args.reward, exclude=args.exclude, budget_rule=args.budget_rule,
        seeds=list(args.seeds), rerank_top=args.rerank_top, rerank_steps=args.rerank_steps,
        verify_top=args.verify_top, out=out)
    if args.config:  # the file's value for every setting the command line left at its default
        for name, value in SearchConfig.read_settings(args.config).items():
            if getattr(config, name) == getattr(D, name) and not (name == "out" and pipeline_folder):
                setattr(config, name, value)
    return config.validate()


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    ensure_writable_dir(config.out)
    try:
        summary = SearchRun(config, command_line()).run(resume=args.resume)
    except KeyboardInterrupt:
        print(f"autoprune: interrupted; every finished episode is in {config.out}/history.csv; continue "
              f"with: autoprune search --resume --out {config.out}")
        return 130
    best = summary["best"]
    if best is None:
        print(f"no feasible candidate found; see {config.out}/history.csv")
        return 1
    cost = f"{best['latency_ms']:.4f} ms" if best.get("latency_ms") is not None else f"{best['flops'] / 1e6:.2f} M MACs"
    print(f"best: val {summary.get('score', 'accuracy')} {best['accuracy']:.4f} at {cost} (budget {summary['budget']['value']:.4g} "
          f"{summary['budget']['metric']}); policy saved to {config.out}/best_policy.json")
    check = summary.get("verification") or {}
    if check.get("skipped"):
        print(f"not timed on this machine: {check['skipped']}")
    elif check.get("chosen_measured_ms") is not None:
        print(f"timed on this machine: {check['chosen_measured_ms']:.4f} ms for the best policy, "
              f"{check['candidates']} best candidates in {config.out}/verification.csv")
    print(f"time: {summary['wall_s']:.0f} s total, scoring {summary['scoring_s']:.0f} s, "
          f"environment {summary['env_s']:.1f} s, agent {summary['agent_s']:.1f} s")
    return 0
