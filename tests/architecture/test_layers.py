"""The package's shape (docs/ARCHITECTURE.md, "Layers"): each folder of flame/ is a layer and
imports point one way, from the command line down to the pure core. Checked on the source with
`ast`, lazy imports inside functions included, so a cycle fails here instead of growing."""

from __future__ import annotations

import ast
from pathlib import Path

import flame

FLAME = Path(flame.__file__).resolve().parent
# Lowest first. A module may import its own layer and those below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "clock", "__init__"),
    ("core",),
    ("config",),
    ("store",),
    ("net",),
    ("services",),
    ("api",),
    ("tasks",),
    ("daemon",),
    ("cli", "__main__"),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
# Side branches: the directory reuses the layers up to net; the dev tools may use anything.
# Runtime code never imports a dev tool, and only the command line reaches the directory.
SIDE = {"directory": RANK["net"], "devtools": max(RANK.values())}
LOOSE_MODULES_MAX = 10
LINES_MAX = 400


def part_of(path: Path) -> str:
    relative = path.relative_to(FLAME)
    return relative.parts[0].removesuffix(".py")


def is_part(name: str) -> bool:
    return (FLAME / name).is_dir() or (FLAME / f"{name}.py").is_file()


def flame_imports(path: Path) -> list[tuple[int, str]]:
    """(line, first part under flame) of every `flame.*` import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [node.module]
            if node.module == "flame":  # `from flame import x`: a part, or the package itself
                names = [
                    f"flame.{alias.name}" if is_part(alias.name) else "flame.__init__"
                    for alias in node.names
                ]
        for name in names:
            parts = name.split(".")
            if parts[0] == "flame" and len(parts) > 1:
                found.append((getattr(node, "lineno", 0), parts[1]))
    return found


def sources() -> list[Path]:
    return sorted(FLAME.rglob("*.py"))


def test_imports_point_one_way() -> None:
    problems = []
    for path in sources():
        part = part_of(path)
        own = SIDE.get(part, RANK.get(part))
        assert own is not None, f"{path.relative_to(FLAME)} is in no layer: add it to LAYERS"
        for line, target in flame_imports(path):
            if target == part:
                continue
            if target == "devtools" and part != "devtools":
                problems.append(f"{path.relative_to(FLAME)}:{line} imports a dev tool")
                continue
            if target == "directory" and part not in ("cli", "devtools"):
                problems.append(f"{path.relative_to(FLAME)}:{line} imports the directory")
                continue
            rank = SIDE.get(target, RANK.get(target))
            if rank is None or rank > own:
                problems.append(f"{path.relative_to(FLAME)}:{line} imports flame.{target} (up)")
    assert not problems, "\n".join(problems)


def test_there_is_no_cycle_between_the_top_level_parts() -> None:
    """Follows from the layering; checked on its own so that a wrong LAYERS cannot hide one."""
    graph: dict[str, set[str]] = {}
    for path in sources():
        part = part_of(path)
        graph.setdefault(part, set()).update(t for _, t in flame_imports(path) if t != part)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(part for part in graph if reaches(part, part, {part}))
    assert not cycles, cycles


def test_the_top_of_the_package_holds_few_loose_modules() -> None:
    loose = sorted(p.name for p in FLAME.glob("*.py"))
    assert len(loose) <= LOOSE_MODULES_MAX, loose


def test_no_runtime_module_or_page_script_is_over_400_lines() -> None:
    root = FLAME.parent
    runtime = [path for path in sources() if part_of(path) != "devtools"]
    scripts = sorted((root / "web").rglob("*.js"))
    long = []
    for path in [*runtime, *scripts]:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > LINES_MAX:
            long.append(f"{path.relative_to(root)}: {lines}")
    assert not long, long
