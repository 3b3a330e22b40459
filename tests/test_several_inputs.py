"""Models that take several inputs (positional tensors, or keyword tensors such as ``input_ids`` and
``attention_mask``): searched, applied, fine-tuned and exported from the command line and Python;
data that does not fit the model, and bad examples, refused in one line before any work."""

import json
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from several_inputs import masked_text, text_example, two_tower

from autoprune.analysis import analyse_model
from autoprune.checkpoint import load_model
from autoprune.cli.main import main
from autoprune.data import load_splits
from autoprune.errors import ConfigError
from autoprune.inputs import InputSpec, call, perturbed, signature_of
from autoprune.outputs import output_shapes
from autoprune.pruning import rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.prunability import pruning_problem
from autoprune.references import consent

FILE = Path(__file__).parent / "several_inputs.py"
SEARCH = ["--cost-model", "flops", "--budget", "60%", "--agent", "random", "--episodes", "3", "--val-size", "32",
          "--bn-batches", "1", "--rerank-top", "0"]


@pytest.mark.parametrize("build, example", [
    (two_tower, (torch.randn(2, 1, 12, 12), torch.randn(2, 4))),
    (masked_text, {"input_ids": torch.randint(1, 100, (2, 16)), "attention_mask": torch.ones(2, 16, dtype=torch.long)}),
])
def test_several_inputs_prune_physically_to_the_masked_reference(build, example):
    model = build().eval()
    analysis = analyse_model(model, example)
    assert analysis.groups and "head" not in analysis.group_names
    ranking = rank_channels(analysis, "l1")
    for share in (0.3, 0.6):
        kept = {g.name: max(1, round(g.channels * (1 - share))) for g in analysis.groups}
        assert pruning_problem(analysis, kept, ranking) is None  # every output equals the masked reference
        pruned = prune_physically(analysis, ranking, kept)
        assert output_shapes(call(pruned, example)) == output_shapes(call(model, example))


def test_an_input_spec_rebuilds_examples_within_the_values_it_saw_and_round_trips():
    spec = signature_of(text_example())
    assert isinstance(spec, InputSpec) and spec.keyword and spec.names == ("input_ids", "attention_mask")
    again = spec.example(4, random=True)
    assert again["input_ids"].shape == (4, 16) and again["input_ids"].dtype == torch.long
    assert torch.equal(again["attention_mask"], torch.ones(4, 16, dtype=torch.long))  # a mask of ones stays so
    assert int(again["input_ids"].min()) >= spec.lows[0] and int(again["input_ids"].max()) < spec.highs[0]
    assert InputSpec.from_json(json.loads(json.dumps(spec.to_json())), "test") == spec
    changed = perturbed(text_example(), 2)
    assert all(torch.equal(c["attention_mask"], torch.ones(1, 16, dtype=torch.long)) for c in changed)
    with pytest.raises(ConfigError, match="inputs record"):
        InputSpec.from_json({"inputs": "keyword", "tensors": [{"name": "x", "shape": [-1], "dtype": "int64"}]}, "f")


def test_a_dict_batch_gives_its_labels_as_target_and_the_rest_as_keyword_inputs():
    splits = load_splits(f"{FILE}:texts")
    x, y = next(iter(splits.val(batch_size=8)))
    assert set(x) == {"input_ids", "attention_mask"} and y.tolist() == [i % 2 for i in range(8)]
    assert splits.input_shape.names == ("input_ids", "attention_mask")
    with pytest.raises(ConfigError, match="without a 'labels' entry"):
        next(iter(load_splits(f"{FILE}:unlabelled").val(batch_size=8)))


