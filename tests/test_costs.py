import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from autoprune.analysis import analyse_model
from autoprune.costs import (
    COST_MODELS,
    DeviceProfile,
    FlopsCostModel,
    LatencyTable,
    LookupTableCostModel,
    RooflineCostModel,
    create_cost_model,
    list_cost_models,
    load_device_profile,
    profile_latency_table,
)
from autoprune.costs.layer_graphs import check_graph, layer_graph
from autoprune.costs.lut import Calibration, LayerTable, channel_levels
from autoprune.errors import ConfigError
from autoprune.latency import LatencySettings
from autoprune.models import create_model
from autoprune.pruning import architecture_for

PLUGIN_DIST = Path(__file__).parent / "plugin_dist"
FAST = LatencySettings(warmup=2, repeats=5)


@pytest.fixture(scope="module")
def tiny_table(request):
    from conftest import TinyResNet

    torch.manual_seed(0)
    a = analyse_model(TinyResNet().eval(), torch.randn(1, 1, 28, 28))
    # 12 calibration models: enough for the fit to be determined, so no layer weight is left at 0 by chance
    return a, profile_latency_table(a, "tiny", round_to=4, settings=FAST, calibration_samples=12, progress=False)


def test_flops_cost_halves_with_half_the_channels_of_a_plain_net():
    a = analyse_model(create_model("vgg_small"), torch.randn(1, 1, 28, 28))
    flops = FlopsCostModel(a.layers)
    dense = flops.dense_cost()
    inner = architecture_for(a.groups, {g.name: 0.5 for g in a.groups})
    half = flops.cost(inner)
    assert dense.latency_ms is None and dense.value("flops") == dense.flops
    assert 0.25 * dense.flops <= half.flops < 0.3 * dense.flops  # ~quadratic in width
    assert half.params < dense.params


def test_roofline_is_monotone_and_reads_user_profiles(tmp_path, tiny_analysis):
    model = RooflineCostModel(tiny_analysis, "cortex-a53")
    small = {g.name: 1 for g in tiny_analysis.groups}
    assert model.cost(small).latency_ms < model.dense_cost().latency_ms
    (tmp_path / "npu.yaml").write_text("peak_gflops: 1000\nbandwidth_gbs: 50\noverhead_us: 1\n")
    npu = load_device_profile(tmp_path / "npu.yaml")
    assert npu.name == "npu" and RooflineCostModel(tiny_analysis, npu).dense_cost().latency_ms < \
        model.dense_cost().latency_ms
    (tmp_path / "bad.yaml").write_text("peak_gflops: -1\nbandwidth_gbs: 5\n")
    with pytest.raises(ConfigError, match="peak_gflops must be > 0"):
        load_device_profile(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="unknown device profile 'tpu'; known: cortex-a53"):
        load_device_profile("tpu")
    with pytest.raises(ConfigError):
        DeviceProfile("x", 1.0, 0.0)


def test_layer_graphs_are_valid_onnx(tiny_analysis):
    for spec in tiny_analysis.layers:
        c_out = 3 if spec.kind != "depthwise" else 4
        check_graph(layer_graph(spec, 4 if spec.in_group else spec.in_channels, c_out))


def test_channel_levels_are_the_reachable_counts():
    assert channel_levels(64, True, 8) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert channel_levels(20, True, 8) == [8, 16, 20] and channel_levels(4, True, 8) == [4]
    assert channel_levels(3, False, 8) == [3]
    thinned = channel_levels(256, True, 1)
    assert len(thinned) == 17 and thinned[0] == 1 and thinned[-1] == 256


def test_layer_table_interpolates_and_is_monotone():
    t = LayerTable([1, 3], [2, 4], np.array([[1.0, 2.0], [3.0, 0.5]]))
    assert t.ms[1, 1] == 3.0  # noise that made a wider layer faster is evened out
    assert t.predict(2, 3) == pytest.approx((1.5 + 3.0) / 2)
    assert t.predict(0, 0) == 1.0 and t.predict(9, 9) == 3.0


def test_lut_profile_save_load_predict(tmp_path, tiny_table):
    a, table = tiny_table
    assert table.meta["device"]["cores"] == os.cpu_count() and table.meta["profile_seconds"] > 0
    path = table.save(tmp_path / "t.csv")
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and json.loads(first[2:])["format"] == "autoprune-latency-table"
    lut = LookupTableCostModel(a, path)
    dense = lut.dense_cost().latency_ms
    assert dense == pytest.approx(LookupTableCostModel(a, table).dense_cost().latency_ms)
    thin = {g.name: 1 for g in a.groups}
    smaller = lut.cost(thin).latency_ms
    # the loaded table predicts what the profiled one does; a positive, finite time (not "smaller than
    # dense": on a model this tiny, tolls for widths off the SIMD blocks can make it the slower one)
    assert smaller == pytest.approx(LookupTableCostModel(a, table).cost(thin).latency_ms) and 0 < smaller < float("inf")


