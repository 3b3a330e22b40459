"""Entry point: parses the sub-command and turns every known error into one line with exit code 2."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

from autoprune import __version__
from autoprune.errors import AutopruneError
from autoprune.outputs import scoring_output
from autoprune.references import CODE_OPTIONS, PLUGIN_OPTIONS, consent
from autoprune.run_folder import MARKER

COMMANDS = ("train_cmd", "analyse_cmd", "profile_cmd", "search_cmd", "apply_cmd", "finetune_cmd",
            "export_cmd", "sensitivity_cmd", "pipeline_cmd", "dynamic_cmd", "supernet_cmd")
EXAMPLES = {
    "train": ["autoprune train --model vgg_small --epochs 10 --out runs/vgg",
              "autoprune train --model my/net.py:build --data imagefolder:images --augment crop --out runs/mine"],
    "analyse": ["autoprune analyse --model mobilenetv2_small",
                "autoprune analyse --model my/net.py:build --model-args '{\"width\": 32}' --input-shape 3,224,224"],
    "profile": ["autoprune profile resnet20 --out tables/r20.csv",
                "autoprune profile my/net.py:build --input-shape 3,224,224 --provider cuda --out tables/mine.csv"],
    "search": ["autoprune search --budget 50% --out runs/r20-search",
               "autoprune search --agent cmaes --budget 30% --table tables/r20.csv --episodes 200 --out runs/r20-cma",
               "autoprune search --model my/net.py:build --data my/data.py:splits --score my/metrics.py:map50 "
               "--out runs/mine"],
    "apply": ["autoprune apply runs/r20-search/best_policy.json --out runs/r20-apply"],
    "finetune": ["autoprune finetune runs/r20-apply/model.pt --epochs 8 --distill --out runs/r20-ft"],
    "export": ["autoprune export runs/r20-ft/model.pt --out runs/r20-export"],
    "sensitivity": ["autoprune sensitivity --model resnet20 --out runs/r20-sens"],
    "dynamic": ["autoprune dynamic runs/s70/best_policy.json runs/s50/best_policy.json runs/s30/best_policy.json "
                "--out runs/dynamic"],
    "supernet": ["autoprune supernet --model resnet20 --budget 30% --epochs 2 --out runs/r20-supernet",
                 "autoprune search --scorer supernet --supernet runs/r20-supernet --budget 30% --out runs/r20-sn"],
    "pipeline": ["autoprune pipeline --out runs/resnet20-50pct",
                 "autoprune pipeline --resume --out runs/resnet20-50pct"],
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after every option; the examples epilog kept as written."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    import importlib

    parser = argparse.ArgumentParser(prog="autoprune", description=(
        "Find per-layer pruning ratios that meet a latency budget (RL search), apply them, fine-tune."))
    parser.add_argument("--version", action="version", version=f"autoprune {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="show warnings from the libraries too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"autoprune.cli.{name}").add_parser(sub)
    for name, command in sub.choices.items():
        command.formatter_class = _HelpFormatter
        command.epilog = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES.get(name, []))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = os.environ.get("TQDM_DISABLE")
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"  # read by autoprune.progress wherever a bar is made (workers too)
    try:
        return _run(args)
    finally:  # a caller running several commands in one process gets its environment back
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


def _run(args: argparse.Namespace) -> int:
    """The command, with its errors turned into one line and an exit code."""
    if not args.verbose:
        warnings.filterwarnings("ignore", category=UserWarning)
    out = getattr(args, "out", None)
    new_out = out is not None and not Path(out).exists()
    try:
        with consent(*(getattr(args, name, None) for name in (*CODE_OPTIONS, *PLUGIN_OPTIONS))), \
                scoring_output(getattr(args, "output", None)):  # what the user named runs; the output scored
            return int(args.func(args) or 0)
    except AutopruneError as exc:
        if new_out:
            _remove_if_empty(Path(out))  # a refused command leaves no folder behind
        print(f"autoprune: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as exc:  # disk full, folder removed mid-run: files already written are complete
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"autoprune: error: {one_line(str(exc.strerror or exc) + where)}; every file written before this is intact "
              f"(writes are atomic), free space or fix the path and rerun with --resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoprune: interrupted; everything finished so far is saved", file=sys.stderr)
        return 130


def one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\x1e``): a name a file gave (a fingerprint, a
    group) must not break an error message into several lines or drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--budget -5%`` -> ``--budget=-5%``: argparse reads a value that starts with '-' as an option
    and would say "expected one argument"; joined, the option's own check says what is wrong."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.match(r"-[\d.]", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` (made by this command) when nothing but run-folder markers was written into it."""
    try:
        if any(c.is_file() and c.name != MARKER for c in folder.rglob("*")):
            return
        for child in sorted(folder.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        folder.rmdir()
    except OSError:  # something was written: keep it
        pass


if __name__ == "__main__":
    sys.exit(main())