def _run(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr()


def test_positional_inputs_search_apply_finetune_and_export_from_the_command_line(tmp_path, capsys):
    model, data = f"{FILE}:two_tower", f"{FILE}:pairs"
    code, out = _run(["search", "--model", model, "--data", data, *SEARCH, "--out", str(tmp_path / "s")], capsys)
    assert code == 0, out.err
    policy = json.loads((tmp_path / "s" / "best_policy.json").read_text())
    assert policy["input_shape"]["inputs"] == "positional" and len(policy["input_shape"]["tensors"]) == 2
    assert main(["apply", str(tmp_path / "s" / "best_policy.json"), "--model", model, "--data", data,
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["finetune", str(tmp_path / "a" / "model.pt"), "--model", model, "--data", data, "--epochs", "1",
                 "--out", str(tmp_path / "f")]) == 0
    assert main(["export", str(tmp_path / "f" / "model.pt"), "--model", model, "--out", str(tmp_path / "e")]) == 0
    session = ort.InferenceSession(str(tmp_path / "e" / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["input_0", "input_1"]
    with consent(model):
        pruned, info = load_model(tmp_path / "f" / "model.pt")
    assert isinstance(info.input_shape, InputSpec) and info.pruning is not None
    got = session.run(None, {"input_0": torch.ones(3, 1, 12, 12).numpy(), "input_1": torch.ones(3, 4).numpy()})[0]
    want = pruned(torch.ones(3, 1, 12, 12), torch.ones(3, 4)).detach().numpy()
    assert got.shape == (3, 10) and abs(got - want).max() < 1e-4


def test_keyword_inputs_from_an_example_function_search_on_synthetic_data_and_apply(tmp_path, capsys):
    model = f"{FILE}:masked_text"
    code, out = _run(["search", "--model", model, "--example", f"{FILE}:text_example", "--data", "synthetic",
                      *SEARCH, "--out", str(tmp_path / "s")], capsys)
    assert code == 0, out.err
    spec = json.loads((tmp_path / "s" / "best_policy.json").read_text())["input_shape"]
    assert spec["inputs"] == "keyword" and [t["name"] for t in spec["tensors"]] == ["input_ids", "attention_mask"]
    # the policy records the inputs: apply needs neither the example nor a shape
    assert main(["apply", str(tmp_path / "s" / "best_policy.json"), "--model", model, "--data", "synthetic",
                 "--out", str(tmp_path / "a")]) == 0


def test_hugging_face_style_dict_data_searches_a_keyword_model(tmp_path, capsys):
    code, out = _run(["search", "--model", f"{FILE}:masked_text", "--data", f"{FILE}:texts", *SEARCH,
                      "--out", str(tmp_path / "s")], capsys)
    assert code == 0, out.err
    assert "best: val accuracy" in out.out


@pytest.mark.parametrize("argv, message", [
    # one-tensor model, data of two inputs: refused naming both, before the search
    (["--model", "{u}/structures.py:build", "--input-shape", "1,12,12", "--data", "{f}:pairs"],
     "cannot be scored on the validation data, whose inputs are input_0 (8, 1, 12, 12) float32, input_1 (8, 4)"),
    (["--model", "{f}:masked_text", "--example", "{f}:text_example", "--input-shape", "16", "--data", "{f}:texts"],
     "--input-shape and --example both say what the model takes"),
    (["--model", "{f}:masked_text", "--example", "{f}:broken_example", "--data", "{f}:texts"],
     "--example {f}:broken_example raised RuntimeError: no example today"),
    (["--model", "{f}:masked_text", "--example", "{f}:missing", "--data", "{f}:texts"], "has no 'missing'"),
    # a keyword model given one tensor: the way out is --example
    (["--model", "{f}:two_tower", "--input-shape", "1,12,12", "--data", "synthetic"], "--example"),
])
def test_inputs_that_do_not_fit_are_refused_in_one_line(tmp_path, capsys, argv, message):
    here = Path(__file__).parent
    argv = [a.format(f=FILE, u=here) for a in argv]
    code, out = _run(["search", *argv, *SEARCH, "--out", str(tmp_path / "s")], capsys)
    last = out.err.strip().splitlines()[-1]
    assert code == 2 and message.format(f=FILE) in last and last.startswith("autoprune: error:")


def test_python_api_takes_a_dict_example(tmp_path):
    from several_inputs import Texts

    import autoprune

    example = text_example()
    result = autoprune.prune_to_budget(masked_text(), example, Texts(), Texts(), budget="60%", cost_model="flops",
                                       agent="random", episodes=3, out=tmp_path / "run", progress=False,
                                       val_size=32, bn_batches=1, rerank_top=0)
    assert result.policy.signature.describe() == signature_of(example).describe()
    assert call(result.model, example).shape == (1, 2)


def test_finetune_takes_the_checkpoints_inputs_and_refuses_a_map_output_with_the_class_loss(tmp_path, capsys):
    from autoprune.data import synthetic_splits
    from autoprune.data.checks import check_training_data
    from autoprune.errors import DataError

    model = f"{FILE}:masked_text"
    assert main(["search", "--model", model, "--example", f"{FILE}:text_example", "--data", "synthetic", *SEARCH,
                 "--out", str(tmp_path / "s")]) == 0
    assert main(["apply", str(tmp_path / "s" / "best_policy.json"), "--model", model, "--data", "synthetic",
                 "--out", str(tmp_path / "a")]) == 0
    # synthetic data of the inputs the checkpoint records (token IDs and a mask), not images
    assert main(["finetune", str(tmp_path / "a" / "model.pt"), "--model", model, "--data", "synthetic",
                 "--epochs", "1", "--out", str(tmp_path / "f")]) == 0
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(DataError, match=r"outputs \[8, 1, 28, 28\], not \(batch, classes\).*--loss"):
        check_training_data(synthetic_splits(), conv, (1, 28, 28), True, "the model")
