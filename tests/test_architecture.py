"""The house rules: the folder tree is the layer diagram, and imports only point down.

Layers, bottom to top (docs/developers.rst explains them):

    utils, _sphere, text  →  riemannian  →  nn, optim  →  training  →  mixture, neural's
    private modules (the estimator base)  →  neural estimators  →  datasets, plotting
    →  public facades (geometry, vmf, cli, …)

A module may import from its own package and from lower layers only; ``nn`` and ``optim``
are siblings that do not import each other, the estimators never import each other, the
NumPy layer imports torch only inside functions, and ``nn`` imports no scikit-learn or
skorch.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sphereml"

# rank of each top-level unit of the package: a module may import equal or lower ranks
# (equal only inside its own unit, see SIBLINGS)
RANK = {
    "utils": 0,
    "_sphere": 1,
    "text": 1,
    "riemannian": 2,
    "nn": 3,
    "optim": 3,
    "training": 4,
    "mixture": 5,
    "neural._internals": 5,  # _base, _checks: the estimator base and its helpers
    "neural.spherical_classifier": 6,
    "neural.ngpt_text_classifier": 6,
    "neural.ndm_classifier": 6,
    "datasets": 7,
    "plotting": 7,
    # public facades and entry points: may import anything below
    "neural": 8,
    "geometry": 8,
    "vmf": 8,
    "cli": 8,
    "persistence": 8,
    "sphere": 8,  # the deprecated alias of geometry and vmf
    "__init__": 9,
}


def unit_of(module: str) -> str:
    """'sphereml.neural.ndm_classifier' → 'neural.ndm_classifier'; 'sphereml.nn.ngpt' → 'nn'."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    if parts[0] == "neural":
        if len(parts) == 1 or parts[1] == "__init__":
            return "neural"
        if parts[1].startswith("_"):
            return "neural._internals"
        return f"neural.{parts[1]}"
    return parts[0]


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # from . import x: each name may be a module
                    found += [(f"{target}.{a.name}", id(node) in top_level) for a in node.names]
                    continue
            else:
                target = node.module or ""
            found.append((target, id(node) in top_level))
    return found


FILES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    for path in FILES:
        unit = unit_of(module_name(path))
        assert unit in RANK, f"{path} is in no layer; add its folder to RANK and the docs"


def upward_imports(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    me = unit_of(module_name(path, root))
    found = []
    for target, _ in imports(path, root):
        if not target.startswith("sphereml"):
            continue
        other = unit_of(target)
        if other != me and RANK[other] >= RANK[me]:
            found.append(
                f"{module_name(path, root)} (layer {me}, rank {RANK[me]}) imports {target} "
                f"(layer {other}, rank {RANK[other]})"
            )
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    assert upward_imports(path) == [], "imports must point down the stack"


@pytest.mark.parametrize(
    "unit, forbidden",
    [
        ("_sphere", ("torch", "skorch")),
        ("utils", ("torch", "skorch")),
        ("text", ("torch", "skorch")),
        ("mixture", ("torch", "skorch")),
        ("nn", ("sklearn", "skorch")),
        ("optim", ("sklearn", "skorch")),
        ("riemannian", ("sklearn", "skorch")),
        ("training", ("sklearn",)),
    ],
)
def test_layer_dependencies(unit, forbidden):
    """The NumPy layers import torch only inside functions; torch layers never sklearn."""
    for path in FILES:
        if unit_of(module_name(path)) != unit:
            continue
        for target, at_module_level in imports(path):
            root = target.split(".")[0]
            if root not in forbidden:
                continue
            assert root != "skorch", f"{path} imports skorch"
            if root == "torch":
                assert not at_module_level, f"{path} imports torch at module level"
            else:
                pytest.fail(f"{path} imports {target}")


def test_the_checker_finds_upward_and_sibling_imports(tmp_path):
    bad = tmp_path / "sphereml" / "_sphere" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..neural._base import TorchClassifierBase\nfrom . import vmf\n")
    assert len(upward_imports(bad, tmp_path)) == 1
    sibling = tmp_path / "sphereml" / "nn" / "bad.py"
    sibling.parent.mkdir(parents=True)
    sibling.write_text("def f():\n    from ..optim import RiemannianAdam\n")
    assert len(upward_imports(sibling, tmp_path)) == 1  # lazy imports count too
    estimator = tmp_path / "sphereml" / "neural" / "ndm_classifier.py"
    estimator.parent.mkdir(parents=True)
    estimator.write_text("from .spherical_classifier import SphericalClassifier\n")
    assert len(upward_imports(estimator, tmp_path)) == 1


EVIDENCE = re.compile(r"20\d\d-\d\d-\d\d|benchmarks/README|benchmarks/results|\bH[12]00\b")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_measurements_live_on_the_decisions_page_not_in_the_code(path):
    """Docstrings and comments state behaviour; dates, machines and evidence files belong
    to docs/decisions.rst, which the code cites by entry title."""
    found = EVIDENCE.findall(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name} cites {found}: move the measurement to the decisions page"


def test_the_evidence_check_finds_a_dated_measurement():
    assert EVIDENCE.search("# measured on an H200 (benchmarks/README.md, 2026-12-05)")
    assert not EVIDENCE.search("# see docs/decisions.rst, 'GPU kernels'")


def module_graph(root: Path = PACKAGE.parent) -> dict[str, set[str]]:
    """Module → the package's modules it imports (lazy imports included)."""
    modules = {module_name(p, root): p for p in sorted((root / "sphereml").rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target, _ in imports(path, root):
            parts = target.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()  # "pkg.mod.name" → the module "pkg.mod"
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        graph[name] = targets
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in graph:
        if start in state:
            continue
        path, todo = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_module_imports_itself_through_others():
    assert import_cycle(module_graph()) is None


def test_the_cycle_check_finds_a_lazy_cycle(tmp_path):
    package = tmp_path / "sphereml" / "mixture"
    package.mkdir(parents=True)
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("def f():\n    from .a import y\n")
    assert import_cycle(module_graph(tmp_path)) == [
        "sphereml.mixture.a",
        "sphereml.mixture.b",
        "sphereml.mixture.a",
    ]


MAX_LINES = 600


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small_or_say_why(path):
    """A module over MAX_LINES lines names the reason at the top of its docstring."""
    text = path.read_text(encoding="utf-8")
    if text.count("\n") <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert "Longer than" in docstring, f"{path.name} has {text.count(chr(10))} lines"
