"""The resolved settings of a search run, saved as ``config.yaml`` in its folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from autoprune.agents import (
    ALIASES,
    DEFAULT_SEEDS,
    SEED_RULES,
    WARM_STARTED,
    AgentParams,
    ParamValue,
    SB3Searcher,
    create_searcher,
    list_searchers,
)
from autoprune.atomic import write_text_atomic
from autoprune.budget import BudgetSpec
from autoprune.costs.registry import COST_MODELS
from autoprune.devices import check_provider, check_torch_device
from autoprune.dynamic.supernet import SupernetSettings
from autoprune.envs import BUDGET_RULES, create_reward
from autoprune.errors import ConfigError
from autoprune.inputs import InputSpec, signature_from_json
from autoprune.latency import LATENCY_BATCH_HELP, PROVIDERS_HELP, LatencySettings
from autoprune.limits import checked_file
from autoprune.model_source import ModelSource, parse_input_shape, parse_model_args
from autoprune.models import is_builtin
from autoprune.parallel import check_executor
from autoprune.pruning.importance import IMPORTANCES
from autoprune.pruning.ratios import DEFAULT_MAX_RATIO
from autoprune.pruning.widths import parse_widths
from autoprune.references import CODE_OPTIONS, canonical, require_consent
from autoprune.scoring import SCORE_HELP, load_loss, load_score
from autoprune.settings import check_settings, setting
from autoprune.yaml_io import dump_yaml, load_yaml, plain

MAX_SETTINGS_BYTES = 1024 * 1024
MAX_EPISODES = 10_000_000  # far beyond any search (AMC: 400); larger is a typo


DEFAULT_ROUND_TO = 8  # channel multiples when --round-to is not given (ONNX Runtime's CPU blocks)

DEFAULT_AGENT = "thompson"  # chosen by measurement: Channel-Bench-Macro and the README main job (docs/search.md)


@dataclass
class SearchConfig:
    """Everything that defines a search; a run folder's ``config.yaml`` reproduces it."""

    # The model and data: options shared with the other commands (autoprune.cli.loading).
    model: str = setting("resnet20", "a built-in name or path/to/file.py:factory / package.module:factory", cli=False)
    model_args: dict[str, Any] = setting(factory=dict, help="the factory's keyword arguments", cli=False)
    weights: str | None = setting(None, "autoprune checkpoint or plain state_dict", cli=False)
    input_shape: list[int] | dict | None = setting(None, "one input's shape, or several inputs' spec (default: "
                                                         "from the data)", cli=False)
    data: str = setting("fashion-mnist", "fashion-mnist, synthetic, imagefolder:DIR or path/to/file.py:factory",
                        cli=False)
    data_dir: str | None = setting(None, "folder with the Fashion-MNIST IDX files", cli=False)
    torch_device: str | None = setting(None, "where candidates are scored (default: cuda when available)", cli=False)
    exclude: list[str] = setting(factory=list, help="module names whose channels must not be pruned", cli=False)
    # What is searched for, and how candidates are scored.
    score: str | None = setting(None, f"score candidates with {SCORE_HELP}", metavar="FILE.py:FUNCTION")
    loss: str | None = setting(None, "training loss FUNCTION(output, target) for the short fine-tunes "
                                     "(default: cross-entropy)", metavar="FILE.py:FUNCTION")
    cost_model: str = setting("lut", "lut (profiled on this machine when no --table), flops, roofline, "
                                     "ort-measured, or a plug-in")
    table: str | None = setting(None, "latency table CSV for --cost-model lut")
    output: str | None = setting(None, "the model output that is scored and trained: a key (logits), an index (0) "
                                       "or a path (1.logits); default: the only tensor, else 'logits'", metavar="KEY")
    prune_hidden: bool = setting(False, "also search a transformer's hidden width (the channels every block reads and "
                                        "adds to, with the class token and position embeddings); off: kept whole")
    allow_uncounted: bool = setting(False, "search with a latency model that prices layers (lut, roofline) although "
                                           "over 1 percent of the model's MACs lie in layers it does not price")
    hardware_profile: str | None = setting(None, "device class for --cost-model roofline (cortex-a53, ..., "
                                                 "or a YAML file)")
    provider: str | None = setting(None, f"ONNX Runtime execution provider that profiles and times "
                                         f"({PROVIDERS_HELP})", metavar="NAME")
    latency_threads: int = setting(1, "ONNX Runtime threads when profiling and timing (and exporting, in "
                                      "pipeline)")
    latency_batch: int = setting(1, LATENCY_BATCH_HELP)
    budget: str = setting("50%", "fraction of dense (50%% or 0.5) or absolute (0.15ms)")
    budgets: list[str] = setting(factory=list, metavar="BUDGET",
                                 help="several budgets, one budget-conditioned search (a front): e.g. 30%% 50%% "
                                      "70%%; writes policies/<budget>.json, front.csv and front.png")
    agent: str = setting(DEFAULT_AGENT, "searcher: " + ", ".join(list_searchers()))
    preset: str = setting("default", "hyper-parameter preset of the agent (quick: smoke tests only, too short "
                                     "to learn)")
    agent_params: AgentParams = setting(factory=dict, help="preset overrides (--agent-param KEY=VALUE)",
                                           cli=False)
    episodes: int = setting(300, "candidates evaluated (seed rules included)", at_least=1, at_most=MAX_EPISODES)
    seed: int = setting(0, "random seed (same seed: same history)")
    n_envs: int = setting(1, "score candidates in this many parallel worker processes (SB3 agents)", at_least=1,
                          at_most=64)
    val_size: int = setting(2000, "validation images per candidate", at_least=1)
    bn_batches: int = setting(5, "BN recalibration batches", at_least=0)
    eval_mode: str = setting("physical", "score candidates on a pruned copy (default) or with masks on the "
                                         "dense model; same scores", choices=["physical", "masked"])
    min_ratio: float = setting(0.0, "least share of a group pruned", at_least=0.0, below=1.0)
    max_ratio: float = setting(DEFAULT_MAX_RATIO, "largest share of a group pruned", at_least=0.0, below=1.0)
    round_to: int | None = setting(None, "keep channel counts a multiple of this (default 8: ONNX Runtime's CPU "
                                         "kernels are fast for multiples of 8; 4, 2 or 1 when the budget needs "
                                         "finer widths, said in a note)", at_least=1)
    widths: list[float] = setting(factory=list, metavar="W,W,...",
                                  help="the widths every group may take: fractions (0.25,0.5,0.75,1.0) or channel "
                                       "counts (16,32,64); the search picks among them (default: every multiple "
                                       "of --round-to within the ratio bounds)")
    group_widths: dict[str, list[float]] = setting(factory=dict, cli=False,
                                                   help="widths per group name, overriding --widths (config file)")
    importance: str = setting("l1", "l1, l2, bn_scale or taylor")
    reward: str = setting("accuracy", "accuracy, amc or penalty")
    budget_rule: str = setting("project", "project: each finished proposal is projected onto the budget (no "
                                          "position bias); wall: AMC's per-step action wall",
                               choices=list(BUDGET_RULES))
    budget_fill: float = setting(0.95, "with --budget-rule project: a candidate that fits but uses less of the "
                                       "budget is filled up to it (0: a feasible proposal is kept as proposed)",
                               at_least=0.0, at_most=1.0)
    seeds: list[str] = setting(factory=lambda: list(DEFAULT_SEEDS), metavar="RULE",
                               help=f"one-shot rules played as the first episodes ({', '.join(SEED_RULES)}; "
                                    f"none: --seeds)")
    refine: int = setting(0, "of the --episodes, this many refine the search's best at its end: the best "
                             "candidates asked again (noisy scores) and their one-step neighbours, most "
                             "promising first (an upper-confidence rule)", at_least=0)
    warm_start: str | None = setting(None, "an earlier search of the same model, data and score (its run folder): "
                                           "evolution and reinforce start from the architectures it scored that "
                                           "fit this budget, so a new budget costs a fraction of the queries",
                                     metavar="RUN_DIR")
    scorer: str = setting("bn", "how a candidate is scored: bn (pruned from the trained model, BN recalibrated: "
                                "EagleEye) or supernet (sliced from a once-for-all supernet trained first, BN "
                                "recalibrated: ranks better at aggressive budgets)", choices=["bn", "supernet"])
    supernet: str | None = setting(None, "folder of the supernet (--scorer supernet): reused when it holds one for "
                                         "this model, space and settings, else trained into it, resuming a partial "
                                         "one (default: <out>/supernet)", metavar="DIR")
    supernet_epochs: int = setting(2, "epochs the supernet is trained (sandwich rule, in-place distillation)",
                                   at_least=1)
    supernet_sampled: int = setting(2, "architectures per supernet step besides the widest and the narrowest",
                                    at_least=0)
    rerank_top: int = setting(6, "after the search, fine-tune this many best candidates briefly and keep the "
                                 "best by that second score (0: off)", at_least=0)
    rerank_steps: int = setting(100, "SGD steps of that short fine-tune (~9 s a ResNet-20 candidate on 2 cores)",
                                at_least=1)
    rerank_by: str = setting("finetune", "the second score: finetune (a short fine-tune) or requery (the score "
                                         "asked again --rerank-repeats times and averaged: for noisy scores)",
                             choices=["finetune", "requery"])
    rerank_repeats: int = setting(2, "with --rerank-by requery: further queries of each re-ranked candidate",
                                  at_least=1)
    verify_top: int = setting(10, "after the search, time this many best candidates here and keep the best "
                                  "within budget (lut tables profiled on this machine; 0: off)", at_least=0)
    executor: str = setting("local", "where candidates are scored: local (this process), processes or ray "
                                     "(random and cmaes score --workers candidates at once; SB3 agents the "
                                     "candidates of their --n-envs episodes)",
                            choices=["local", "processes", "ray"])
    workers: int = setting(1, "scoring workers of --executor processes or ray")
    worker_cpus: float = setting(1.0, "CPUs per worker (its torch threads; a Ray actor's num_cpus)", above=0.0,
                                 at_most=1024.0)
    worker_gpus: float = setting(0.0, "GPUs per Ray worker (fractions share one: 0.25 puts four on a GPU)",
                                 at_least=0.0, at_most=64.0)
    ray_address: str | None = setting(None, "Ray cluster to join ('auto': the one this machine belongs to; "
                                            "default: start a local Ray runtime)", metavar="ADDRESS")
    worker_timeout: float | None = setting(None, "seconds a candidate may take before its worker is replaced "
                                                 "and it is scored again (default: no limit)", above=0.0)
    out: str = setting("runs/search", "run folder", cli=False)

    def validate(self) -> SearchConfig:
        """One-line errors for settings of the wrong type, outside what their fields declare, or
        that do not go together; values normalised (:meth:`normalise`), nothing printed.

        Validating an unchanged config again returns at once: the command line validates before it
        names a folder, the search when it starts, and the checks build the agent once.
        """
        if getattr(self, "_validated", None) == asdict(self):
            return self
        self._notes: list[str] = []  # not a field: what normalising changed, for the run to say
        if isinstance(self.budget, (int, float)) and not isinstance(self.budget, bool):
            self.budget = str(self.budget)  # "budget: 0.5" in a YAML file
        check_settings(self)  # types, choices and bounds, as the fields declare them
        if any(not isinstance(e, str) for e in self.exclude) or any(not isinstance(k, str) for k in self.agent_params):
            raise ConfigError("'exclude' must list module names and 'agent_params' be keyed by name")
        if self.min_ratio > self.max_ratio:
            raise ConfigError(f"need --min-ratio <= --max-ratio, got {self.min_ratio}, {self.max_ratio}")
        LatencySettings(batch_size=self.latency_batch, threads=self.latency_threads)  # bounds checked there
        self._check_workers()
        self.widths = parse_widths(",".join(str(w) for w in self.widths))
        if self.group_widths and not self.widths:
            raise ConfigError("group_widths overrides --widths for some groups; give --widths for the others too")
        self.group_widths = {str(g): parse_widths(",".join(str(w) for w in ws) if isinstance(ws, list) else str(ws))
                             for g, ws in self.group_widths.items()}
        if not 0 <= self.refine < max(self.episodes, 1):
            raise ConfigError(f"--refine must be from 0 to --episodes - 1 ({self.episodes - 1}), got {self.refine}")
        if self.refine and len(self.budgets) > 1:
            raise ConfigError("--refine refines one budget's best; it does not go with --budgets")
        if self.scorer == "supernet":
            self.supernet_settings()
        self._check_names()
        if self.warm_start:
            self.warm_start_config()
        self._validated = asdict(self)  # not a field: copies made with replace() are validated again
        return self

    def _check_workers(self) -> None:
        """Where candidates are scored: the executor, its workers and their resources."""
        check_executor(self.executor, self.workers)
        if self.executor == "local" and self.workers != 1:
            raise ConfigError("--workers needs --executor processes or ray (local scores in this process)")
        if self.worker_gpus and self.executor != "ray":
            raise ConfigError("--worker-gpus places Ray actors; use it with --executor ray")

    def warm_start_config(self) -> SearchConfig:
        """The earlier search ``--warm-start`` names, checked: a searcher that starts from scored
        architectures, and the same model, arguments, data and score (else its scores mean nothing here)."""
        if ALIASES.get(self.agent, self.agent) not in WARM_STARTED:
            raise ConfigError(f"--warm-start needs a searcher that starts from scored architectures "
                              f"({', '.join(sorted(WARM_STARTED))}), not {self.agent}")
        folder = Path(self.warm_start)
        if not (folder / "history.csv").is_file() or not (folder / "config.yaml").is_file():
            raise ConfigError(f"--warm-start {folder} is not a search's run folder (no history.csv and config.yaml); "
                              f"name the --out of an earlier search")
        earlier = SearchConfig(**SearchConfig.read_settings(folder / "config.yaml"))
        for name in ("model", "model_args", "weights", "data", "score", "input_shape"):
            if getattr(earlier, name) != getattr(self, name):
                raise ConfigError(f"--warm-start {folder} searched with another {name.replace('_', '-')} "
                                  f"({getattr(earlier, name)!r}, here {getattr(self, name)!r}); its scores do not "
                                  f"carry over")
        return earlier

    def _check_names(self) -> None:
        """Budget text, names, agent hyper-parameters and files: refused here, before any work."""
        BudgetSpec.parse(self.budget)
        self.budgets = [b.strip() for item in self.budgets for b in str(item).split(",") if b.strip()]
        for b in self.budgets:
            BudgetSpec.parse(b)
        merged = {_budget_key(b): b for b in reversed(self.budgets)}  # the first spelling of each is kept
        if len(merged) < len(self.budgets):
            kept = [b for b in self.budgets if merged[_budget_key(b)] == b]
            self._notes.append(f"--budgets {' '.join(self.budgets)} repeats a budget; searching {' '.join(kept)}")
            self.budgets = list(dict.fromkeys(kept))
        if len(self.budgets) > 1 and self.n_envs > 1:
            raise ConfigError("--budgets searches in one process; use --n-envs 1")
        if len(self.budgets) == 1:
            self.budget, self.budgets = self.budgets[0], []
        bad_seed = [s for s in self.seeds if s not in SEED_RULES]
        if bad_seed:
            raise ConfigError(f"unknown seed rule {bad_seed[0]!r}; known: {', '.join(SEED_RULES)}")
        create_reward(self.reward)
        IMPORTANCES.get(self.importance)
        COST_MODELS.get(self.cost_model)
        searcher = create_searcher(self.agent, self.seed, self.preset, self.agent_params)
        searcher.check()  # bad hyper-parameters: refused here, before any model, data or table
        if isinstance(searcher, SB3Searcher) and searcher.params.get("intensify") and (self.budgets or self.n_envs > 1):
            raise ConfigError("--agent-param intensify (re-queries) needs one budget and one environment; "
                              "drop --budgets / --n-envs, or intensify")
        if self.n_envs > 1 and not isinstance(searcher, SB3Searcher):
            raise ConfigError(f"--n-envs > 1 runs SB3 agents in parallel; {self.agent!r} plays one episode at a "
                              f"time (use --executor processes|ray --workers N to score its candidates in parallel)")
        for option, path in (("--weights", self.weights), ("--table", self.table), ("--data-dir", self.data_dir)):
            if path and not Path(path).exists():
                raise ConfigError(f"{option} {path} does not exist; check the path")
        if self.data.startswith("imagefolder:") and not Path(self.data.split(":", 1)[1]).is_dir():
            raise ConfigError(f"--data {self.data}: no such folder; give imagefolder:DIR with DIR/train and DIR/val")
        self.model = canonical(self.model)
        self.data = canonical(self.data)
        if isinstance(self.input_shape, dict):
            InputSpec.from_json(self.input_shape, "the settings' input_shape")
        elif self.input_shape is not None:
            self.input_shape = list(parse_input_shape(",".join(str(v) for v in self.input_shape)))
        if self.model_args and is_builtin(self.model):
            raise ConfigError(f"--model-args is for models given as file.py:factory; built-in {self.model!r} "
                              f"takes its sizes from the data")
        if self.model_args:
            parse_model_args(json.dumps(self.model_args))  # the same size and depth bounds as the option
        load_score(self.score)
        load_loss(self.loss)
        if self.score and self.score.startswith("channel-bench:"):
            self._check_table_search()
        device = check_torch_device(self.torch_device)
        check_provider(self.provider)
        if self.eval_mode == "masked" and device != "cpu":
            raise ConfigError("--eval-mode masked scores on the CPU; use --eval-mode physical with --torch-device")

    def _check_table_search(self) -> None:
        """A table score is a lookup asked in this process (its draws count the asks), on the
        table's own inputs; no images are needed, so the default data becomes synthetic ones."""
        if self.executor != "local" or self.n_envs > 1:
            raise ConfigError("--score channel-bench: is a table lookup (microseconds a candidate): use "
                              "--executor local and --n-envs 1")
        if self.data == "fashion-mnist":
            self._notes.append("--score channel-bench: scores from its table; the model sees synthetic 3x32x32 "
                               "inputs (no data set is read)")
            self.data, self.input_shape = "synthetic", self.input_shape or [3, 32, 32]

    @property
    def notes(self) -> list[str]:
        """What :meth:`validate` changed and the user should hear (a repeated budget merged, the
        data a table score does not need replaced); the search prints them when it starts."""
        return list(getattr(self, "_notes", []))

    def supernet_settings(self) -> SupernetSettings:
        """The supernet's training settings (--scorer supernet), checked."""
        return SupernetSettings(epochs=self.supernet_epochs, sampled=self.supernet_sampled, seed=self.seed).check()

    def model_source(self) -> ModelSource:
        """The model these settings name."""
        return ModelSource(self.model, dict(self.model_args), self.weights,
                           signature_from_json(self.input_shape, "the settings' input_shape"))

    def latency_settings(self) -> LatencySettings:
        """How latency is profiled and timed (the export measures the same way)."""
        return LatencySettings(batch_size=self.latency_batch, threads=self.latency_threads,
                               provider=check_provider(self.provider))

    def save(self, path: str | Path) -> None:
        """Write the settings as YAML (atomically)."""
        write_text_atomic(path, dump_yaml(asdict(self)))

    def save_run(self, out: Path, agent: str, params: AgentParams, command: str | None = None) -> None:
        """A run folder's settings: ``config.yaml``, ``agent_params.yaml`` (the searcher as built:
        ``agent``, its ``params``) and ``command.txt`` (the command line, when there is one)."""
        self.save(out / "config.yaml")
        write_text_atomic(out / "agent_params.yaml", dump_yaml(
            {"agent": agent, "preset": self.preset, "seed": self.seed, "params": plain(params)}))
        if command:
            write_text_atomic(out / "command.txt", command + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SearchConfig:
        """A run folder's ``config.yaml`` (to resume it), validated."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no search to resume in {path.parent} (missing {path.name}); "
                              f"start one without --resume")
        try:
            return cls(**cls.read_settings(path)).validate()
        except TypeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    @classmethod
    def read_settings(cls, path: str | Path) -> dict[str, ParamValue]:
        """The settings a YAML file holds (a run's ``config.yaml`` or a user's ``--config`` file),
        names checked; values are checked by :meth:`validate`."""
        path = checked_file(path, "settings file", MAX_SETTINGS_BYTES, "check the path")
        try:
            data = load_yaml(path.read_text(encoding="utf-8"), f"settings file {path}")
        except UnicodeDecodeError:
            raise ConfigError(f"settings file {path} is not text; pass a YAML file like a run's config.yaml") from None
        except RecursionError:
            raise ConfigError(f"settings file {path} is nested too deeply to be settings") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of settings")
        if "device" in data and "hardware_profile" not in data:  # the name before torch devices existed
            data["hardware_profile"] = data.pop("device")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting {unknown[0]!r}; settings are named as in a run's "
                              f"config.yaml (model, budget, agent, ...)")
        for name in CODE_OPTIONS:  # a file's references run only with the user's consent
            require_consent(data.get(name), f"settings file {path}", f"--{name}")
        return data


def _budget_key(text: str) -> tuple[float | None, float | None, str | None]:
    """What a budget means (``50%`` and ``0.5`` are one budget)."""
    spec = BudgetSpec.parse(text)
    return (None if spec.fraction is None else round(spec.fraction, 12), spec.value, spec.unit)