def test_lut_that_does_not_match_the_model_names_the_missing_group(tmp_path, tiny_table):
    a, table = tiny_table
    path = table.save(tmp_path / "t.csv")
    lines = [line for line in path.read_text().splitlines() if not line.startswith("project.0,")]
    (tmp_path / "cut.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="no entry for layer 'project.0' \\(group 'project.0'\\)"):
        LookupTableCostModel(a, tmp_path / "cut.csv")
    other = analyse_model(create_model("mlp"), torch.randn(1, 1, 28, 28))
    with pytest.raises(ConfigError, match="no entry for layer 'body.0'"):
        LookupTableCostModel(other, path)
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="not an autoprune latency table"):
        LatencyTable.load(tmp_path / "junk.csv")


def test_measured_cost_model_caches_and_shrinks(tiny_analysis):
    m = create_cost_model("ort-measured", tiny_analysis)
    arch = {g.name: 1 for g in tiny_analysis.groups}
    first = m.cost(arch).latency_ms
    assert m.cost(arch).latency_ms == first and len(m._cache) == 1
    assert m.describe()["backend"] == "onnxruntime"


def test_unknown_cost_model_lists_known_ones(tiny_analysis):
    with pytest.raises(ConfigError, match="unknown cost model 'npu'; known: flops, lut, ort-measured"):
        create_cost_model("npu", tiny_analysis)
    with pytest.raises(ConfigError, match="needs a table"):
        create_cost_model("lut", tiny_analysis)


def test_entry_point_plugin_is_used_by_name(monkeypatch, tiny_analysis):
    """A plug-in found outside site-packages is neither listed nor loaded unless the user names it."""
    import autoprune

    monkeypatch.syspath_prepend(str(PLUGIN_DIST))
    monkeypatch.setattr(COST_MODELS, "_factories", dict(COST_MODELS._factories))
    assert "channel-count" not in list_cost_models()
    with pytest.raises(ConfigError, match="outside site-packages"):
        create_cost_model("channel-count", tiny_analysis)
    with autoprune.consent("channel-count"):
        model = create_cost_model("channel-count", tiny_analysis)
    dense = model.dense_cost().latency_ms
    assert dense == pytest.approx(sum(s.out_channels for s in tiny_analysis.layers) * 1e-3)


def test_cli_profile_and_plugin_by_name(tmp_path, monkeypatch, capsys):
    from autoprune.cli.main import main
    from autoprune.costs import list_cost_models

    monkeypatch.syspath_prepend(str(PLUGIN_DIST))
    assert main(["profile", "mlp", "--round-to", "128", "--calibration", "2", "--out", str(tmp_path / "mlp.csv")]) == 0
    assert "profiled 3 layers of mlp" in capsys.readouterr().out and (tmp_path / "mlp.csv").is_file()
    assert "channel-count" not in list_cost_models()  # beside, not installed: not offered


def test_per_layer_calibration_recovers_weights_and_alignment_tolls():
    from autoprune.costs.calibration import fit_calibration

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.1, (80, 5))
    flags = rng.integers(0, 2, (80, 2)).astype(float)
    true, tolls = np.array([0.5, 1.0, 1.5, 0.0, 2.0]), np.array([0.02, 0.0])
    y = x @ true + flags @ tolls + 0.05
    weights, fitted, offset = fit_calibration(x, flags, y, scale=1.0, ridge=1e-6)
    assert np.allclose(weights, true, atol=0.02) and offset == pytest.approx(0.05, abs=0.005)
    assert np.allclose(fitted, tolls, atol=0.002)
    noisy = y + rng.normal(0, 0.01, len(y))
    weights, fitted, _ = fit_calibration(x, flags, noisy - 10 * x[:, 3] - 0.05 * flags[:, 1], scale=1.0, ridge=1e-6)
    assert min(weights) >= 0.0 and min(fitted) >= 0.0  # removing channels never earns a layer negative time


