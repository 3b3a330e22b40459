"""Settings are defined once, on the dataclass: the search command's options are made from it."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from autoprune.cli.finetune_cmd import training_config
from autoprune.cli.main import build_parser
from autoprune.cli.search_cmd import add_search_args, config_from_args
from autoprune.errors import ConfigError
from autoprune.finetune import FinetuneConfig
from autoprune.search import SearchConfig
from autoprune.settings import cli_fields, dest, flag, option_name, settings_from_args
from autoprune.training import TrainConfig
from autoprune.workflow import FinetuneMode


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_search_args(p)
    p.add_argument("--out", default=SearchConfig().out)
    p.add_argument("--resume", action="store_true")
    return p.parse_args(list(argv))


def test_every_setting_has_help_and_one_option() -> None:
    p = argparse.ArgumentParser()
    add_search_args(p)
    options = {a.dest: a for a in p._actions}
    for f in dataclasses.fields(SearchConfig):
        assert f.metadata.get("help"), f"setting {f.name} has no help"
    for f in cli_fields(SearchConfig):
        assert f.name in options, f"{option_name(f.name)} missing"
        assert options[f.name].help == f.metadata["help"]
        assert options[f.name].default == getattr(SearchConfig(), f.name)


def test_defaults_give_the_default_config() -> None:
    assert config_from_args(parse()) == SearchConfig().validate()


def test_options_are_typed_from_the_annotations() -> None:
    c = config_from_args(parse("--episodes", "7", "--max-ratio", "0.5", "--seeds", "uniform", "--provider", "cpu",
                               "--rerank-top", "0"))
    assert (c.episodes, c.max_ratio, c.seeds, c.provider, c.rerank_top) == (7, 0.5, ["uniform"], "cpu", 0)
    assert isinstance(c.episodes, int) and isinstance(c.max_ratio, float)
    with pytest.raises(SystemExit):
        parse("--episodes", "many")
    with pytest.raises(SystemExit):
        parse("--eval-mode", "fast")  # choices come from the field too


@pytest.mark.parametrize("command,classes", [("finetune", ("FinetuneConfig", "FinetuneMode")),
                                             ("train", ("TrainConfig",))])
def test_training_commands_are_made_from_their_settings(command: str, classes: tuple[str, ...]) -> None:
    """Every option of the fine-tune and train settings is on its command, with the field's help and default."""
    known = {"FinetuneConfig": FinetuneConfig, "FinetuneMode": FinetuneMode, "TrainConfig": TrainConfig}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    options = {a.dest: a for a in sub._actions}
    for cls in (known[c] for c in classes):
        for f in cli_fields(cls):
            assert f.metadata["help"], f"{cls.__name__}.{f.name} has no help"
            assert dest(f) in options and flag(f) in options[dest(f)].option_strings
            assert options[dest(f)].help == f.metadata["help"]
            assert options[dest(f)].default == getattr(cls(), f.name)


def test_fine_tune_options_reach_the_settings() -> None:
    args = build_parser().parse_args(["finetune", "m.pt", "--ft-seed", "3", "--lr", "0.5", "--iterative", "p.json",
                                      "--steps", "4", "--ft-val-size", "100", "--no-augment"])
    cfg, mode = training_config(args), FinetuneMode(**settings_from_args(FinetuneMode, args))
    assert (cfg.seed, cfg.lr, cfg.val_size, cfg.augment, cfg.epochs) == (3, 0.5, 100, (), 5)
    assert (mode.iterative_policy, mode.steps, mode.name) == ("p.json", 4, "iterative")
    with pytest.raises(ConfigError, match="--kd-alpha"):
        training_config(build_parser().parse_args(["finetune", "m.pt", "--kd-alpha", "2"]))

