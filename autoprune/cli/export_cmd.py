"""``autoprune export``: a (pruned) checkpoint -> ONNX, safe weights, policy, measured latency."""

from __future__ import annotations

import argparse

from autoprune.budget import MEASURED_TOLERANCE
from autoprune.cli.common import add_latency_args, add_overwrite_arg, latency_settings, prepare_out
from autoprune.onnx_export import EXPORTERS
from autoprune.workflow import export_stage


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model as ONNX + weights and measure its latency")
    p.add_argument("checkpoint", help="model.pt from apply or finetune")
    p.add_argument("--model", default=None, metavar="FILE.py:FACTORY",
                   help="the factory the checkpoint names, when it is your code: naming it consents to running it")
    p.add_argument("--exporter", default="torchscript", choices=EXPORTERS)
    add_latency_args(p, "timing the exported model")
    p.add_argument("--out", default="runs/export", help="output folder")
    add_overwrite_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = latency_settings(args)
    out = prepare_out(args.out, overwrite=args.overwrite, finished=("model.onnx", "model.pt"))
    s = export_stage(args.checkpoint, out, settings, args.exporter)
    print(report(s, str(out)))
    return 0


def report(s: dict, out: str) -> str:
    """One line: measured latency next to the dense latency and the budget, with the verdict."""
    provider = s.get("latency_settings", {}).get("provider", "CPUExecutionProvider")
    line = f"exported {out}/model.onnx: {s['latency_ms']:.4f} ms measured (ONNX Runtime {provider}"
    line += f", dense {s['dense_latency_ms']:.4f} ms" if s.get("dense_latency_ms") is not None else ""
    if s.get("budget_ms") is None:
        return line + ")"
    verdict = "within" if s["within_budget_tolerance"] else "OVER"
    tolerance = f"{verdict} budget + {MEASURED_TOLERANCE * 100:.0f} %"
    if s.get("budget_judged_by") == "share_of_dense":
        line += (f" timed in the same passes): {s['share_of_dense']:.1%} of the dense model against a budget of "
                 f"{s['budget_share_of_dense']:.1%}: {s['share_over_budget']:.2f}x, {tolerance} (in ms: "
                 f"{s['budget_ms']:.4f} ms budget, {s['latency_over_budget']:.2f}x on this machine's speed now)")
    else:
        line += f"), budget {s['budget_ms']:.4f} ms: {s['latency_over_budget']:.2f}x, {tolerance}"
        if not s["within_budget_tolerance"] and s.get("share_of_dense") is not None:
            line += (f"; {s['share_of_dense']:.0%} of the dense model timed at another time, budget "
                     f"{s['budget_share_of_dense']:.0%}")
    if not s["within_budget_tolerance"]:
        line += (" (a busy machine or a latency-table miss: re-time it with 'autoprune export'; if it stays "
                 "over, search again with a budget tighter by that factor)")
    return line
