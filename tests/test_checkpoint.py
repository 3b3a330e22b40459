import os
import pickle

import pytest
import torch

from autoprune.checkpoint import load_model, read_checkpoint, save_checkpoint
from autoprune.errors import ConfigError
from autoprune.models import create_model


def test_checkpoint_roundtrip(tmp_path):
    model = create_model("mlp")
    save_checkpoint(tmp_path / "m.pt", model, "mlp", meta={"test_acc": 0.5})
    loaded, payload = load_model(tmp_path / "m.pt")
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x)) and payload.meta["test_acc"] == 0.5


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": Boom()}, path)
    with pytest.raises(ConfigError, match="refusing to load"):
        read_checkpoint(path)
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ConfigError):
        read_checkpoint(plain)


def test_weights_for_another_model_are_reported(tmp_path):
    save_checkpoint(tmp_path / "m.pt", create_model("mlp"), "mlp")
    with pytest.raises(ConfigError, match="holds a 'mlp' model, not 'vgg_small'"):
        load_model(tmp_path / "m.pt", model_name="vgg_small")
    torch.save(create_model("mlp").state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ConfigError, match="do not fit the model"):
        load_model(tmp_path / "bare.pt", model_name="vgg_small")


@pytest.mark.parametrize("field,value", [("num_classes", 10**12), ("num_classes", -3), ("in_channels", "3"),
                                         ("in_channels", 10**9), ("input_shape", [1, 100000, 100000]),
                                         ("input_shape", [3, 28, 28]), ("input_shape", [1, -28, 28])])
def test_checkpoint_header_fields_are_checked_before_any_model_is_built(tmp_path, field, value):
    from autoprune.checkpoint import load_model, save_checkpoint
    from autoprune.models import create_model

    path = save_checkpoint(tmp_path / "m.pt", create_model("mlp"), "mlp")
    payload = torch.load(path, weights_only=True)
    payload[field] = value
    torch.save(payload, path)
    with pytest.raises(ConfigError, match=field):
        load_model(path)
