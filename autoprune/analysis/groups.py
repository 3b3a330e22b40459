"""Prunable channel groups found with Torch-Pruning's dependency graph (DepGraph, Fang et al. 2023).

Coupled layers (a conv, its BN, the next layers' inputs, every layer tied by a residual add or a
depthwise conv) form one :class:`PrunableGroup`, named by its first producing layer's module name.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import torch
import torch_pruning as tp
from torch import nn

import autoprune.analysis.tp_shapes  # noqa: F401 - split and concat sizes for Torch-Pruning's graph
from autoprune.analysis.layers import (
    CONVS,
    ROOTS,
    TRANSPOSED,
    LayerSpec,
    executed_modules,
    is_compute,
    out_width,
    trace_layers,
)
from autoprune.analysis.transposed_linear import is_transposed_linear, transposed_linear_types
from autoprune.errors import AnalysisError
from autoprune.inputs import ModelInput, Signature, call, check_tensors, perturbed, signature_of
from autoprune.outputs import flat_outputs, output_shapes


@dataclass(frozen=True)
class PrunableGroup:
    """Channels that must be pruned together; the unit a policy gives one ratio to."""

    name: str
    channels: int
    kind: str  # "conv", "depthwise" (feeds a depthwise conv), "linear" or "residual" (tied by adds)
    producers: tuple[str, ...]  # Conv/Linear layers whose output channels are removed
    consumers: tuple[str, ...]  # Conv/Linear layers whose input channels are removed
    members: tuple[str, ...] = field(default=())  # every module touched (BN, depthwise convs, ...)
    consumer_widths: tuple[int, ...] = field(default=())  # input features of each consumer tied to the group
    parameters: tuple[str, ...] = field(default=())  # parameters used directly in forward that index the channels
    step: int = 1  # channels go in units of this many, kept and removed whole (see units())
    interleaved: bool = False  # a unit takes one channel of each of ``step`` blocks (a grouped convolution's)
    heads: tuple[str, ...] = ()  # attention modules whose heads (``step`` channels each) this group's units are
    # each channel is this many output channels of the producer, one in each of its equal slices (a
    # fused query/key/value projection split in three: channel c is query c, key c and value c)
    fold: int = 1

    def units(self) -> torch.Tensor:
        """The channel indices of each unit, one row per unit: ``step`` consecutive channels (a
        GroupNorm's group), or the same offset in each of ``step`` equal blocks (a grouped
        convolution with ``step`` groups loses the same input position in every group)."""
        index = torch.arange(self.channels)
        return index.view(self.step, -1).T if self.interleaved else index.view(-1, self.step)


@dataclass
class ModelAnalysis:
    """What the rest of the tool knows about a model: groups, layers, and the dependency graph."""

    model: nn.Module
    example_input: ModelInput  # one batch (of one sample) the model was traced with
    groups: list[PrunableGroup]
    layers: list[LayerSpec]
    output_layer: str | None
    graph: tp.DependencyGraph
    kept_whole: dict[str, str] = field(default_factory=dict)  # group name -> why it is not prunable
    output_layers: tuple[str, ...] = ()  # layers producing model outputs (never pruned on their output side)

    @property
    def signature(self) -> Signature:
        """What the model takes: one input's shape, or several inputs' spec."""
        return signature_of(self.example_input)

    def group(self, name: str) -> PrunableGroup:
        """The group called ``name``."""
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    @property
    def group_names(self) -> list[str]:
        """Group names in network order."""
        return [g.name for g in self.groups]

    def tp_group(self, name: str, idxs: Iterable[int] | None = None) -> tp.Group:
        """The Torch-Pruning group rooted at group ``name`` for ``idxs`` (all channels when None)."""
        g = self.group(name)
        root = self.model.get_submodule(g.name)
        pruner = self.graph.get_pruner_of_module(root)
        idxs = list(range(g.channels)) if idxs is None else [int(i) for i in idxs]
        return self.graph.get_pruning_group(root, pruner.prune_out_channels, idxs)


def _compute_layers(model: nn.Module) -> dict[nn.Module, str]:
    return {m: n for n, m in model.named_modules() if is_compute(m) or isinstance(m, nn.Embedding)}


def _describe(tp_group: tp.Group, graph: tp.DependencyGraph, names: dict[nn.Module, str],
              order: dict[str, int]) -> PrunableGroup:
    producers, consumers, members, widths, params = [], [], [], {}, []
    modules = dict(graph.model.named_modules())
    for dep, idxs in tp_group:
        module = dep.target.module
        name = graph._module2name.get(module)
        if name is None:
            continue
        if name not in modules:  # a parameter used directly in forward (a class token, a layer scale)
            params.append(_parameter_name(graph.model, module))
            continue
        members.append(name)
        if module in names:
            out = graph.is_out_channel_pruning_fn(dep.handler)
            (producers if out else consumers).append(name)
            if not out:
                widths[name] = widths.get(name, 0) + len(idxs)
    producers = sorted(set(producers), key=order.__getitem__)
    depthwise = {p for p in producers if _is_depthwise(graph.model.get_submodule(p))}
    # a depthwise conv's input is its output's channels; any other layer that both produces and
    # consumes the group (a branch added back to its own input) loses input channels too
    consumers = sorted(set(consumers) - depthwise, key=order.__getitem__)
    root = producers[0]
    root_module = graph.model.get_submodule(root)
    if len(producers) - len(depthwise) > 1:
        kind = "residual"
    elif isinstance(root_module, (nn.Linear, nn.Embedding)) or is_transposed_linear(root_module):
        kind = "linear"
    else:
        kind = "depthwise" if depthwise else "conv"
    channels = len(tp_group[0].idxs)
    return PrunableGroup(root, channels, kind, tuple(producers), tuple(consumers),
                         tuple(sorted(set(members), key=lambda n: order.get(n, 1 << 30))),
                         tuple(widths[c] for c in consumers), tuple(sorted(set(params))))


def _folded(g: PrunableGroup, graph: tp.DependencyGraph, model: nn.Module) -> PrunableGroup:
    """``g`` as ``fold`` equal slices of its producer's output when one channel of it takes a channel
    from each slice with it (a fused query/key/value projection split into three, each slice's
    channel tied to the others' by the attention that multiplies them): its channels are then one
    slice's, each standing for itself in every slice."""
    root = model.get_submodule(g.name)
    if len(g.producers) != 1 or not any(out.type == tp.ops.OPTYPE.SPLIT for out in graph.module2node[root].outputs):
        return g
    taken = sorted(int(i) for dep, idxs in graph.get_pruning_group(root, graph.get_pruner_of_module(root)
                                                                   .prune_out_channels, [0])
                   if dep.target.module is root for i in idxs)
    fold = len(taken)
    if fold < 2 or g.channels % fold or taken != list(range(0, g.channels, g.channels // fold)):
        return g
    return replace(g, channels=g.channels // fold, fold=fold)


def _parameter_name(model: nn.Module, pseudo: object) -> str:
    """The model's name for the parameter behind Torch-Pruning's pseudo-module ``pseudo``."""
    tensor = pseudo if isinstance(pseudo, torch.Tensor) else getattr(pseudo, "parameters", None)
    return next((n for n, p in model.named_parameters() if p is tensor), "a parameter")


_UNPRUNABLE = (nn.RNNBase,)  # gates need their own rules


def _unprunable(m: nn.Module) -> bool:
    """A recurrent layer, or an ``nn.MultiheadAttention`` of separate key/value widths or extra
    key/value biases (only one whose q, k, v and output share the embedding width prunes)."""
    if isinstance(m, nn.MultiheadAttention):
        return not m._qkv_same_embed_dim or m.bias_k is not None
    return isinstance(m, _UNPRUNABLE)


def _is_grouped(m: nn.Module) -> bool:
    """A grouped convolution that is not depthwise: its channels cannot be pruned independently."""
    return isinstance(m, CONVS) and m.groups > 1 and not _is_depthwise(m)


def _is_depthwise(m: nn.Module) -> bool:
    return (isinstance(m, CONVS) and not isinstance(m, TRANSPOSED) and m.groups > 1
            and m.groups == m.in_channels == m.out_channels)


def check_static_paths(model: nn.Module, example: ModelInput, tries: int = 2) -> None:
    """Refuse a model whose forward runs different layers for different inputs (data-dependent
    control flow): the traced graph would describe one path only, and pruning would break the others."""
    first = executed_modules(model, example)
    for other in perturbed(example, tries):
        path = executed_modules(model, other)
        if path != first:
            odd = next((n for n in path + first if (n in path) != (n in first)), path[0] if path else "?")
            raise AnalysisError(f"{type(model).__name__} runs different layers for different inputs (layer "
                                f"{odd!r} runs for some only): autoprune traces one path; make the forward "
                                f"run the same layers for every input (e.g. compute both branches and select)")


def analyse_model(model: nn.Module, example_input: ModelInput,
                  exclude: Iterable[str | type] = (), prune_output_layer: bool = False) -> ModelAnalysis:
    """Find the prunable groups of ``model``.

    Args:
        example_input: one batch of input (batch size 1 is enough) for tracing: a tensor, a tuple of
            tensors (positional inputs) or a dict of tensors (keyword inputs).
        exclude: module names or module types whose output channels must not be pruned, or names of
            parameters used in forward (the groups indexing them are kept whole).
        prune_output_layer: never set in normal use; the output layer's classes are not prunable.

    Raises:
        AnalysisError: when tracing fails or nothing is prunable.
    """
    check_tensors(example_input, "the example input")
    exclude = list(exclude)
    module_names = {n for n, _ in model.named_modules()}
    parameter_names = {n for n, _ in model.named_parameters()}
    unknown = [e for e in exclude if isinstance(e, str) and e not in module_names | parameter_names]
    if unknown:
        raise AnalysisError(f"cannot exclude {unknown[0]!r}: no such module or parameter; names look like "
                            f"{', '.join(list(_compute_layers(model).values())[:3])}")
    trace = trace_layers(model, example_input)
    layers, output_layer = trace.layers, (trace.output_layers[-1] if trace.output_layers else None)
    check_static_paths(model, example_input)
    ignored = [m for n, m in model.named_modules()
               if n in exclude or any(isinstance(e, type) and isinstance(m, e) for e in exclude)]
    if not prune_output_layer:
        ignored.extend(model.get_submodule(n) for n in trace.output_layers)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False,
                                                          output_transform=flat_outputs)
            tp_groups = list(graph.get_all_groups(ignored_layers=ignored,
                                                  root_module_types=[*ROOTS, *transposed_linear_types(model)]))
    except Exception as exc:  # tracing errors from arbitrary user models
        raise AnalysisError(f"cannot trace the model for pruning: {type(exc).__name__}: {exc}") from exc
    names = _compute_layers(model)
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    groups = [_describe(g, graph, names, order) for g in tp_groups]
    kept_whole = {g.name: f"indexes parameter {p!r}, excluded" for g in groups for p in g.parameters if p in exclude}
    kept_whole.update({g.name: f"touches {type(model.get_submodule(n)).__name__} {n!r}, whose channels autoprune "
                               f"does not prune (recurrent layers, and nn.MultiheadAttention with its own key/value "
                               f"widths or biases, are kept whole)"
                       for g in groups for n in g.members if _unprunable(model.get_submodule(n))})
    groups = [_folded(g, graph, model) for g in groups if g.channels > 1 and g.name not in kept_whole]
    groups, unblocked = _channel_units(groups, model)
    kept_whole.update(unblocked)
    groups = [g for g in groups if g.name not in unblocked]
    groups = _distinct_names(groups, model)
    if not (trace.all_direct or prune_output_layer):  # an output after a functional op: find what it carries
        bound = output_bound(model, example_input, groups)
        kept_whole.update(bound)
        groups = [g for g in groups if g.name not in bound]
    groups.sort(key=lambda g: order[g.name])
    if not groups:
        raise AnalysisError("nothing to prune: the model has no Conv1d/Conv2d/Linear layer whose output "
                            "channels can be removed (the output layer never is)")
    layers = _link_mha(_link_layers(layers, groups), groups, model) + _attention_layers(layers, groups)
    return ModelAnalysis(model, example_input, groups, layers, output_layer, graph, kept_whole,
                         tuple(trace.output_layers))


HEAD_COUNTS = ("num_attention_heads", "num_heads", "n_heads", "n_head")  # how attention modules name them
HEAD_SIZES = ("attention_head_size", "head_dim", "head_size")


def head_attributes(module: nn.Module) -> tuple[str, str] | None:
    """The names of ``module``'s head count and head size, when it is an attention module."""
    count = next((a for a in HEAD_COUNTS if isinstance(getattr(module, a, None), int)), None)
    size = next((a for a in HEAD_SIZES if isinstance(getattr(module, a, None), int)), None)
    return (count, size) if count and size else None


def _attention_heads(g: PrunableGroup, model: nn.Module) -> tuple[int, tuple[str, ...]]:
    """The head size and the attention modules when ``g`` is the query/key/value projections of
    multi-head attention: several producers (query, key, value) under one module that declares heads
    tiling the group's channels, or one fused producer folded into its slices (an output projection
    alone under it is not a head group)."""
    found, size = [], 0
    parents = [p.rpartition(".")[0] for p in g.producers]
    for parent in [p for p in dict.fromkeys(parents) if parents.count(p) > 1 or g.fold > 1]:
        module = model.get_submodule(parent)
        names = head_attributes(module)
        if names and parent and getattr(module, names[0]) > 1 \
                and getattr(module, names[0]) * getattr(module, names[1]) == g.channels:
            found.append(parent)
            size = getattr(module, names[1])
    return size, tuple(found)


def _channel_units(groups: list[PrunableGroup], model: nn.Module) -> tuple[list[PrunableGroup], dict[str, str]]:
    """Groups whose channels must go in units: normalised by a ``GroupNorm`` (whole norm groups, so
    the others keep their statistics), touching a grouped convolution (the same position in each
    of its groups, as the grouped weight keeps one layout for all), or the projections of
    multi-head attention (whole heads; the module's head count follows). A norm or grouped
    convolution over only part of the group's channels, a one-group norm, or two kinds in one group
    keep the group whole (the reason returned)."""
    out, whole = [], {}
    for g in groups:
        blocks, interleaved = set(), set()
        head_size, heads = _attention_heads(g, model)
        if heads:
            blocks.add(head_size)
        for name in g.members:
            m = model.get_submodule(name)
            if isinstance(m, nn.GroupNorm):
                if m.num_channels != g.channels:
                    whole[g.name] = (f"GroupNorm {name!r} normalises {m.num_channels} channels, of which this group "
                                     f"holds {g.channels}; its groups cannot be removed whole")
                elif m.num_groups == 1:
                    whole[g.name] = f"GroupNorm {name!r} has one group: removing any channel changes every statistic"
                else:
                    blocks.add(m.num_channels // m.num_groups)
            elif isinstance(m, nn.MultiheadAttention):  # its embedding: as many channels from each head
                if m.embed_dim != g.channels:
                    whole[g.name] = (f"MultiheadAttention {name!r} embeds {m.embed_dim} channels, of which this group "
                                     f"holds {g.channels}")
                else:
                    interleaved.add(m.num_heads)
            elif _is_grouped(m):
                width = m.out_channels if name in g.producers else m.in_channels
                if width != g.channels:
                    whole[g.name] = (f"grouped convolution {name!r} ({m.groups} groups) takes {width} channels, of "
                                     f"which this group holds {g.channels}; its groups cannot be thinned evenly")
                else:
                    interleaved.add(m.groups)
        if g.name in whole or not (blocks or interleaved):
            out.append(g)
        elif blocks and interleaved or len(interleaved) > 1 or len(blocks) > 1:
            sizes = sorted(blocks | interleaved)
            whole[g.name] = (f"its channels would have to go in units of several sizes at once ({sizes}: norm "
                             f"groups, convolution groups or heads)")
        else:
            out.append(replace(g, step=next(iter(blocks or interleaved)), interleaved=bool(interleaved), heads=heads))
    return out, whole


def hidden_width_groups(analysis: ModelAnalysis) -> list[str]:
    """Groups that feed the queries, keys and values of attention pruned in heads: a transformer's
    hidden width (its residual stream), which every block reads and writes."""
    projections = {p for g in analysis.groups if g.heads for p in g.producers}
    model = analysis.model
    return [g.name for g in analysis.groups if not g.heads and (projections.intersection(g.consumers) or any(
        isinstance(model.get_submodule(n), nn.MultiheadAttention) for n in g.members))]


def _link_mha(layers: list[LayerSpec], groups: list[PrunableGroup], model: nn.Module) -> list[LayerSpec]:
    """nn.MultiheadAttention's parts priced with the group of its embedding (dense when it is kept whole)."""
    owner = {n: g.name for g in groups for n in g.members if isinstance(model.get_submodule(n), nn.MultiheadAttention)}
    return [replace(s, in_group=owner.get(s.module), out_group=owner.get(s.module),
                    in_slices=((owner[s.module], s.in_channels, s.in_channels),) if s.module in owner else ())
            if s.module else s for s in layers]


def _attention_layers(layers: list[LayerSpec], groups: list[PrunableGroup]) -> list[LayerSpec]:
    """Multi-head attention's matmuls as layers the cost models price: one per attention module a
    head group prunes, over the tokens its projections see, with the group's channels (heads)."""
    tokens = {spec.name: spec.in_hw[0] for spec in layers}
    return [LayerSpec(name, "attention", g.channels, g.channels, 1, (1, 1), 1, (tokens[g.producers[0]], 1),
                      (tokens[g.producers[0]], 1), in_group=g.name, out_group=g.name, head_dim=g.step)
            for g in groups for name in g.heads if g.producers[0] in tokens]


def output_bound(model: nn.Module, example: ModelInput, groups: list[PrunableGroup]) -> dict[str, str]:
    """Groups whose channels reach a model output (its shape would change if they were pruned), each
    with the reason: found by trial cuts on copies, all groups at once and then one at a time."""
    dense = _shapes_after(model, example, [])
    if dense is None or _shapes_after(model, example, groups) in (dense, None):
        return {}
    bound = {}
    for g in groups:
        got = _shapes_after(model, example, [g])
        if got is not None and got != dense:
            path, before, after = next((p, a, b) for (p, a), (_, b) in zip(dense, got) if a != b)
            bound[g.name] = (f"its channels are part of the model's output {path or 'tensor'} (shape {list(before)} "
                             f"would become {list(after)}); outputs keep their width")
    return bound


def _shapes_after(model: nn.Module, example: ModelInput, cut: list[PrunableGroup]) -> list | None:
    """The output shapes of a copy of ``model`` with half of each group in ``cut`` removed (None when
    the cut fails: that is for :func:`~autoprune.pruning.prunability.check_prunable` to explain)."""
    trial = copy.deepcopy(model).eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if cut:
                graph = tp.DependencyGraph().build_dependency(trial, example_inputs=example, verbose=False,
                                                              output_transform=flat_outputs)
                for g in cut:
                    root = trial.get_submodule(g.name)
                    graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels,
                                            list(range(g.channels // 2))).prune(record_history=False)
            with torch.no_grad():
                shapes = output_shapes(call(trial, example))
    except Exception:  # noqa: BLE001 - any failure of the trial: not this check's to report
        return None
    return shapes


def _distinct_names(groups: list[PrunableGroup], model: nn.Module) -> list[PrunableGroup]:
    """Groups that share a first producer (its output split by ``torch.cat`` into slices, each tied
    by a residual add to one branch) renamed after a producer whose whole output is theirs; the
    group is then rooted there, so its channel indices address exactly its slice."""
    by_name: dict[str, list[PrunableGroup]] = {}
    for g in groups:
        by_name.setdefault(g.name, []).append(g)
    shared = {p for same in by_name.values() if len(same) > 1 for g in same for p in g.producers}
    counts: dict[str, int] = {}
    for g in groups:
        for p in g.producers:
            counts[p] = counts.get(p, 0) + 1
    out = []
    for g in groups:
        if len(by_name[g.name]) == 1:
            out.append(g)
            continue
        own = [p for p in g.producers if counts[p] == 1 and out_width(model.get_submodule(p)) == g.channels]
        if not own:
            raise AnalysisError(f"the output of {g.name!r} is split into slices that no single layer produces "
                                f"whole ({', '.join(sorted(shared))}); exclude {g.name!r} with --exclude")
        out.append(replace(g, name=own[0], producers=(own[0], *(p for p in g.producers if p != own[0]))))
    return out


def _link_layers(layers: list[LayerSpec], groups: list[PrunableGroup]) -> list[LayerSpec]:
    """Each layer with the group its output belongs to and the groups that feed its input; a layer
    whose output is split over several groups (``out_slices``) is priced by all of them."""
    out_of: dict[str, str] = {}
    split: dict[str, list[tuple[str, int]]] = {}
    for g in groups:
        for p in g.producers:
            out_of.setdefault(p, g.name)
            split.setdefault(p, []).extend([(g.name, g.channels)] * g.fold)
    feeds: dict[str, list[tuple[str, int, int]]] = {}
    for g in groups:
        for consumer, width in zip(g.consumers, g.consumer_widths or [g.channels] * len(g.consumers)):
            feeds.setdefault(consumer, []).append((g.name, g.channels, width))
    linked = []
    for spec in layers:
        out_g = out_of.get(spec.name)
        slices = () if spec.kind == "depthwise" else tuple(feeds.get(spec.name, ()))
        in_g = out_g if spec.kind == "depthwise" else (slices[0][0] if slices else None)
        out_slices = tuple(split[spec.name]) if len(split.get(spec.name, ())) > 1 else ()
        linked.append(replace(spec, in_group=in_g, out_group=out_g, in_slices=slices, out_slices=out_slices))
    return linked
