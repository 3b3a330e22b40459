"""``autoprune search``: find per-group pruning ratios that meet a budget (RL agent or baseline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoprune.agents import parse_overrides
from autoprune.cli.common import command_line, prepare_out
from autoprune.cli.loading import add_data_args, add_model_args, model_source
from autoprune.data import parse_augment
from autoprune.inputs import signature_json
from autoprune.search import SearchConfig, SearchRun
from autoprune.settings import add_settings, settings_from_args

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
    add_settings(p, SearchConfig)
    p.add_argument("--agent-param", action="append", default=[], metavar="KEY=VALUE",
                   help="override one preset hyper-parameter (repeatable)")


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
        **settings_from_args(SearchConfig, args), model=source.ref, model_args=source.args, weights=args.weights,
        input_shape=signature_json(source.input_shape), data=args.data, data_dir=args.data_dir,
        torch_device=args.torch_device, exclude=args.exclude, agent_params=parse_overrides(args.agent_param), out=out)
    if args.config:  # the file's value for every setting the command line left at its default
        for name, value in SearchConfig.read_settings(args.config).items():
            if getattr(config, name) == getattr(D, name) and not (name == "out" and pipeline_folder):
                setattr(config, name, value)
    return config.validate()


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    prepare_out(config.out, resume=args.resume)  # an earlier search there is refused by the run (--resume)
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
    print(f"best: val {summary.get('score', 'accuracy')} {best['score']:.4f} at {cost} (budget {summary['budget']['value']:.4g} "
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