def test_interleaved_timing_keeps_each_candidates_best_pass(monkeypatch):
    import autoprune.latency as latency

    clock, calls = [0.0], {"a": 0, "b": 0}
    monkeypatch.setattr(latency.time, "perf_counter", lambda: clock[0])  # a clock the calls advance

    def burst_then_quiet():  # 6 ms a call during its first pass (a burst of interference), 2 ms after
        calls["a"] += 1
        clock[0] += 0.006 if calls["a"] <= 4 else 0.002

    def steady():
        calls["b"] += 1
        clock[0] += 0.001

    passes = []
    best = latency.interleaved_ms([burst_then_quiet, steady], warmup=1, repeats=3, passes=3,
                                  progress=lambda: passes.append(1))
    assert best == [pytest.approx(2.0), pytest.approx(1.0)]  # the burst pass is not the answer
    assert calls == {"a": 1 + 3 + 2 * (1 + 3), "b": 1 + 3 + 2 * (1 + 3)} and len(passes) == 6


def test_shares_against_a_reference_hold_when_the_speed_switches_mid_pass(monkeypatch):
    import autoprune.latency as latency

    clock, calls = [0.0], [0]
    monkeypatch.setattr(latency.time, "perf_counter", lambda: clock[0])

    def timed(ms):  # a call costs ``ms``; the machine runs 1.5x slow until the middle of the first pass
        def fn():
            calls[0] += 1
            clock[0] += ms / 1e3 * (1.5 if calls[0] <= 10 else 1.0)
        return fn

    a, b, reference = timed(1.0), timed(1.0), timed(2.0)
    got = latency.against_reference([a, b], reference, warmup=1, repeats=3, passes=3)
    # the first pass read ``a`` slow beside a reference read slow then fast (share 0.6): outvoted
    assert got.shares == [pytest.approx(0.5), pytest.approx(0.5)] and calls[0] == 3 * 5 * 4
    assert got.best_ms == [pytest.approx(1.0), pytest.approx(1.0)] and got.reference_ms == pytest.approx(2.0)
    calls[0] = 0
    slow_then_fast = latency.interleaved_passes([a, b], warmup=1, repeats=3, passes=2)
    assert slow_then_fast == [[pytest.approx(1.5), pytest.approx(1.5)], [pytest.approx(1.0), pytest.approx(1.0)]]


def test_measured_shares_of_a_reference_on_a_real_model(tiny_analysis):
    from autoprune.costs import MeasuredLatencyCostModel

    m = MeasuredLatencyCostModel(tiny_analysis, LatencySettings(warmup=2, repeats=10, rounds=3))
    smallest = {g.name: 1 for g in tiny_analysis.groups}
    timed = m.shares_of([smallest, {}], {})
    assert 0 < timed.shares[0] < 1 and timed.shares[1] == pytest.approx(1.0, rel=0.5)
    assert len(timed.best_ms) == 2 and timed.reference_ms > 0 and not m._cache  # not cached: a fresh reading


def test_measured_latencies_are_interleaved_cached_and_shrink(tiny_analysis, monkeypatch):
    import autoprune.costs.measured as measured_module
    from autoprune.costs import MeasuredLatencyCostModel

    m = MeasuredLatencyCostModel(tiny_analysis, LatencySettings(warmup=2, repeats=10, rounds=3))
    archs = [{}, {g.name: 1 for g in tiny_analysis.groups}, {}]
    ticks = []
    dense, smallest, again = m.latencies(archs, progress=lambda: ticks.append(1))
    assert dense == again and 0 < smallest < dense and len(m._cache) == 2
    assert len(ticks) == 2 * (1 + 3)  # each new candidate: built once, timed in each of 3 passes
    monkeypatch.setattr(measured_module, "measure_latencies", lambda *a, **k: pytest.fail("re-measured"))
    assert m.latencies(archs[:2]) == [dense, smallest] and m.latency({}) == dense


def test_torch_backend_measures_several_models_and_restores_their_mode(tiny_model):
    from autoprune.latency import measure_latencies

    model = copy.deepcopy(tiny_model).train()
    times = measure_latencies([model, tiny_model], (1, 28, 28), LatencySettings("torch", warmup=1, repeats=3, rounds=2))
    assert len(times) == 2 and all(t > 0 for t in times) and model.training


def _with_tolls(table, tolls):
    meta = copy.deepcopy(table.meta)
    meta["calibration"]["alignment_tolls"] = tolls
    return LatencyTable(table.tables, meta)


