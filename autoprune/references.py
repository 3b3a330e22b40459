"""User code by reference: ``path/to/file.py:name`` or ``package.module:name`` -> the object.

Models, data sets and score functions are named this way on the command line and in saved
files. File references are stored with absolute paths (:func:`canonical`) so they resolve from
any working directory.

Files travel (policies, checkpoints, run folders), so a reference read from a file is data, not
consent: it is imported only when the user names the same reference for this run, on the command
line (:func:`consent`, entered by the CLI) or in a Python call. :func:`require_consent` is the
check every file reader applies before anything is imported.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from autoprune.errors import ConfigError


def is_reference(text: str) -> bool:
    """True for ``something:name`` (a file or module and an attribute), False for a plain name."""
    if text.startswith("hf:"):  # a Hugging Face folder (data: config and safetensors), not code
        return False
    head, sep, tail = text.rpartition(":")
    return bool(sep and head and tail.isidentifier() and not head.endswith(("\\", "/")))


def canonical(text: str) -> str:
    """The reference with a file part made absolute (module references and plain names unchanged)."""
    if text.startswith("hf:"):
        return "hf:" + str(Path(text[3:]).expanduser().resolve())
    if not is_reference(text):
        return text
    head, _, tail = text.rpartition(":")
    if head.endswith(".py"):
        return f"{Path(head).expanduser().resolve()}:{tail}"
    return text


CODE_OPTIONS = ("model", "data", "score", "loss")  # the options (and settings) that may name code
PLUGIN_OPTIONS = ("cost_model", "importance")  # options that name plug-ins (plain names) on the command line
_CONSENTED: ContextVar[frozenset[str]] = ContextVar("autoprune_consented", default=frozenset())


@contextmanager
def consent(*refs: str | None) -> Iterator[None]:
    """Within the block, files may name these references (the user named them for this run); plain
    names are recorded too, so a plug-in the user named loads even from outside site-packages."""
    named = {canonical(r) for r in refs if isinstance(r, str) and r}
    token = _CONSENTED.set(_CONSENTED.get() | named)
    try:
        yield
    finally:
        _CONSENTED.reset(token)


def named_for_run(name: str) -> bool:
    """True when the user named ``name`` (a plug-in's plain name) for this run."""
    return name in _CONSENTED.get()


def consented(ref: str) -> bool:
    """True when ``ref`` is a plain name (built-ins are free) or the user named it for this run."""
    return not is_reference(ref) or canonical(ref) in _CONSENTED.get()


def require_consent(ref: object, source: str, option: str = "--model") -> None:
    """Refuse a code reference read from a file (``source``) unless the user named it for this run.

    Raises:
        ConfigError: one line naming the file, the reference and how to consent.
    """
    if not isinstance(ref, str) or consented(ref):
        return
    raise ConfigError(f"{source} names code to run ({option} {ref}); autoprune runs code named in a file "
                      f"only when you name it too: if you trust it, add {option} {ref} to the command (in "
                      f"Python: with autoprune.consent({ref!r}): ...)")


def resolve(text: str, what: str, option: str) -> Callable[..., Any]:
    """The callable named by ``text``; one-line errors naming ``option`` and the fix.

    Args:
        what: what the callable makes, for messages ("model factory", "data factory", ...).
        option: the command-line option that took ``text`` ("--model", ...).
    """
    if not is_reference(text):
        raise ConfigError(f"{option} {text!r} is not a reference; write path/to/file.py:{_example(what)} "
                          f"or package.module:{_example(what)}")
    head, _, name = text.rpartition(":")
    module = _load_file(head, option) if head.endswith(".py") else _import(head, option)
    obj = getattr(module, name, None)
    if obj is None:
        found = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))[:6]
        raise ConfigError(f"{option} {text}: {head} has no {name!r} (it defines {', '.join(found) or 'nothing callable'})")
    if not callable(obj):
        raise ConfigError(f"{option} {text}: {name!r} is a {type(obj).__name__}, not a {what}")
    return obj


def _load_file(path_text: str, option: str) -> Any:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"{option}: file {path_text} does not exist; check the path")
    key = "autoprune_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{option}: cannot import {path_text}; is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the file's own imports of its neighbours work
    try:
        sys.modules[key] = module
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - whatever user code raises, one line
        sys.modules.pop(key, None)
        raise ConfigError(f"{option}: importing {path_text} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def _import(name: str, option: str) -> Any:
    """Import ``name``; like ``uvicorn app:main``, the working directory is searched too, but only
    for that module, loaded by its file: the working directory never joins ``sys.path`` (where
    anything in it, a planted package's entry points included, would be found later)."""
    top = name.partition(".")[0]
    try:
        if top not in sys.modules and importlib.util.find_spec(top) is None:
            _load_from_cwd(top)
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{option}: no module named {exc.name!r}; install it or give path/to/file.py:name") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"{option}: importing {name} failed: {type(exc).__name__}: {exc}") from None


def _load_from_cwd(top: str) -> None:
    """The module or package ``top`` of the working directory, loaded by its file (if there is one)."""
    spec = importlib.machinery.PathFinder.find_spec(top, [os.getcwd()])
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(top, None)
        raise


def _example(what: str) -> str:
    return {"model factory": "build_model", "data factory": "build_data"}.get(what, "function")
