#!/usr/bin/env bash
# Every check CI runs, in one place (README's test command calls this script):
#   1. ruff check            lint (rules in pyproject.toml)
#   2. ruff format --check   formatting (ruff pinned in the dev extra)
#   3. mypy                  type check of sphereml/ (configuration in pyproject.toml)
#   4. docs                  Sphinx build with warnings as errors; sphinx-gallery runs every
#                            script in examples/ in its fast mode; each gallery page must
#                            contain its figure
#   5. panel --quick         benchmarks/panel.py end to end on small data (no timings checked)
#   6. install commands      README's set-up commands resolve against the public index alone
#                            (tools/check_install.sh: a dry run with the site pip config off)
#   7. pytest                the test suite and the docstring examples (--doctest-modules)
# Usage: tools/check.sh [extra pytest arguments]. PYTHON overrides the interpreter
# (default: .venv/bin/python when it exists, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export MPLBACKEND=Agg

step() { printf '\n== %s\n' "$*"; }
started=$SECONDS

step "ruff check"
"$PY" -m ruff check sphereml tests examples benchmarks docs

step "ruff format --check"
"$PY" -m ruff format --check sphereml tests examples benchmarks docs

step "mypy"
"$PY" -m mypy

step "docs (sphinx -W, gallery in fast mode)"
rm -rf docs/_build docs/generated docs/auto_examples
SPHEREML_EXAMPLES_FAST=1 "$PY" -m sphinx -W --keep-going -q -b html docs docs/_build/html
"$PY" - <<'PY'
import pathlib
import sys

pages = sorted(pathlib.Path("docs/_build/html/auto_examples").glob("plot_*.html"))
missing = [p.name for p in pages if "sphx-glr-single-img" not in p.read_text(encoding="utf-8")
           and "sphx-glr-multi-img" not in p.read_text(encoding="utf-8")]
examples = sorted(pathlib.Path("examples").glob("plot_*.py"))
if len(pages) != len(examples) or missing:
    sys.exit(f"gallery pages {len(pages)} for {len(examples)} examples; without figure: {missing}")
print(f"gallery: {len(pages)} pages, each with its figure")
PY

step "benchmark panel, quick mode (3 small tables, 400 articles, 2 folds; no cache)"
"$PY" benchmarks/panel.py --quick --no-cache > /tmp/sphereml-panel-quick.txt
tail -n 9 /tmp/sphereml-panel-quick.txt

step "README install commands against the public index (dry run)"
bash tools/check_install.sh

step "pytest (tests and docstring examples)"
echo "checks before pytest took $((SECONDS - started)) s"
"$PY" -m pytest -q --doctest-modules sphereml tests "$@"
