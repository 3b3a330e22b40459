"""Property-based fuzzing of everything the tool reads from users: policies, configs, tables, the CLI.

Each loader must either accept its input (and then the result is usable) or raise the tool's own
one-line error; never another exception, never a traceback from the CLI.
"""

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoprune.analysis import analyse_model
from autoprune.cli.main import main
from autoprune.costs.lut import LatencyTable, LayerTable
from autoprune.errors import ConfigError, PolicyError
from autoprune.models import create_model
from autoprune.policy import PruningPolicy
from autoprune.search import SearchConfig

ANALYSIS = analyse_model(create_model("mlp").eval(), torch.randn(1, 1, 28, 28))
VALID = PruningPolicy.for_model(ANALYSIS, {"body.0": 0.5, "body.2": 0.25}, "mlp").to_dict()
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # examples: the profile's (conftest)

scalars = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def write(text: str | bytes, name: str) -> Path:
    folder = Path(tempfile.mkdtemp())
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return path


def policy_document(mutation: dict) -> str:
    data = {**VALID, **mutation}
    return json.dumps(data, allow_nan=True)


policy_mutations = st.dictionaries(st.sampled_from([*VALID, "junk"]), json_values, max_size=4) | st.fixed_dictionaries(
    {"ratios": st.dictionaries(st.sampled_from(["body.0", "body.2", "head", "x"]), json_values, max_size=3)})


@FUZZ
@given(policy_mutations)
def test_policy_loader_accepts_or_refuses_in_one_line(mutation):
    path = write(policy_document(mutation), "p.json")
    try:
        policy = PruningPolicy.load(path, ANALYSIS)
    except PolicyError as exc:
        assert "\n" not in str(exc)
        return
    assert all(0.0 <= r < 1.0 and math.isfinite(r) for r in policy.ratios.values())
    assert set(policy.architecture(ANALYSIS)) == set(ANALYSIS.group_names)


@FUZZ
@given(st.binary(max_size=300))
def test_policy_loader_refuses_arbitrary_bytes(data):
    with pytest.raises(PolicyError):
        PruningPolicy.load(write(data, "p.json"), ANALYSIS)


config_fields = list(SearchConfig.__dataclass_fields__)


@FUZZ
@given(st.dictionaries(st.sampled_from([*config_fields, "junk"]), json_values, max_size=4))
def test_config_loader_accepts_or_refuses_in_one_line(mutation):
    data = {**{k: v for k, v in SearchConfig().__dict__.items()}, **mutation}
    path = write(yaml.safe_dump(data), "config.yaml")
    try:
        config = SearchConfig.load(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert config.episodes >= 1 and 0.0 <= config.min_ratio <= config.max_ratio < 1.0
    assert isinstance(config.model, str) and isinstance(config.budget, str)


@FUZZ
@given(st.text(max_size=300))
def test_config_loader_survives_arbitrary_text(text):
    try:
        SearchConfig.load(write(text, "config.yaml"))
    except ConfigError as exc:
        assert "\n" not in str(exc)


def table_text(meta: dict, rows: list) -> str:
    lines = ["# " + json.dumps({"format": "autoprune-latency-table", "version": 1, **meta}, allow_nan=True),
             "layer,c_in,c_out,latency_ms"]
    return "\n".join(lines + [",".join(str(v) for v in row) for row in rows]) + "\n"


cells = st.integers(-2, 70) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4)


@FUZZ
@given(st.dictionaries(st.sampled_from(["version", "calibration", "round_to", "model"]), json_values, max_size=3),
       st.lists(st.tuples(st.sampled_from(["body.0", "body.2", "head"]), cells, cells, cells), max_size=8))
def test_latency_table_loader_accepts_or_refuses_in_one_line(meta, rows):
    try:
        table = LatencyTable.load(write(table_text(meta, rows), "t.csv"))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    for layer in table.tables.values():
        assert isinstance(layer, LayerTable) and np.isfinite(layer.predict(8, 8))


@settings(max_examples=max(10, settings.default.max_examples // 4), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(policy_mutations)
def test_cli_apply_never_shows_a_traceback(capsys, mutation):
    path = write(policy_document(mutation), "p.json")
    code = main(["apply", str(path), "--model", "mlp", "--data", "synthetic", "--out", str(path.parent / "o")])
    err = capsys.readouterr().err.strip()
    assert code in (0, 2)
    if code == 2:
        assert err.startswith("autoprune: error:") and len(err.splitlines()) == 1
    else:
        assert (path.parent / "o" / "model.pt").is_file()


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30)).map(repr)
BUDGET_TEXT = st.one_of(NUMBERS, NUMBERS.map(lambda s: s + "%"), NUMBERS.map(lambda s: s + "ms"),
                        NUMBERS.map(lambda s: s + "M"), st.text(max_size=12))


@FUZZ
@given(BUDGET_TEXT)
def test_any_budget_text_is_a_finite_budget_or_a_one_line_error(text):
    from autoprune.budget import BudgetSpec

    try:
        spec = BudgetSpec.parse(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    amount = spec.fraction if spec.fraction is not None else spec.value
    assert math.isfinite(amount) and amount > 0 and (spec.fraction is None or spec.fraction <= 1)
    try:
        budget = spec.resolve("latency_ms", 1.0)
    except ConfigError:
        return
    assert json.loads(json.dumps(budget.to_dict(), allow_nan=False))  # always valid JSON


@settings(max_examples=max(10, settings.default.max_examples // 6), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["--budget", "--max-ratio", "--min-ratio", "--val-size", "--round-to",
                        "--rerank-top", "--rerank-steps", "--agent-param"]), NUMBERS)
def test_cli_numeric_options_succeed_or_fail_in_one_line(option, value):
    value = f"tau={value}" if option == "--agent-param" else value
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        try:
            code = main(["-q", "search", "--model", "mlp", "--data", "synthetic", "--cost-model", "flops",
                         "--agent", "amc-ddpg" if option == "--agent-param" else "random", "--episodes", "2",
                         "--val-size", "32", "--bn-batches", "1", "--rerank-top", "0", option, value,
                         "--out", str(out)])
        except SystemExit as exc:  # argparse: a value of the wrong type, one usage line, exit 2
            code = exc.code
        assert code in (0, 1, 2)
        if code == 0:
            policy = (out / "best_policy.json").read_text()
            json.loads(policy, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
