"""A job's duration is its real wall time, from the host's own start and end stamps: also when
matui died during the build and `matui attach` picked it up after it had ended."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from matui.engine.records import list_runs
from tests.helpers.cli import read_until, run_matui, spawn_matui
from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd

pytestmark = pytest.mark.rig


def test_duration_after_a_reattach_is_the_host_s_wall_time(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    config = project(tmp_path, rig, sshd)
    proc = spawn_matui("build", "--config", config, state=tmp_path / "state")
    read_until(proc, "tick 2")
    proc.kill()
    proc.wait(timeout=30)
    (record,) = list_runs(tmp_path / "state" / "matui")
    job = rig.host_job_dir(record.id)
    deadline = time.monotonic() + 60
    while not (job / "exit").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (job / "exit").read_text().strip() == "0"
    host_seconds = float((job / "ended").read_text()) - float((job / "started").read_text())
    attach = run_matui(
        "attach",
        "--config",
        config,
        "--json",
        state=tmp_path / "state",
        env={"PYTHONUNBUFFERED": "1"},
        timeout=120,
    )
    assert attach.returncode == 0, attach.stderr[-2000:]
    (status,) = json.loads(attach.stdout)["jobs"]
    assert status["state"] == "succeeded"
    # 12 ticks of 0.5 s ran on the host, most of them while no matui was there.
    assert host_seconds > 5
    assert status["seconds"] == pytest.approx(host_seconds, abs=0.01)
    (record,) = list_runs(tmp_path / "state" / "matui")
    assert record.job("amd64").seconds == pytest.approx(host_seconds, abs=0.01)