def test_alignment_tolls_price_off_block_widths(tmp_path, tiny_table):
    a, table = tiny_table
    plain = _with_tolls(table, {})
    tolled = _with_tolls(table, {"expand.0": {"16": 0.01}, "project.0": {"8": 0.002}})
    for arch, extra in [({}, 0.002), ({"expand.0": 8}, 0.012), ({"expand.0": 8, "project.0": 8}, 0.01)]:
        assert tolled.predict(a.layers, arch) - plain.predict(a.layers, arch) == pytest.approx(extra)
    path = tolled.save(tmp_path / "t.csv")
    assert json.loads(path.read_text().splitlines()[0][2:])["version"] == 2
    assert LatencyTable.load(path).predict(a.layers, {"expand.0": 8}) == pytest.approx(tolled.predict(a.layers, {"expand.0": 8}))
    text = path.read_text().replace('"16": 0.01', '"16": -0.01')
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ConfigError, match="calibration metadata is malformed"):
        LatencyTable.load(tmp_path / "bad.csv")
    old = path.read_text().replace('"version": 2', '"version": 1').replace(', "alignment_tolls": {"expand.0": {"16": 0.01}, "project.0": {"8": 0.002}}', "")
    (tmp_path / "v1.csv").write_text(old)
    assert LatencyTable.load(tmp_path / "v1.csv").predict(a.layers, {}) == pytest.approx(plain.predict(a.layers, {}))


def test_profile_advises_a_coarser_rounding_when_off_block_widths_are_costly(tiny_table):
    from autoprune.cli.profile_cmd import alignment_hint

    _, table = tiny_table
    tolled = _with_tolls(table, {"expand.0": {"16": 0.01}, "project.0": {"16": 0.005}})
    hint = alignment_hint(tolled, 0.5, round_to=8)
    assert "multiples of 16 cost up to 0.0150 ms (3.0% of dense)" in hint and "--round-to 16" in hint
    assert alignment_hint(tolled, 0.5, round_to=16) is None and alignment_hint(tolled, 5.0, round_to=8) is None


def test_calibration_learns_a_toll_for_off_block_widths(monkeypatch, tiny_table):
    import autoprune.costs.calibration as calibration

    a, table = tiny_table

    class SyntheticMeasurement:  # a machine whose only context effect: expand.0 off 16-blocks costs 0.02 ms
        def __init__(self, analysis, settings):
            self.settings = settings

        def latencies(self, archs, progress=None):
            return [0.9 * table.layer_sum(a.layers, arch) + 0.05
                    + 0.02 * (arch.get("expand.0", 16) % 16 != 0) for arch in archs]

    monkeypatch.setattr(calibration, "MeasuredLatencyCostModel", SyntheticMeasurement)
    result = calibration.calibrate(table, a, FAST, samples=60, seed=0, progress=False)
    assert result.alignment_tolls["expand.0"]["16"] == pytest.approx(0.02, abs=1e-3)
    assert sum(t for per in result.alignment_tolls.values() for t in per.values()) == pytest.approx(0.02, abs=2e-3)
    assert all(w == pytest.approx(0.9, abs=0.05) for w in result.layer_weights.values())
    assert result.offset == pytest.approx(0.05, abs=2e-3)
    plain = calibration.calibrate(table, a, FAST, samples=60, seed=0, progress=False, tolls=False)
    assert plain.alignment_tolls == {}


def test_default_calibration_size_covers_every_fitted_term():
    from autoprune.costs.calibration import default_samples

    r20 = analyse_model(create_model("resnet20"), torch.randn(1, 1, 28, 28))
    mb2 = analyse_model(create_model("mobilenetv2_small"), torch.randn(1, 1, 28, 28))
    assert default_samples(r20.layers, 8) == 80 and default_samples(r20.layers, 16) == 80
    assert default_samples(r20.layers, 4) == 2 * (22 + 2 * 12) + 10 and default_samples(mb2.layers, 4) == 100


def test_oversized_tables_and_absurd_channel_counts_are_refused_in_one_line(tmp_path, tiny_table):
    from autoprune.costs import lut

    path = tiny_table[1].save(tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    header, rows = lines[:2], lines[2:]
    layer, _, c_out, ms = rows[0].split(",")
    (tmp_path / "huge.csv").write_text("\n".join(header + [f"{layer},1{'0' * 23},{c_out},{ms}", *rows[1:]]) + "\n")
    with pytest.raises(ConfigError, match="channel counts|malformed"):
        LatencyTable.load(tmp_path / "huge.csv")
    big = tmp_path / "big.csv"
    big.write_text(path.read_text() + "\n" * (lut.MAX_TABLE_BYTES + 1))
    with pytest.raises(ConfigError, match="over the 20 MiB limit"):
        LatencyTable.load(big)


def test_a_deeply_nested_policy_file_is_refused_in_one_line(tmp_path):
    from autoprune.errors import PolicyError
    from autoprune.policy import PruningPolicy

    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(PolicyError):
        PruningPolicy.load(tmp_path / "deep.json")


def _plugin_dist(root: Path) -> Path:
    """A site folder with two cost-model plug-ins: one whose module fails to import, one that
    reads the ``device`` option it is given."""
    (root / "broken_npu.py").write_text("raise ImportError('the vendor SDK is missing')\n")
    (root / "options_npu.py").write_text(
        "from autoprune.costs import Cost, CostModel, analytic_counts\n"
        "class M(CostModel):\n"
        "    name = 'options-npu'\n"
        "    def __init__(self, layers, ms):\n"
        "        super().__init__(layers); self.ms = ms\n"
        "    def cost(self, arch):\n"
        "        f, p = analytic_counts(self.layers, arch)\n"
        "        return Cost(f, p, latency_ms=self.ms * f / 1e6)\n"
        "def make(analysis, hardware_profile=None, **options):\n"
        "    return M(analysis.layers, float(hardware_profile))\n")
    info = root / "npu_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: npu-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[autoprune.cost_models]\nbroken-npu = broken_npu:make\n"
                                           "options-npu = options_npu:make\n")
    return root


