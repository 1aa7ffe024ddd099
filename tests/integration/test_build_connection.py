"""Builds and their SSH connections: a dropped connection is not the end of a build.

Each test runs its own sshd (the rig's amd64 host config on a free port) so that killing it never
disturbs the shared rig.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from matui.engine.build import start_build
from matui.engine.build.run import LinesEvent, StateEvent
from matui.engine.config import load_config
from matui.engine.records import JobState, list_runs
from matui.engine.ssh import SshPool
from tests.helpers.cli import read_until, spawn_matui
from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd

pytestmark = pytest.mark.rig


async def build_and_interfere(
    config_path: Path, state: Path, interfere: object, **run_options: float
) -> tuple[dict[str, object], list[str], list[StateEvent]]:
    config = load_config(config_path)
    lines: list[str] = []
    states: list[StateEvent] = []
    async with SshPool(config.hosts, keepalive_interval=1, keepalive_count_max=2) as pool:
        prepared = await start_build(config, pool, state_root=state)
        run = prepared.run
        run.reconnect_attempts = int(run_options.get("attempts", 4))
        run.reconnect_delay = run_options.get("delay", 0.5)
        done = False
        async for event in run.events():
            if isinstance(event, LinesEvent):
                lines.extend(event.lines)
                if not done and any("tick 3" in line for line in event.lines):
                    done = True
                    assert callable(interfere)
                    interfere()
            elif isinstance(event, StateEvent):
                states.append(event)
        status = await run.wait()
        return {"status": status["amd64"], "run": run.id}, lines, states


def test_dropped_connection_reattaches_at_the_exact_byte(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    config = project(tmp_path, rig, sshd)
    result, lines, _ = asyncio.run(
        build_and_interfere(config, tmp_path / "state", sshd.drop_connections)
    )
    status = result["status"]
    assert status.state is JobState.SUCCEEDED, status.error  # type: ignore[attr-defined]
    assert status.exit_code == 0 and status.digest  # type: ignore[attr-defined]
    ticks = [line for line in lines if line.split(" ", 2)[-1].startswith("tick ")]
    assert [t.rsplit(" ", 1)[-1] for t in ticks] == [str(i) for i in range(1, 13)]
    (record,) = list_runs(tmp_path / "state")
    host_log = (rig.host_job_dir(str(result["run"])) / "build.log").read_bytes()
    assert record.log_path("amd64").read_bytes() == host_log  # nothing lost, nothing twice


def test_no_way_back_to_the_host_ends_lost_not_succeeded(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    config = project(tmp_path, rig, sshd)
    result, _, states = asyncio.run(
        build_and_interfere(config, tmp_path / "state", sshd.stop, attempts=2, delay=0.2)
    )
    status = result["status"]
    assert status.state is JobState.LOST  # type: ignore[attr-defined]
    assert status.digest is None and status.exit_code is None  # type: ignore[attr-defined]
    assert JobState.SUCCEEDED not in [event.state for event in states]
    # The build itself goes on, detached, on the host.
    job = rig.host_job_dir(str(result["run"]))
    pgid = int((job / "pid").read_text())
    deadline = time.monotonic() + 60
    while (job / "exit").exists() is False and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (job / "exit").read_text().strip() == "0", f"build {pgid} did not finish on the host"


def test_ctrl_c_cancels_remote_builds_and_records_it(rig: Rig, sshd: Sshd, tmp_path: Path) -> None:
    config = project(tmp_path, rig, sshd)
    proc = spawn_matui("build", "--config", config, state=tmp_path / "state")
    seen = read_until(proc, "tick 2")
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    output = "".join(seen) + rest
    assert proc.returncode == 1, output
    assert "cancelled" in output
    (record,) = list_runs(tmp_path / "state" / "matui")
    assert record.state == "cancelled"
    assert record.job("amd64").state == "cancelled"
    job = rig.host_job_dir(record.id)
    pgid = int((job / "pid").read_text())
    # No process of the build's group is left on the host.
    alive = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    assert alive.stdout.strip() == "", f"left running: {alive.stdout}"
    assert "tick 12" not in (job / "build.log").read_text()
    doc = json.loads((record.dir / "run.json").read_text())
    assert doc["jobs"][0]["digest"] is None
