"""Settings are defined once, on the dataclass: the search command's options are made from it."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from autoprune.cli.search_cmd import add_search_args, config_from_args
from autoprune.search import SearchConfig
from autoprune.settings import cli_fields, option_name


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