def test_a_broken_plugin_fails_only_when_named_and_plugins_get_their_options(tmp_path, monkeypatch, capsys):
    from autoprune.cli.main import main

    monkeypatch.syspath_prepend(str(_plugin_dist(tmp_path)))  # installed beside: found by its entry points
    monkeypatch.setattr(COST_MODELS, "_factories", dict(COST_MODELS._factories))  # loaded for this test only
    base = ["-q", "search", "--model", "mlp", "--data", "synthetic", "--agent", "uniform", "--val-size", "64",
            "--bn-batches", "1"]
    assert main([*base, "--cost-model", "flops", "--out", str(tmp_path / "a")]) == 0  # the broken one does not matter
    capsys.readouterr()
    assert main([*base, "--cost-model", "broken-npu", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "plug-in 'broken-npu'" in err and "vendor SDK" in err and err.count("\n") == 1
    assert main([*base, "--cost-model", "options-npu", "--hardware-profile", "2.0", "--budget", "0.1ms",
                 "--out", str(tmp_path / "c")]) == 0
    policy = json.loads((tmp_path / "c" / "best_policy.json").read_text())
    macs = FlopsCostModel(analyse_model(create_model("mlp"), torch.randn(1, 1, 28, 28)).layers).dense_cost().flops
    assert policy["budget"]["dense"] == pytest.approx(2.0 * macs / 1e6)  # the plug-in priced with --hardware-profile 2.0


def test_a_share_budget_is_a_share_of_the_dense_model_measured_when_the_table_was_profiled(
        tmp_path, monkeypatch, tiny_table):
    import autoprune.costs.calibration as calibration
    from autoprune.budget import Budget

    a, table = tiny_table

    class DenseOffTheLine:  # the fit's line through the pruned models misses the dense model by 5 %
        def __init__(self, analysis, settings):
            self.settings = settings

        def latencies(self, archs, progress=None):
            line = [0.9 * table.layer_sum(a.layers, arch) + 0.05 for arch in archs]
            return [0.95 * ms if arch == {} else ms for ms, arch in zip(line, archs)]

    monkeypatch.setattr(calibration, "MeasuredLatencyCostModel", DenseOffTheLine)
    fitted = calibration.calibrate(table, a, FAST, samples=60, seed=0, progress=False, tolls=False)
    measured = 0.95 * (0.9 * table.layer_sum(a.layers, {}) + 0.05)
    assert fitted.dense_ms == pytest.approx(measured)
    recorded = LatencyTable(table.tables, {**table.meta, "calibration": fitted.to_dict()})
    lut = LookupTableCostModel(a, recorded.save(tmp_path / "t.csv"))  # through the file
    assert lut.dense_cost().latency_ms > 1.02 * measured  # the table's own dense figure is off
    budget = Budget.from_spec(lut, "50%")
    assert budget.value == pytest.approx(0.5 * measured) and budget.dense_measured
    assert Budget.from_dict(budget.to_dict()) == budget
    with pytest.raises(ConfigError, match="above the dense model's cost"):  # absolute budgets: the same dense
        Budget.from_spec(lut, f"{1.01 * measured:.6f}ms")
    older = {k: v for k, v in fitted.to_dict().items() if k != "dense_ms"}  # a table from before the record
    old = LookupTableCostModel(a, LatencyTable(table.tables, {**table.meta, "calibration": older}))
    assert Budget.from_spec(old, "50%").value == pytest.approx(0.5 * old.dense_cost().latency_ms)
    assert not Budget.from_spec(old, "50%").dense_measured
    broken = {**fitted.to_dict(), "dense_ms": -1.0}
    with pytest.raises(ConfigError, match="dense_ms too when given"):
        Calibration.from_dict(broken)
