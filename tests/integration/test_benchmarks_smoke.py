"""The benchmark suite still runs: every benchmark at a tiny size, every figure printed.

CI proves the suite works, it does not judge speed: a missed target is fine here, a crash or a
missing figure is not. Full-size results live in BENCHMARKS.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import FIGURES, SUITE
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

ROOT = Path(__file__).resolve().parents[2]


def test_suite_runs_small_and_prints_every_figure(rig: Rig) -> None:
    env = {**os.environ, "MATUI_RIG_DIR": str(rig.dir), "DOCKER_HOST": rig.docker_host}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--small"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    report = out.stdout
    assert "machine: " in report and "date: " in report
    table = report[report.rindex("\nfigure ") :]
    for name in FIGURES:
        assert f"\n{name} " in table, f"{name} missing from the summary:\n{table}"
    assert f"of {len(FIGURES)} targets met" in table
    assert set(SUITE) >= {"tui_ingest", "engine_ingest", "reattach", "search", "manifest_push"}
