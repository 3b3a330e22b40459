"""Assembling a search from its settings: data, model, analysis, channel ranking, cost model,
budgets, scorer and environment, built once (by the search, or by a scoring worker on its own).

The settings are read, never changed: what assembling decides (the validation samples actually
scored, the latency table profiled here) comes back in :class:`Assembled`, and the search records
it in its run folder's ``config.yaml`` so a resume uses the same.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from autoprune.analysis import ModelAnalysis, analyse_model, group_features
from autoprune.analysis.groups import hidden_width_groups
from autoprune.analysis.layers import example_input
from autoprune.budget import Budget, BudgetSpec
from autoprune.costs import CostModel, create_cost_model, profile_latency_table
from autoprune.costs.coverage import check_coverage
from autoprune.data import Splits, load_splits
from autoprune.devices import check_provider, check_torch_device
from autoprune.dynamic.supernet import SupernetScorer
from autoprune.envs import PruningEnv
from autoprune.envs.budget import BudgetWall
from autoprune.errors import ConfigError
from autoprune.evaluation import CandidateEvaluator, check_scorable
from autoprune.inputs import call, in_channels_of, signature_from_json
from autoprune.outputs import scored_output, set_scored_output
from autoprune.pruning import rank_channels
from autoprune.pruning.prunability import keep_unprunable_whole
from autoprune.pruning.widths import WidthChoices
from autoprune.scoring import ScoreFn, load_loss, load_score
from autoprune.search.config import DEFAULT_ROUND_TO, SearchConfig
from autoprune.search.supernet import prepare_supernet


@dataclass
class Assembled:
    """The parts of a search (see the module docstring)."""

    analysis: ModelAnalysis
    cost_model: CostModel
    budgets: list[Budget]  # the first is the one ``best_policy.json`` is for (a front's first)
    evaluator: CandidateEvaluator
    score_name: str
    env: PruningEnv
    val_size: int  # validation samples scored (the whole split when the default exceeds it)
    table: str | None  # the latency table the cost model reads (profiled into the run folder if none given)


def assemble(config: SearchConfig, out: Path, splits: Splits | None = None, model: torch.nn.Module | None = None,
             score: ScoreFn | None = None, check: bool = True, progress: bool = True) -> Assembled:
    """Build every part of the search ``config`` describes (``splits``/``model``/``score``: given
    as objects by the Python API instead of by name). ``check``: run the prunability check (a
    worker skips it: the search did it already)."""
    c = config
    set_scored_output(c.output)  # this search's scored output, in its worker processes too
    splits = splits or load_splits(c.data, c.data_dir, input_shape=signature_from_json(c.input_shape, "the settings"))
    val_size = check_val_size(splits, c.val_size)
    source = c.model_source()
    shape = source.shape(splits.input_shape)
    # Random weights are only meaningful on synthetic data (tests, demos).
    model = model if model is not None else source.load(
        require_weights=c.data != "synthetic", in_channels=in_channels_of(shape) or 1, num_classes=splits.num_classes)
    example = example_input(model, shape, random=True)
    analysis = analyse_model(model, example, exclude=c.exclude)
    if not c.prune_hidden:
        analysis = _hidden_width_kept(c, analysis, lambda: analyse_model(model, example, exclude=c.exclude))
    if check:  # groups that do not prune cleanly are kept whole, recorded in the config's (and policy's) exclude
        analysis, dropped = keep_unprunable_whole(
            analysis, lambda extra: analyse_model(model, example, exclude=[*c.exclude, *extra]))
        if dropped:
            c.exclude = [*c.exclude, *dropped]
            for name, why in dropped.items():
                tqdm.write(f"note: group {name!r} kept whole: {why}")
        if c.score in (None, "accuracy", "neg-loss"):  # a built-in score reads one output: which, said now
            with torch.no_grad():
                scored_output(call(analysis.model.eval(), analysis.example_input))
    score_fn, score_name = load_score(c.score, c.seed)
    if score is not None:
        score_fn, score_name = score, getattr(score, "__name__", "score")
    if check:  # data that does not fit the model: said now, not as NaN scores after profiling
        check_scorable(analysis.model, splits, score_fn, check_torch_device(c.torch_device))
    ranking = rank_channels(analysis, c.importance, batches=splits.train(64, shuffle=False))
    table = c.table or _profiled_table(c, analysis, out, progress)
    cost_model = _cost_model(c, analysis, table)
    if check:
        check_coverage(analysis, c.cost_model, c.allow_uncounted)  # never a budget met on paper only
        fixed = getattr(cost_model, "fixed_macs", 0)
        if progress and fixed and fixed > 0.01 * cost_model.dense_cost().flops:
            tqdm.write(f"note: {fixed / cost_model.dense_cost().flops:.1%} of the MACs lie in layers autoprune does "
                       f"not prune ({cost_model.fixed_parts}); the FLOPs budget counts them at their dense value")
    budgets = [Budget.from_spec(cost_model, b) for b in (c.budgets or [c.budget])]
    c.round_to = resolve_round_to(c, analysis, cost_model, budgets, progress)
    evaluator = CandidateEvaluator(analysis, ranking, splits, val_size, c.bn_batches, mode=c.eval_mode,
                                   score=score_fn, loss=load_loss(c.loss), device=check_torch_device(c.torch_device))
    env = PruningEnv(analysis.groups, group_features(analysis), cost_model, budgets[0], evaluator, c.min_ratio,
                     c.max_ratio, c.round_to, c.reward, analysis=analysis, budget_rule=c.budget_rule,
                     budgets=budgets, budget_seed=c.seed, choices=choices(c, analysis), fill=c.budget_fill)
    if c.scorer == "supernet":
        supernet = prepare_supernet(analysis, ranking, splits, cost_model, env.choices, c.supernet_settings(),
                                    [b.fraction for b in budgets], c.supernet or out / "supernet",
                                    copy.deepcopy(model).eval(), c.torch_device, progress)
        evaluator.scorer = SupernetScorer(supernet, evaluator.bn_data, evaluator.val_data, c.bn_batches, score_fn)
    return Assembled(analysis, cost_model, budgets, evaluator, score_name, env, val_size, table)


def _hidden_width_kept(config: SearchConfig, analysis: ModelAnalysis, reanalyse, limit: int = 8) -> ModelAnalysis:
    """``analysis`` with a transformer's hidden width kept whole (added to the config's exclude, so
    the policy records it); a coupled group that surfaces rooted at another layer goes too. When
    the budget (a share of dense, or MACs) cannot be met by MACs with it kept whole but can with it
    searched, it is searched, said in a note."""
    full, excluded = analysis, list(config.exclude)
    for _ in range(limit):
        hidden = hidden_width_groups(analysis)
        if not hidden:
            break
        config.exclude = [*config.exclude, *hidden]
        analysis = reanalyse()
    if config.exclude == excluded:
        return analysis
    if _reachable_by_macs(config, full) and not _reachable_by_macs(config, analysis):
        config.exclude = excluded
        tqdm.write(f"note: the hidden width (group {hidden_width_groups(full)[0]!r}) is searched too: the budget "
                   f"cannot be met with it kept whole")
        return full
    kept = [e for e in config.exclude if e not in excluded]
    tqdm.write(f"note: the hidden width (group {kept[0]!r}) kept whole; --prune-hidden searches it too")
    return analysis


def _reachable_by_macs(config: SearchConfig, analysis: ModelAnalysis) -> bool:
    """Whether every budget that is a share of dense or MACs is met, by MACs, at the narrowest widths
    (channels in multiples of 1); latency budgets are not judged here (True)."""
    specs = [BudgetSpec.parse(b) for b in (config.budgets or [config.budget])]
    if any(s.unit == "ms" for s in specs):
        return True
    flops = create_cost_model("flops", analysis)
    n = len(analysis.groups)
    walls = [BudgetWall(analysis.groups, flops, Budget.from_spec(flops, s), [config.min_ratio] * n,
                        [config.max_ratio] * n, 1) for s in specs]
    return all(w.budget.fits(w.smallest_cost()) for w in walls)


def resolve_round_to(config: SearchConfig, analysis: ModelAnalysis, cost_model: CostModel, budgets: list[Budget],
                     progress: bool = True) -> int:
    """``--round-to`` as given, else 8, or the largest of 4, 2, 1 whose narrowest widths meet every
    budget (a model of a few channels per layer cannot be cut in multiples of 8), said in a note."""
    if config.round_to is not None:
        return config.round_to
    if config.widths:
        return DEFAULT_ROUND_TO
    n = len(analysis.groups)
    for multiple in (DEFAULT_ROUND_TO, 4, 2, 1):
        walls = [BudgetWall(analysis.groups, cost_model, b, [config.min_ratio] * n, [config.max_ratio] * n, multiple)
                 for b in budgets]
        if all(w.budget.fits(w.smallest_cost()) for w in walls):
            if multiple < DEFAULT_ROUND_TO and progress:
                tqdm.write(f"note: channels kept in multiples of {multiple}, not {DEFAULT_ROUND_TO}: multiples of "
                           f"{DEFAULT_ROUND_TO} cannot reach the budget (set --round-to to choose)")
            return multiple
    return DEFAULT_ROUND_TO  # unreachable at any multiple: the wall's refusal says so


def choices(config: SearchConfig, analysis: ModelAnalysis) -> WidthChoices | None:
    """The widths each group may take: ``--widths`` (and per-group ``group_widths``), else None (the grid)."""
    groups = analysis.groups
    if not config.widths:
        return None
    return WidthChoices.listing(groups, config.widths, config.group_widths, [config.min_ratio] * len(groups),
                                [config.max_ratio] * len(groups), config.round_to)


def _profiled_table(config: SearchConfig, analysis: ModelAnalysis, out: Path, progress: bool) -> str | None:
    """For ``--cost-model lut`` without ``--table``: the table profiled on this machine into the run
    folder (once; a resume finds it there)."""
    if config.cost_model != "lut":
        return None
    path = out / "latency_table.csv"
    if not path.is_file():
        tqdm.write(f"no --table given: profiling {config.model} on this machine into {path}")
        out.mkdir(parents=True, exist_ok=True)
        settings = replace(config.latency_settings(), warmup=10, repeats=50)
        profile_latency_table(analysis, config.model, round_to=config.round_to or DEFAULT_ROUND_TO, settings=settings,
                              progress=progress).save(path)
    return str(path)


def _cost_model(config: SearchConfig, analysis: ModelAnalysis, table: str | None) -> CostModel:
    c = config
    options = {"table": table, "hardware_profile": c.hardware_profile,  # plug-ins get them too
               "provider": check_provider(c.provider), "threads": c.latency_threads,  # (factories take **options)
               "batch_size": c.latency_batch}
    return create_cost_model(c.cost_model, analysis, **{k: v for k, v in options.items() if v})


def check_val_size(splits: Splits, val_size: int) -> int:
    """The validation samples to score on: a ``--val-size`` beyond the split is refused, not silently
    cut; the default on a smaller split becomes the whole split, with a note."""
    n = splits.val_length()
    if n == 0:
        raise ConfigError("the validation split is empty: candidates are scored on it; give the data a "
                          "validation split (a data factory returns (train, val) or (train, val, test))")
    if n is None or val_size <= n:
        return val_size
    if val_size == SearchConfig.val_size:
        tqdm.write(f"note: the validation split has {n} samples; candidates are scored on all of them")
        return n
    raise ConfigError(f"--val-size {val_size} is more than the {n} samples of the validation split; "
                      f"pass --val-size {n} or less")
