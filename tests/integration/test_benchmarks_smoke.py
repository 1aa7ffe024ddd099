"""The benchmark suite still runs: every benchmark at a tiny size, every figure printed.

CI proves the suite works, it does not judge speed: a missed target is fine here, a crash or a
missing figure is not. Full-size results live in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import re
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


def test_release_scale_small_spreads_the_release_and_cleans_up(rig: Rig) -> None:
    """The scale benchmark's own rig: its private hosts take the release's jobs (each host a
    machine of its own to the planner), both sides build, and its sshds and cgroup go."""
    env = {**os.environ, "MATUI_RIG_DIR": str(rig.dir), "DOCKER_HOST": rig.docker_host}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.release_scale", "--small"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    printed = [line for line in out.stdout.splitlines() if line.startswith("@@figure ")]
    assert [json.loads(line[len("@@figure ") :])["name"] for line in printed] == list(
        SUITE["release_scale"]
    )
    assert "3 hosts used" in out.stderr, out.stderr[-2000:]
    found = re.search(r"fleet: 3 sshd under (\S+), cgroup (\S+)", out.stderr)
    assert found, out.stderr[-2000:]
    fleet, cgroup = found[1], found[2]
    left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert fleet not in left
    assert not Path(fleet).exists()
    if cgroup != "none":
        assert not Path(cgroup).exists()
