"""flame/core is pure (docs/ARCHITECTURE.md): no event loop, network, database, clock or file I/O.

Checked on the source with `ast`, so a forbidden import fails here even on a path no test runs.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import flame.core

CORE = Path(flame.core.__file__).resolve().parent
MODULES = sorted(info.name for info in pkgutil.iter_modules([str(CORE)]))
SOURCES = sorted(CORE.rglob("*.py"))

FORBIDDEN_MODULES = {
    "asyncio",
    "aiohttp",
    "aiosqlite",
    "sqlite3",
    "time",
    "socket",
    "pathlib",
    "shutil",
    "subprocess",
    "io",
    "tempfile",
    "glob",
}
ALLOWED_OS_NAMES = {"urandom"}
# Inside flame, core may lean only on itself and the error tree.
ALLOWED_FLAME_MODULES = ("flame.core", "flame.errors")
FORBIDDEN_BUILTINS = {"open", "input", "print", "breakpoint"}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems: list[str] = []
    for line, name in imported_modules(tree):
        top = name.split(".")[0]
        if top in FORBIDDEN_MODULES:
            problems.append(f"{path.name}:{line} imports {name}")
        if top == "os" and name not in ("os", *(f"os.{n}" for n in ALLOWED_OS_NAMES)):
            problems.append(f"{path.name}:{line} imports {name} (only os.urandom is allowed)")
        if top == "flame" and name != "flame" and not name.startswith(ALLOWED_FLAME_MODULES):
            problems.append(f"{path.name}:{line} imports {name} (core depends inward only)")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr not in ALLOWED_OS_NAMES
        ):
            problems.append(f"{path.name}:{node.lineno} uses os.{node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_BUILTINS
        ):
            problems.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
    return problems


def test_core_has_the_expected_modules() -> None:
    assert {"crypto", "encoding", "envelope", "models", "signing"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_every_core_module_imports(module: str) -> None:
    importlib.import_module(f"flame.core.{module}")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_core_source_does_no_io(path: Path) -> None:
    assert violations(path) == []


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import asyncio\n"
        "import os.path\n"
        "from os import path\n"
        "from time import time\n"
        "from flame.store import db\n"
        "import os\n"
        "x = os.path.exists('f')\n"
        "y = os.urandom(4)\n"
        "z = open('f')\n"
    )
    flagged = {int(problem.split(":")[1].split()[0]) for problem in violations(bad)}
    assert flagged == {1, 2, 3, 4, 5, 7, 9}  # `import os` and os.urandom are fine


def test_importing_core_loads_no_io_package_of_flame() -> None:
    """In a fresh interpreter, importing all of core pulls in no other part of flame, nor
    aiohttp or aiosqlite."""
    code = (
        "import sys\n"
        + "".join(f"import flame.core.{m}\n" for m in MODULES)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'aiosqlite')"
        " or (m.startswith('flame.') and not m.startswith(('flame.core', 'flame.errors'))))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
