import json

import pandas as pd
import torch

from autoprune.models import create_model
from autoprune.training import TrainConfig, cosine_lr, evaluate, recalibrate_bn, train


def test_training_learns_synthetic_data(splits):
    torch.manual_seed(0)
    model = create_model("mlp")
    before = evaluate(model, splits.val())
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=32, augment=False)
    history = train(model, lambda e: splits.train(32, seed=e), cfg,
                    evaluate_fn=lambda m: evaluate(m, splits.val()), progress=False)
    assert len(history) == 3 and history[-1]["val_acc"] > max(0.8, before + 0.3)


def test_cosine_schedule_ends_at_zero():
    assert cosine_lr(0, 10, 0.1) == 0.1 and abs(cosine_lr(10, 10, 0.1)) < 1e-12
    assert cosine_lr(5, 10, 0.1) == 0.05


def test_bn_recalibration_matches_data_statistics(tiny_model, splits):
    recalibrate_bn(tiny_model, splits.train(64, shuffle=False), max_batches=4)
    bn = tiny_model.stem[1]
    with torch.no_grad():
        feats = torch.cat([tiny_model.stem[0](x) for x, _ in splits.train(64, shuffle=False)])
    assert torch.allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-4)
    assert bn.momentum == 0.1 and not tiny_model.training


def test_neg_loss_score_is_minus_the_cross_entropy_and_drives_a_search(tmp_path, capsys):
    """``--score neg-loss``: minus the mean cross-entropy over the batches, a built-in needing no consent."""
    from autoprune.cli.main import main
    from autoprune.scoring import load_score

    score, name = load_score("neg-loss")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).train()
    batches = [(torch.randn(5, 12), torch.randint(0, 3, (5,))), (torch.randn(3, 12), torch.randint(0, 3, (3,)))]
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    expected = -float(torch.nn.functional.cross_entropy(model(x), y))
    assert name == "neg-loss" and abs(score(model, batches) - expected) < 1e-5 and model.training
    run = tmp_path / "run"
    assert main(["-q", "search", "--model", "mlp", "--data", "synthetic", "--cost-model", "flops", "--budget", "50%",
                 "--agent", "random", "--episodes", "4", "--val-size", "64", "--bn-batches", "1", "--rerank-top", "0",
                 "--score", "neg-loss", "--out", str(run)]) == 0
    history = pd.read_csv(run / "history.csv")
    assert (history["score"] < 0).all() and json.loads((run / "summary.json").read_text())["score"] == "neg-loss"
    capsys.readouterr()
    assert main(["apply", str(run / "best_policy.json"), "--data", "synthetic", "--score", "neg-loss",
                 "--out", str(tmp_path / "a")]) == 0
    assert "test neg-loss -" in capsys.readouterr().out  # the report names the score it prints
