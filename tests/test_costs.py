import json
import os
import subprocess
import sys
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
from autoprune.costs.lut import LayerTable, channel_levels
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
    return a, profile_latency_table(a, "tiny", round_to=4, settings=FAST, calibration_samples=3, progress=False)


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
    smaller = lut.cost({g.name: 1 for g in a.groups}).latency_ms
    assert 0 < smaller <= dense


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
    monkeypatch.syspath_prepend(str(PLUGIN_DIST))
    monkeypatch.setattr(COST_MODELS, "_plugins_loaded", False)
    monkeypatch.setattr(COST_MODELS, "_factories", dict(COST_MODELS._factories))
    assert "channel-count" in list_cost_models()
    model = create_cost_model("channel-count", tiny_analysis)
    dense = model.dense_cost().latency_ms
    assert dense == pytest.approx(sum(s.out_channels for s in tiny_analysis.layers) * 1e-3)


def test_cli_profile_and_plugin_by_name(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PLUGIN_DIST)}
    out = subprocess.run([sys.executable, "-m", "autoprune.cli.main", "profile", "--model", "mlp",
                          "--round-to", "128", "--calibration", "2", "--out", str(tmp_path / "mlp.csv")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "profiled 3 layers of mlp" in out.stdout and (tmp_path / "mlp.csv").is_file()
    code = ("from autoprune.costs import list_cost_models; print(list_cost_models())")
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "channel-count" in names.stdout


def test_per_layer_calibration_recovers_nonnegative_weights():
    from autoprune.costs.lut import _fit_layer_weights

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.1, (80, 5))
    true = np.array([0.5, 1.0, 1.5, 0.0, 2.0])
    y = x @ true + 0.05
    weights, offset = _fit_layer_weights(x, y, scale=1.0, ridge=1e-6)
    assert np.allclose(weights, true, atol=0.02) and offset == pytest.approx(0.05, abs=0.005)
    noisy = y + rng.normal(0, 0.01, len(y))
    weights, _ = _fit_layer_weights(x, noisy - 10 * x[:, 3], scale=1.0, ridge=1e-6)
    assert min(weights) >= 0.0  # never negative, so the prediction stays monotone in channels
