"""Write results/README.md: one line per results folder with what it holds, its command, commit,
date and machine (read from the folder's command.txt, machine.json and git history)."""

from __future__ import annotations

import json
import subprocess

from common import ROOT

WHAT = {
    "alignment_effect": "latency of widths on and off ONNX Runtime's 16-channel blocks",
    "candidate_ceiling_resnet20_30pct": "31 searched architectures at 30 %, each fine-tuned as the protocol does: the ceiling above uniform, and which score predicts it",
    "channel_bench/mobilenet": "Channel-Bench-Macro MobileNet space: regret of every searcher, 300 noisy queries, 10 seeds, FLOPs budgets 30/50/70 %",
    "channel_bench/resnet": "the same on the ResNet space",
    "channel_rounding": "latency at channel steps of 1, 4, 8, 16",
    "cost_fidelity": "lookup table vs measured latency, 100 random policies per model (steps of 8)",
    "cost_fidelity_round4": "the same at steps of 4",
    "cost_fidelity_seed8": "the same with another seed",
    "cost_fidelity_vit": "the same for the shipped ViT, attention priced per head count (100 random policies)",
    "eval_mode": "candidate scoring: physically pruned copy vs masked dense model",
    "finetune_resnet20": "a DDPG policy applied, fine-tuned 8 epochs with distillation, exported",
    "front_resnet20": "one budget-conditioned search (30-70 %) vs separate searches; the front as one dynamic model",
    "foundation": "groups, masked vs physical outputs, uniform 50 % speed-up",
    "pruning_modes": "the guide's MLPs: one-shot (per-layer, global), gradual, iterative, lottery ticket vs random re-init, structured (magnitude, sensitivity, searched) at 50-98 %; accuracy, sizes, latency",
    "guide_mlp": "the pruning guide's run: the Keras MLP 784-128-64-10, unstructured 0 -> 50 % on TF-MOT's polynomial schedule, stripped; accuracy, gzip size, latency",
    "vit_fmnist": "the head-to-head protocol on the shipped ViT (heads, MLP and hidden widths) at 30 % and 50 %",
    "head_to_head": "head-to-head, protocol profile: 4 epochs with distillation, 3 seeds (runs.csv; every searcher at 3 seeds in every cell the tool accepts)",
    "head_to_head_1epoch": "head-to-head, earlier searchers, 1 fine-tuning epoch on 20k images",
    "head_to_head_quick": "head-to-head smoke run, ResNet-20",
    "head_to_head_quick_mobilenetv2": "head-to-head smoke run, MobileNetV2-small",
    "head_to_head_quick_mobilenetv2_verified": "the same with on-machine verification",
    "main_command": "the README's main command from a fresh clone (pipeline at 50 % latency)",
    "main_job_searchers": "the main job's search per searcher (AMC-DDPG, evolution, Thompson sampling; ResNet-20, 50 % latency, 300 episodes)",
    "iterative_resnet20": "one-shot vs gradual vs iterative pruning, one-shot sparsity vs IMP, ResNet-20",
    "outside_structures": "39 structures nobody on the project wrote (Torch-Pruning's test models, common blocks, Hugging Face configs): search, apply, fine-tune, export; budget by an independent count",
    "own_model": "the whole pipeline on a model and data that are not built in (a CNN in a file, Fashion-MNIST as PNG folders)",
    "proxy_quality": "search scores (BN-recalibrated; short fine-tune) vs accuracy after fine-tuning",
    "supernet_proxy": "supernet scores (1, 2, 4 epochs) vs accuracy after the protocol fine-tune, 31 ResNet-20 architectures at 30 %",
    "memory_long_search": "resident memory over a 2,000-episode search",
    "parallel_eval": "a 100-candidate search scored in-process, on 1-2 worker processes and on 1-2 Ray actors",
    "parallel_n_envs": "SB3 candidate scoring in 1 vs 2 environment worker processes (--n-envs)",
    "search_resnet20": "AMC-DDPG vs random search, ResNet-20, 50 % latency, 300 episodes",
    "sensitivity_resnet20": "per-group sensitivity of the shipped ResNet-20",
    "train_mobilenetv2_small": "training the shipped MobileNetV2-small",
    "train_resnet20": "training the shipped ResNet-20",
    "agent_diagnosis/mobilenet": "why the agents do not learn: reward, distinct architectures, projection, sigma and critic loss per 50 episodes (MobileNet table, 50 %)",
    "agent_diagnosis/resnet": "the same on the ResNet table",
    "agent_diagnosis/mobilenet_wall": "the same under AMC's per-step budget wall (AMC-DDPG and random search)",
    "channel_bench_evolution/mobilenet": "Thompson sampling, ROAR, regularized evolution, REINFORCE, AMC-DDPG, PPO, and PPO and AMC-DDPG with re-queries against random search, 20 seeds, 30/50/70 % (MobileNet table), paired at 200 queries",
    "channel_bench_evolution/resnet": "the same on the ResNet table",
    "channel_bench_repeats/mobilenet": "Thompson sampling, ROAR and AMC-DDPG with re-queries against random search after the three-repeat noise rule, 20 seeds (MobileNet table)",
    "channel_bench_repeats/resnet": "the same on the ResNet table",
    "channel_bench_five_repeats/mobilenet": "Thompson sampling against random search after the five-repeat noise rule, 20 seeds (MobileNet table)",
    "channel_bench_five_repeats/resnet": "the same on the ResNet table",
    "channel_bench_seeds_20_39/mobilenet": "a replication on seeds 20-39: Thompson sampling against random search, paired at 200 queries (MobileNet table); the folder's pooled_0_39.md: seeds 0-39 together",
    "channel_bench_seeds_20_39/resnet": "the same on the ResNet table",
    "warm_start/mobilenet": "a new budget (40 %, 60 %) in 50 queries, warm-started from a 30/50/70 % search and cold, 10 seeds (MobileNet table)",
    "warm_start/resnet": "the same on the ResNet table",
    "warm_start_thompson/mobilenet": "the same warm start with Thompson sampling (MobileNet table)",
    "warm_start_thompson/resnet": "the same on the ResNet table",
    "requery_share": "where Thompson sampling loses at 200 queries (finding or choosing) and its re-query share, both tables, seeds 100-109; PPO's re-query settings; AMC-DDPG with re-queries as a check",
    "train_vit_tiny": "training the shipped ViT-tiny (90.78 % test accuracy)",
}


