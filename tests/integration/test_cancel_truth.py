"""A cancel is a request: the job's outcome is what its host says.

On the rig, with a private sshd per test: a cancel whose channel is refused (``MaxSessions 1``
and one connection) or whose path is blackholed for 25 s reaches the host only after the build
has finished, so the job ends ``succeeded`` with its digest (told the cancel came too late), or
``lost`` when the host cannot be read — never ``cancelled``. A cancel that cannot be delivered at
all within the reconnect budget ends the job ``lost``, "may still be running". The normal case
(the cancel arrives, the build stops) is ``test_build_connection``'s Ctrl-C test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from matui.engine.build import start_build
from matui.engine.build.run import LinesEvent, NoteEvent, StateEvent
from matui.engine.config import load_config
from matui.engine.records import JobState, list_runs
from matui.engine.ssh import SshPool
from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd, private_sshd
from tests.integration.test_survival import Relay

pytestmark = pytest.mark.rig


@pytest.fixture
def one_session_sshd(rig: Rig, tmp_path: Path) -> Iterator[Sshd]:
    server = private_sshd(rig, tmp_path / "sshd1", options=["MaxSessions 1"])
    yield server
    server.stop()


def _ctrl_c_at_tick_2(
    config: Path, tmp_path: Path, *, extra_env: dict[str, str], on_interrupt: object = None
) -> tuple[subprocess.Popen[str], str, str]:
    """`matui build --json` in a subprocess, SIGINT when tick 2 is logged; waits for it to end."""
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "matui", "build", "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if "tick 2" in line:
            proc.send_signal(signal.SIGINT)
            if callable(on_interrupt):
                on_interrupt()
            break
    out, err = proc.communicate(timeout=240)
    return proc, out, "".join(seen) + err


def _assert_never_cancelled(rig: Rig, tmp_path: Path, out: str, err: str) -> dict[str, object]:
    (job,) = json.loads(out)["jobs"]
    (record,) = list_runs(tmp_path / "state" / "matui")
    host_exit = (rig.host_job_dir(record.id) / "exit").read_text().strip()
    assert host_exit == "0", "the build was meant to finish on the host before the cancel"
    assert job["state"] != "cancelled", err[-3000:]
    assert record.job("amd64").state is not JobState.CANCELLED
    assert record.state != "cancelled"
    assert "== cancelled" not in err
    if job["state"] == "succeeded":
        assert job["digest"] and job["digest"].startswith("sha256:")
        assert record.job("amd64").digest == job["digest"]
        assert "the cancel came too late" in err, err[-3000:]
        assert any("too late" in note for note in job["notes"])
    else:
        assert job["state"] == "lost", err[-3000:]
        assert "may still be running" in (job["error"] or "")
    return dict(job)


def test_ctrl_c_with_the_cancel_channel_refused_is_not_cancelled(
    rig: Rig, one_session_sshd: Sshd, tmp_path: Path
) -> None:
    """MaxSessions 1 and one connection: the follow holds the only session, so the cancel's
    channel is refused until the build has ended; the host then says it finished (exit 0)."""
    config = project(tmp_path, rig, one_session_sshd)
    proc, out, err = _ctrl_c_at_tick_2(
        config, tmp_path, extra_env={"MATUI_SSH_MAX_CONNECTIONS": "1"}
    )
    job = _assert_never_cancelled(rig, tmp_path, out, err)
    assert job["state"] == "succeeded", err[-3000:]
    assert "no more sessions" in one_session_sshd.log.read_text()  # it really was refused
    assert "the cancel did not stop amd64" in err
    assert proc.returncode == 0, err[-3000:]


def test_ctrl_c_with_the_path_blackholed_for_25s_is_not_cancelled(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    relay = Relay(sshd.port)
    assert relay.listening.wait(timeout=10), "the relay did not start listening"
    try:
        config = project(tmp_path, rig, sshd)
        config.write_text(config.read_text().replace(f"port = {sshd.port}", f"port = {relay.port}"))
        key = sshd.known_hosts.read_text().split()[1:3]
        sshd.known_hosts.write_text(f"[127.0.0.1]:{relay.port} {key[0]} {key[1]}\n")
        healed: list[float] = []

        def heal() -> None:
            relay.flowing.set()
            healed.append(time.monotonic())

        def blackhole() -> None:
            relay.flowing.clear()
            timer = threading.Timer(25, heal)
            timer.daemon = True
            timer.start()

        _, out, err = _ctrl_c_at_tick_2(config, tmp_path, extra_env={}, on_interrupt=blackhole)
        assert healed, "matui ended while the path was still dead"
        _assert_never_cancelled(rig, tmp_path, out, err)
    finally:
        relay.flowing.set()
        relay.stop()


def test_a_cancel_that_cannot_be_delivered_ends_lost_not_cancelled(
    rig: Rig, one_session_sshd: Sshd, tmp_path: Path
) -> None:
    """The cancel's channel stays refused past the reconnect budget while the build runs on:
    the job ends lost ("may still be running on h"), and the build does go on to the end.
    The build runs 20 s, far longer than the cancel's attempts: it cannot end first and free
    the session (the cancel would then arrive, too late, and the job end succeeded)."""
    config = load_config(project(tmp_path, rig, one_session_sshd, ticks=40))

    async def run() -> tuple[str, JobState, str | None, list[str]]:
        notes: list[str] = []
        async with SshPool(config.hosts, max_connections=1, session_wait=0.5) as pool:
            prepared = await start_build(config, pool, state_root=tmp_path / "state")
            build = prepared.run
            build.reconnect_attempts = 1
            build.reconnect_delay = 0.1
            cancelling: list[asyncio.Task[None]] = []
            async for event in build.events():
                if isinstance(event, LinesEvent) and not cancelling:
                    if any("tick 1" in line for line in event.lines):
                        cancelling.append(asyncio.create_task(build.cancel()))
                elif isinstance(event, NoteEvent):
                    notes.append(event.text)
                elif isinstance(event, StateEvent):
                    assert event.state is not JobState.CANCELLED, event
            await asyncio.gather(*cancelling)
            status = (await build.wait())["amd64"]
            return build.id, status.state, status.error, notes

    run_id, state, error, notes = asyncio.run(run())
    assert state is JobState.LOST
    assert error and "may still be running on h" in error and "could not be delivered" in error
    assert any("the cancel did not reach h" in note for note in notes)
    (record,) = list_runs(tmp_path / "state")
    assert record.job("amd64").state is JobState.LOST
    job = rig.host_job_dir(run_id)
    deadline = time.monotonic() + 60
    while not (job / "exit").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (job / "exit").read_text().strip() == "0"  # it was never stopped: not cancelled
    assert not (job / "cancelled").exists()
