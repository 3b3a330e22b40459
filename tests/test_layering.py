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


def test_core_does_not_import_envs_or_agents():
    core = [(f, m) for f, m in imported_modules(ROOT / "autoprune") if not f.startswith("autoprune/cli")]
    bad = [(f, m) for f, m in core if m.startswith(("autoprune.envs", "autoprune.agents"))]
    assert core and not bad


def test_envs_do_not_import_agents():
    envs = imported_modules(ROOT / "envs")
    assert not [(f, m) for f, m in envs if m.startswith("autoprune.agents")]
