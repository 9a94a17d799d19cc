"""The generated result pages agree with the records they are generated from.

``docs/panel.rst``, ``docs/gpu.rst`` and the tables of ``benchmarks/README.md`` are written
by ``benchmarks/panel.py --write-readme`` and ``benchmarks/report.py --write`` from
``benchmarks/results/``; an edit by hand, or a record without its page, fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["panel.py", "report.py"])
def test_generated_pages_match_the_records(script):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--check"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
