"""The package layering, checked by walking every import of the shipped packages with `ast`.

Layers, lowest first; a module may import its own layer and the layers below it, never above:

    0  core                       settings, types, index, manifest, embedder, the Runtime, llm
    1  ingest | graph | retrieval the domain; these three never import one another (ingestion
                                  and the graph meet only through `core.listeners`'
                                  `DocumentListener` protocol)
    2  eval                       evaluation over the served search
    3  serving                    the composition root (`serving.platform.Platform`)
    4  api | workers | cli        the entry points; they may import one another

Every command is in `cli/`, one module per command group: no package below has a module that
imports upward, and no module is exempt.

Every import counts: module-level and inside functions, `import x` and `from x import y`,
relative imports (resolved against the importing module), and imports under `if TYPE_CHECKING:`
too, since an annotation naming a higher layer is a dependency of the design all the same.
Imports by string (`importlib`, Celery's `include`) are not seen.

import-linter would state the same contracts, but cannot be installed beside this project's
pinned dependencies (it needs rich>=14).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "core": 0,
    "ingest": 1,
    "graph": 1,
    "retrieval": 1,
    "eval": 2,
    "serving": 3,
    "api": 4,
    "workers": 4,
    "cli": 4,
}
INDEPENDENT = {"ingest", "graph", "retrieval"}  # the domain: no imports between them


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted and absolute
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every import in the file, wherever it sits in the tree (functions, `if TYPE_CHECKING`)."""
    module = module_name(path, root)
    # The package a relative import starts from: the module's own for an __init__.py.
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            # `from pkg import mod` imports pkg.mod when mod is a module; pkg itself either way.
            yield Import(module, prefix, node.lineno)
            for alias in node.names:
                yield Import(module, f"{prefix}.{alias.name}", node.lineno)


def layer_of(module: str) -> int | None:
    return LAYERS.get(module.split(".")[0])


def violations(root: Path) -> list[tuple[Import, str]]:
    found: list[tuple[Import, str]] = []
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            for imp in imports_of(path, root):
                why = broken_contract(imp)
                if why:
                    found.append((imp, why))
    return found


def broken_contract(imp: Import) -> str:
    source, target = imp.module.split(".")[0], imp.target.split(".")[0]
    if target not in LAYERS or target == source:
        return ""
    if target in INDEPENDENT and source in INDEPENDENT:
        return f"{source} and {target} are independent domain packages"
    mine, theirs = layer_of(imp.module), LAYERS[target]
    assert mine is not None
    if theirs > mine:
        return f"layer {mine} ({source}) imports layer {theirs} ({target})"
    return ""


def _dedupe(found: list[tuple[Import, str]]) -> dict[tuple[str, str], tuple[Import, str]]:
    """One entry per (module, imported top-level module) pair, `from a import b` seen once."""
    pairs: dict[tuple[str, str], tuple[Import, str]] = {}
    for imp, why in found:
        target = ".".join(imp.target.split(".")[:2])
        pairs.setdefault((imp.module, target), (imp, why))
    return pairs


def test_every_package_has_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(LAYERS), "give every new top-level package a layer in LAYERS"


def test_no_package_imports_a_layer_above_it() -> None:
    pairs = _dedupe(violations(ROOT))
    broken = [f"{imp.module}:{imp.line} imports {imp.target}: {why}" for imp, why in pairs.values()]
    assert not broken, "\n".join(sorted(broken))


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_walker_sees_every_form_of_import(tmp_path: Path) -> None:
    """Each way of importing a higher layer is caught: a checker blind to one would pass."""
    _write(tmp_path, "core/__init__.py", "from ..serving import platform\n")
    _write(tmp_path, "core/a.py", "import graph.store\n")
    _write(tmp_path, "core/b.py", "from graph.store import GraphStore\n")
    _write(tmp_path, "core/c.py", "def f():\n    from retrieval import search\n")
    _write(
        tmp_path,
        "core/d.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from eval import tenant\n",
    )
    _write(tmp_path, "core/sub/e.py", "from ...api import app\n")
    _write(tmp_path, "ingest/f.py", "from graph import updater\n")
    _write(tmp_path, "graph/g.py", "from ingest.documents import PreparedDocument\n")
    _write(tmp_path, "eval/cli.py", "from serving.platform import Platform\n")  # none exempt
    _write(tmp_path, "retrieval/h.py", "from core.types import Hit\nfrom . import fusion\n")
    seen = {(imp.module, imp.target.split(".")[0]) for imp, _ in violations(tmp_path)}
    assert seen == {
        ("core", "serving"),
        ("core.a", "graph"),
        ("core.b", "graph"),
        ("core.c", "retrieval"),
        ("core.d", "eval"),
        ("core.sub.e", "api"),
        ("ingest.f", "graph"),
        ("graph.g", "ingest"),
        ("eval.cli", "serving"),
    }
