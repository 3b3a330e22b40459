"""Entry point: parses the sub-command and turns every known error into one line with exit code 2."""

from __future__ import annotations

import argparse
import sys

from autoprune import __version__
from autoprune.errors import AutopruneError

COMMANDS = ("train_cmd", "analyse_cmd", "profile_cmd", "search_cmd", "apply_cmd", "finetune_cmd",
            "export_cmd", "sensitivity_cmd", "pipeline_cmd")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    import importlib

    parser = argparse.ArgumentParser(prog="autoprune", description=(
        "Find per-layer pruning ratios that meet a latency budget (RL search), apply them, fine-tune."))
    parser.add_argument("--version", action="version", version=f"autoprune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"autoprune.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AutopruneError as exc:
        print(f"autoprune: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as exc:  # disk full, folder removed mid-run: files already written are complete
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"autoprune: error: {exc.strerror or exc}{where}; every file written before this is intact "
              f"(writes are atomic), free space or fix the path and rerun with --resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoprune: interrupted; everything finished so far is saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
