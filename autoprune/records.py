"""The JSON records a run folder holds, typed: what each stage returns is what its file says.

``summary.json`` (search), ``apply.json``, ``finetune.json``, ``export.json`` and ``pipeline.json``
are read by people, scripts and later stages, so they stay plain JSON; these ``TypedDict``s name
every field once, so a reader (and a type checker) knows what a stage hands to the next.
"""

from __future__ import annotations

from typing import Any, TypedDict

Json = Any  # a value as JSON holds it (number, text, list, mapping, null)


class CandidateRecord(TypedDict, total=False):
    """A search's best candidate (fields of :class:`autoprune.search.history.Candidate`)."""

    episode: int
    score: float
    ratios: dict[str, float]
    cost: float
    latency_ms: float | None
    flops: int
    params: int
    finetuned: float | None


class VerificationRecord(TypedDict, total=False):
    """On-machine timing of the best candidates after a search (or why it was skipped)."""

    skipped: str
    candidates: int
    chosen_episode: int | None
    chosen_measured_ms: float | None
    chosen_adjusted_ms: float | None
    budget_ms: float
    tolerance: float
    dense_table_ms: float  # the dense model on the table's clock: measured when profiled (older tables: predicted)
    dense_measured_ms: float
    machine_speed: float | None
    worst_measured_over_predicted: float
    measured_over_predicted: float  # none fitted: the candidates' median ratio (on the table's clock)
    suggested_budget: str  # none fitted: the budget as given, divided by that ratio: searched with this
    # table, it yields candidates these timings put within the budget as given
    retimed: int  # candidates timed again beside the best that fitted (search.timing.retime_rejected)
    seconds: float


class RerankRecord(TypedDict, total=False):
    """The second-stage (short fine-tune) ranking after a search (or why it was skipped)."""

    skipped: str
    candidates: int
    chosen_episode: int | None
    steps: int
    chosen_finetuned: float
    seconds: float


class CostModelRecord(TypedDict, total=False):
    """What identifies a cost model in policies and run folders (``CostModel.describe()``); plug-ins
    add their own settings beside these keys."""

    name: str
    metric: str
    device: Json       # roofline: the device's numbers; lut: the profiled device's description
    table: str | None  # lut: the table file
    settings: Json     # lut, measured: the latency settings


class TableCheckRecord(TypedDict, total=False):
    """Before a search with a latency table profiled here: one architecture at the budget timed
    beside the dense model against the table's prediction (``autoprune.search.timing.check_table``)."""

    architecture: dict[str, int]
    measured_over_predicted: float
    suggested_budget: str  # only when the table is off by more than the verification's tolerance
    seconds: float


class SearchSummary(TypedDict, total=False):
    """``summary.json`` of a search run."""

    episodes_this_session: int
    wall_s: float
    scoring_s: float
    env_s: float
    agent_s: float
    n_envs: int
    best: CandidateRecord | None
    score: str
    budget: dict[str, Json]
    cost_model: CostModelRecord
    config: dict[str, Json]
    table_check: TableCheckRecord
    verification: VerificationRecord
    rerank: RerankRecord
    front: list[dict[str, Json]]  # one row per budget of a budget-conditioned search (front.csv)


class ApplyRecord(TypedDict):
    """``apply.json``: the policy applied for real, before and after BN recalibration."""

    policy: str
    model: str
    importance: str
    init: str  # "dense", or "supernet <folder>": where the pruned model's weights came from
    dense_test_acc: float
    pruned_test_acc_raw: float
    pruned_test_acc_bn: float
    pruned_val_acc_bn: float
    val_score: float
    val_score_search: float | None
    bn_batches: int
    test_split: str
    dense_params: int
    pruned_params: int
    channels: dict[str, int]


class FinetuneRecord(TypedDict, total=False):
    """``finetune.json``: one fine-tuning run (plain, gradual, sparsity, rewind, iterative or IMP)."""

    checkpoint: str
    mode: str
    mode_settings: dict[str, Json]
    config: dict[str, Json]
    distill: bool
    test_acc_before: float
    test_acc: float
    test_split: str
    best_epoch: int
    best_val_acc: float
    history: list[dict[str, Json]]
    seconds: float
    params: int
    channels: dict[str, int]         # gradual and iterative pruning: the final widths
    mask_updates: int                # gradual pruning
    sparsity: dict[str, Json]        # unstructured pruning and IMP
    rewound_from: str                # rewind
    steps: list[dict[str, Json]]     # iterative pruning, one row per step
    rounds: list[dict[str, Json]]    # IMP, one row per round


class ExportRecord(TypedDict, total=False):
    """``export.json``: the exported model and its measured latency (against the policy's budget),
    plus the checkpoint's metadata (test accuracy, dense latency, ...)."""

    model: str
    pruned: bool
    params: int
    onnx_bytes: int
    latency_ms: float
    latency_windows_ms: list[float]
    latency_settings: dict[str, Json]
    dense_latency_ms: float
    budget_ms: float
    latency_over_budget: float
    within_budget_tolerance: bool
    share_of_dense: float
    budget_share_of_dense: float
    share_over_budget: float  # share_of_dense / budget_share_of_dense, when the dense model was timed alongside
    budget_judged_by: str  # "share_of_dense" (dense timed in the same passes) or "absolute"
    dense_timed_alongside: bool
    dense_latency_windows_ms: list[float]  # the dense model's time in each window, beside latency_windows_ms
    test_acc: float


class PipelineRecord(TypedDict, total=False):
    """``pipeline.json``: the whole job's outcome (``*_test_acc``: the test value of ``score``)."""

    score: str  # accuracy unless the search's --score names another
    dense_test_acc: float
    pruned_test_acc_bn: float
    finetuned_test_acc: float
    finetune_epochs: int
    params: list[int]
    latency_ms: float
    dense_latency_ms: float
    budget_ms: float
    latency_over_budget: float
    within_budget_tolerance: bool
    share_of_dense: float
    budget_share_of_dense: float
    share_over_budget: float
    budget_judged_by: str
