import json

import pytest
import torch

from autoprune.analysis import analyse_model
from autoprune.errors import PolicyError
from autoprune.models import create_model
from autoprune.policy import SCHEMA_VERSION, PruningPolicy


@pytest.fixture
def policy(tiny_analysis):
    return PruningPolicy.for_model(tiny_analysis, {"stem.0": 0.5, "expand.0": 0.25}, model_name="tiny",
                                   budget={"metric": "latency_ms", "value": 1.0},
                                   predicted_cost={"latency_ms": 0.9}, score={"val": 0.8})


def test_roundtrip_keeps_everything(tmp_path, policy, tiny_analysis):
    loaded = PruningPolicy.load(policy.save(tmp_path / "p.json"), tiny_analysis)
    assert loaded == policy
    assert loaded.architecture(tiny_analysis)["stem.0"] == 4 and loaded.channels["expand.0"] == 12
    assert set(loaded.ratios) == set(tiny_analysis.group_names)


def test_a_policy_from_before_the_score_had_its_name_still_loads(tmp_path, policy, tiny_analysis):
    data = policy.to_dict()
    assert data["score"] == {"val": 0.8} and "accuracy" not in data
    data["accuracy"] = data.pop("score")  # how earlier versions wrote it
    loaded = PruningPolicy.load(write(tmp_path, data), tiny_analysis)
    assert loaded.score.val == 0.8 and loaded.to_dict()["score"] == {"val": 0.8}


def write(tmp_path, data):
    path = tmp_path / "p.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["ratios"].update({"stem.0": 1.0}), "outside \\[0, 1\\)"),
    (lambda d: d["ratios"].update({"stem.0": -0.1}), "outside"),
    (lambda d: d["ratios"].update({"stem.0": "half"}), "must be a number"),
    (lambda d: d["ratios"].update({"ghost": 0.1}), "group 'ghost' that this model does not have"),
    (lambda d: d["ratios"].pop("fc", None) or d["ratios"].pop("stem.0"), "gives no ratio for group 'stem.0'"),
    (lambda d: d.update(fingerprint="sha256:0000"), "made for another model"),
    (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "newer than this autoprune"),
    (lambda d: d.pop("schema_version"), "schema_version"),
    (lambda d: d.update(round_to="8"), "wrong type"),
    (lambda d: d.update(ratios=[]), "non-empty 'ratios'"),
])
def test_bad_policies_give_one_clear_line(tmp_path, policy, tiny_analysis, mutate, message):
    data = policy.to_dict()
    mutate(data)
    with pytest.raises(PolicyError, match=message) as err:
        PruningPolicy.load(write(tmp_path, data), tiny_analysis)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"schema_version": 1, "ratios": {"stem.0": NaN}}', "NaN is not allowed"),
    ('{"schema_version": 1, "ratios": {"stem.0": Infinity}}', "Infinity is not allowed"),
    ("[1, 2]", "JSON object"),
])
def test_malformed_files(tmp_path, text, message):
    with pytest.raises(PolicyError, match=message):
        PruningPolicy.load(write(tmp_path, text))


def test_huge_and_missing_files(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (11 * 2**20))
    with pytest.raises(PolicyError, match="over the 10 MiB limit"):
        PruningPolicy.load(big)
    with pytest.raises(PolicyError, match="does not exist"):
        PruningPolicy.load(tmp_path / "none.json")


def test_policy_for_same_architecture_applies_to_other_weights(tmp_path):
    x = torch.randn(1, 1, 28, 28)
    a = analyse_model(create_model("resnet20"), x)
    path = PruningPolicy.for_model(a, {"conv1": 0.5}).save(tmp_path / "p.json")
    other = analyse_model(create_model("resnet20"), x)
    assert PruningPolicy.load(path, other).architecture(other)["conv1"] == 8
    with pytest.raises(PolicyError, match="another model"):
        PruningPolicy.load(path, analyse_model(create_model("resnet56"), x))
