"""Core never imports envs or agents; envs never import agents (design.md, section 2)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(folder: Path) -> set[tuple[str, str]]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(ROOT)), node.module))
            elif isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), a.name) for a in node.names)
    return found


ORCHESTRATION = ("autoprune/cli", "autoprune/search", "autoprune/workflow")  # the top layer: may import everything


def test_core_does_not_import_envs_or_agents():
    core = [(f, m) for f, m in imported_modules(ROOT / "autoprune") if not f.startswith(ORCHESTRATION)]
    bad = [(f, m) for f, m in core if m.startswith(("autoprune.envs", "autoprune.agents"))]
    assert core and not bad


def test_envs_and_agents_do_not_import_orchestration():
    envs = imported_modules(ROOT / "envs")
    assert envs and not [(f, m) for f, m in envs if m.startswith(("autoprune.agents", "autoprune.search",
                                                                   "autoprune.cli"))]
    agents = imported_modules(ROOT / "agents")
    assert agents and not [(f, m) for f, m in agents if m.startswith(("autoprune.search", "autoprune.cli"))]
