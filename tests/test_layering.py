"""Core never imports envs or agents; envs never import agents."""

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


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in ("envs", "agents"):  # installed as autoprune.envs / autoprune.agents
        parts = ["autoprune", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules ``path`` imports at run time (imports under ``if TYPE_CHECKING:`` left out)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
               for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autoprune"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("autoprune"))
    return found


def _assert_acyclic(edges: dict[str, set[str]]) -> None:
    """Fail naming the first import cycle of ``edges`` (importer -> imported), by depth-first search."""
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t] if t in stack else [m, t]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])


def test_no_import_cycles_between_modules():
    files = [p for folder in ("autoprune", "envs", "agents") for p in (ROOT / folder).rglob("*.py")]
    graph = {_module_name(p): _runtime_imports(p) for p in files}
    modules = set(graph)
    # a package's __init__ re-exports its modules: an edge to a package means its __init__ only
    edges = {m: {t for t in targets if t in modules and t != m and not m.startswith(t + ".")}
             for m, targets in graph.items()}
    _assert_acyclic(edges)


def test_no_untyped_mapping_in_public_signatures():
    """Values crossing the env, agents, search and workflow layers are typed (dataclasses, typed
    records), never ``dict[str, Any]``; Gymnasium's own ``step`` info is the one exception."""
    import importlib
    import inspect
    import pkgutil

    allowed = {"autoprune.envs.pruning_env.PruningEnv.step"}
    found = []
    for package in ("autoprune.envs", "autoprune.agents", "autoprune.search", "autoprune.workflow", "autoprune.costs"):
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__, package + "."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                    continue
                members = [(name, obj)] if inspect.isfunction(obj) else [
                    (f"{name}.{m}", f) for m, f in vars(obj).items() if inspect.isclass(obj) and not m.startswith("_")
                    and (inspect.isfunction(f) or isinstance(f, (classmethod, staticmethod)))]
                for qual, f in members:
                    f = getattr(f, "__func__", f)
                    text = " ".join(str(a) for a in f.__annotations__.values())
                    if "dict[str, Any]" in text and f"{module.__name__}.{qual}" not in allowed:
                        found.append(f"{module.__name__}.{qual}")
    assert not found, f"dict[str, Any] in public signatures: {found}"


def _unit(module: str) -> str:
    """The top-level unit a module belongs to: ``autoprune.models.resnet`` -> ``autoprune.models``."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycles_between_subpackages_counting_deferred_imports():
    """Subpackages and top-level modules form no circle either, imports inside functions counted
    (a deferred import hides a circle from Python, not from a reader)."""
    files = [p for folder in ("autoprune", "envs", "agents") for p in (ROOT / folder).rglob("*.py")
             if p != ROOT / "autoprune" / "__init__.py"]  # the root package's lazy re-exports aside
    edges: dict[str, set[str]] = {}
    for path in files:
        unit = _unit(_module_name(path))
        edges.setdefault(unit, set()).update(_unit(t) for t in _runtime_imports(path) if _unit(t) != unit
                                             and t != "autoprune")
    _assert_acyclic(edges)
