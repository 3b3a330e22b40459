"""search -> apply -> fine-tune -> export in one run folder; resumable stage by stage.

Folder: ``search/`` (a search run folder), ``apply/``, ``finetune/``, ``export/`` (each as written by
its stage), ``pipeline_config.yaml`` (the fine-tune settings) and ``pipeline.json`` (the headline numbers). With ``resume`` an interrupted search is
continued and finished stages are skipped.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from autoprune.atomic import read_json, write_json_atomic, write_text_atomic
from autoprune.data import Splits, load_splits
from autoprune.errors import ConfigError
from autoprune.finetune import FinetuneConfig
from autoprune.inputs import signature_from_json
from autoprune.latency import LatencySettings
from autoprune.progress import bar_disabled
from autoprune.records import PipelineRecord
from autoprune.scoring import load_loss, load_score
from autoprune.search import SearchConfig, SearchRun
from autoprune.search.history import count_episodes
from autoprune.workflow.stages import apply_stage, export_stage, finetune_stage
from autoprune.yaml_io import dump_yaml, load_yaml


def run_pipeline(search: SearchConfig, ft: FinetuneConfig, out: str | Path, distill: bool = False,
                 settings: LatencySettings = LatencySettings(), resume: bool = False, command: str = "",
                 splits: Splits | None = None, progress: bool = True) -> PipelineRecord:
    """Run every stage not finished yet; returns (and writes) ``pipeline.json``.

    ``splits``: data as an object (Python API) instead of by the config's name.
    """
    out = Path(out)
    search.out = str(out / "search")
    done = count_episodes(out / "search" / "history.csv")
    if done and not resume:
        raise ConfigError(f"{out} already holds a pipeline run; pass --resume to continue it or choose another --out")
    ft, distill = stage_settings(out, ft, distill, resume)
    if splits is None:
        splits = load_splits(search.data, search.data_dir, input_shape=signature_from_json(search.input_shape, "the settings"))
    found = None  # the best policy, in memory when the search ran in this process
    if done < search.episodes:
        run = SearchRun(search, command, splits, progress)
        run.run(resume=done > 0)
        found = run.policy
    policy = out / "search" / "best_policy.json"
    if found is None and not policy.is_file():
        raise ConfigError(f"the search found no feasible policy (see {out / 'search' / 'history.csv'}); "
                          f"loosen --budget or --max-ratio")
    source = search.model_source()
    score, score_name = load_score(search.score)
    say = (lambda line: None) if bar_disabled(progress) else tqdm.write  # a line per stage, also in a log
    say("apply: removing the best policy's channels, then scoring the dense and pruned models on the test split")
    apply = _stage(out / "apply" / "apply.json", resume, lambda: apply_stage(
        policy, source, splits, out / "apply", require_weights=search.data != "synthetic", score=score, policy=found))
    say(f"fine-tune: {ft.epochs} epoch{'s' if ft.epochs != 1 else ''}" + (" with distillation from the dense model" if distill else ""))
    tuned = _stage(out / "finetune" / "finetune.json", resume, lambda: finetune_stage(
        out / "apply" / "model.pt", splits, ft, out / "finetune", teacher_weights=source.weights,
        distill=distill, progress=progress, score=score, loss=load_loss(search.loss)))
    say("export: ONNX, checked against torch, timed on this machine next to the dense model")
    export = _stage(out / "export" / "export.json", resume,
                    lambda: export_stage(out / "finetune" / "model.pt", out / "export", settings))
    summary = {"score": score_name, "dense_test_acc": apply["dense_test_acc"], "pruned_test_acc_bn": apply["pruned_test_acc_bn"],
               "finetuned_test_acc": tuned["test_acc"], "finetune_epochs": ft.epochs,
               "params": [apply["dense_params"], apply["pruned_params"]], **{k: export.get(k) for k in (
                   "latency_ms", "dense_latency_ms", "budget_ms", "latency_over_budget", "within_budget_tolerance",
                   "share_of_dense", "budget_share_of_dense", "share_over_budget", "budget_judged_by")}}
    write_json_atomic(out / "pipeline.json", summary)
    return summary


STAGE_SETTINGS = "pipeline_config.yaml"  # the fine-tune settings, kept so --resume uses them


def stage_settings(out: Path, ft: FinetuneConfig, distill: bool, resume: bool) -> tuple[FinetuneConfig, bool]:
    """The fine-tune settings of this run: the interrupted run's (from ``pipeline_config.yaml``) when
    resuming, else the given ones, written there first (the search keeps its own in ``config.yaml``)."""
    path = out / STAGE_SETTINGS
    if resume and path.is_file():
        try:
            data = load_yaml(path.read_text(), str(path))
            saved = data["finetune"]
            saved["augment"] = tuple(saved["augment"]) if isinstance(saved.get("augment"), list) else saved.get("augment")
            restored = (FinetuneConfig(**saved).check(), bool(data["distill"]))
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path} is damaged ({type(exc).__name__}); delete it to resume with the settings "
                              f"of this command") from None
        except ConfigError as exc:
            raise ConfigError(f"{path} holds a bad setting ({exc}); delete it to resume with the settings of this "
                              f"command") from None
        if restored != (ft, distill):
            tqdm.write(f"resuming with the fine-tune settings of the interrupted run ({path}); the command "
                       f"line's are not used")
        return restored
    plain = asdict(ft)
    plain["augment"] = list(ft.augment) if isinstance(ft.augment, tuple) else ft.augment
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, dump_yaml({"finetune": plain, "distill": distill}))
    return ft, distill


def _stage(marker: Path, resume: bool, run) -> dict[str, Any]:
    """``run()`` unless resuming and ``marker`` (the stage's summary) already exists."""
    if resume and marker.is_file():
        tqdm.write(f"skipping {marker.parent.name}: already done ({marker})")
        return read_json(marker)
    return run()