INDEX = "## Every folder"  # results/README.md keeps what is written above this heading (the headline numbers)


def main() -> None:
    readme = ROOT / "results" / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    head = text[:text.index(INDEX)].rstrip("\n").splitlines() if INDEX in text else ["# Results"]
    lines = [*head, "", INDEX, "", "Each folder holds what a benchmark script wrote; `command.txt` is the command (run from the",
             "repository root), `machine.json` the machine and date. Commit: the last one that changed the folder's results.", "",
             "| folder | what | command | commit | date | machine |", "|---|---|---|---|---|---|"]
    tops = sorted(p for p in (ROOT / "results").iterdir() if p.is_dir())
    folders = [sub for top in tops for sub in ([top] if (top / "command.txt").is_file() or not any(
        (s / "command.txt").is_file() for s in top.iterdir() if s.is_dir()) else sorted(
        s for s in top.iterdir() if (s / "command.txt").is_file()))]
    for folder in folders:
        name = str(folder.relative_to(ROOT / "results"))
        unrecorded = "see its README" if (folder / "README.md").is_file() else "not recorded"
        command = (folder / "command.txt").read_text().split("#")[0].strip() if (folder / "command.txt").is_file() else ""
        machine = json.loads((folder / "machine.json").read_text()) if (folder / "machine.json").is_file() else {}
        notes = [f":(exclude){folder / n}" for n in ("README.md", "command.txt")]  # the results, not their notes
        commit, day = subprocess.run(["git", "log", "-1", "--format=%h %cs", "--", str(folder), *notes], cwd=ROOT,
                                     capture_output=True, text=True).stdout.split() or ["uncommitted", ""]
        date = str(machine["date"])[:10] if "date" in machine else f"{day} (commit)"
        where = f"{machine['cpu']}, {machine['cores']} cores" if "cpu" in machine else unrecorded
        lines.append(f"| [{name}]({name}/) | {WHAT.get(name, '')} | {f'`{command}`' if command else unrecorded} | "
                     f"{commit} | {date} | {where} |")
    readme.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
