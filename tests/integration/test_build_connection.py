"""Builds and their SSH connections: a dropped connection is not the end of a build.

Each test runs its own sshd (the rig's amd64 host config on a free port) so that killing it never
disturbs the shared rig.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from matui.engine.build import start_build
from matui.engine.config import load_config
from matui.engine.records import list_runs
from matui.engine.runner import JobState, LinesEvent, StateEvent
from matui.engine.ssh import SshPool
from tests.conftest import Rig

pytestmark = pytest.mark.rig


@dataclass
class Sshd:
    port: int
    pidfile: Path
    config: Path
    known_hosts: Path

    def start(self) -> None:
        subprocess.run(["/usr/sbin/sshd", "-f", str(self.config)], check=True)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("test sshd did not start")

    @property
    def listener(self) -> int:
        return int(self.pidfile.read_text())

    def drop_connections(self) -> None:
        """Kill the per-connection sshd processes; the listener stays up."""
        subprocess.run(["pkill", "-TERM", "-P", str(self.listener)], check=False)

    def stop(self) -> None:
        if self.pidfile.exists():
            self.drop_connections()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.listener, signal.SIGTERM)
            self.pidfile.unlink(missing_ok=True)


@pytest.fixture
def sshd(rig: Rig, tmp_path: Path) -> Iterator[Sshd]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = (rig.sshd_dir("amd64") / "sshd_config").read_text()
    pidfile = tmp_path / "sshd.pid"
    lines = [
        line
        for line in base.splitlines()
        if not line.startswith(("Port ", "PidFile ", "ClientAliveInterval"))
    ]
    config = tmp_path / "sshd_config"
    config.write_text("\n".join([f"Port {port}", f"PidFile {pidfile}", *lines]) + "\n")
    key = (rig.sshd_dir("amd64") / "ssh_host_ed25519_key.pub").read_text().split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key[0]} {key[1]}\n")
    server = Sshd(port, pidfile, config, known_hosts)
    server.start()
    yield server
    server.stop()


TICKS = """\
ARG BASE
FROM ${BASE}
RUN echo start-%s; for i in $(seq 1 12); do echo "tick $i"; sleep 0.5; done
"""


def project(tmp_path: Path, rig: Rig, sshd: Sshd) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(TICKS % secrets.token_hex(6))
    config = tmp_path / "matui.toml"
    config.write_text(f"""
[[hosts]]
name = "h"
arch = "amd64"
address = "127.0.0.1"
port = {sshd.port}
user = "{rig.user}"
identity = "{rig.key}"
known_hosts = "{sshd.known_hosts}"

[[images]]
name = "{rig.registry}/conn-test/app{secrets.token_hex(4)}"
tags = ["1.0"]
context = "ctx"
platforms = ["linux/amd64"]
build_args = {{ BASE = "{rig.base_image}" }}
""")
    return config


def remote_job_dir(rig: Rig, run_id: str) -> Path:
    return Path(f"~{rig.user}").expanduser() / ".matui" / "runs" / run_id / "amd64"


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
    host_log = (remote_job_dir(rig, str(result["run"])) / "build.log").read_bytes()
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
    job = remote_job_dir(rig, str(result["run"]))
    pgid = int((job / "pid").read_text())
    deadline = time.monotonic() + 60
    while (job / "exit").exists() is False and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (job / "exit").read_text().strip() == "0", f"build {pgid} did not finish on the host"


def test_ctrl_c_cancels_remote_builds_and_records_it(rig: Rig, sshd: Sshd, tmp_path: Path) -> None:
    config = project(tmp_path, rig, sshd)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "matui", "build", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if "tick 2" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=60)
    output = "".join(seen) + rest
    assert proc.returncode == 1, output
    assert "cancelled" in output
    (record,) = list_runs(tmp_path / "state" / "matui")
    assert record.data["state"] == "cancelled"
    assert record.job("amd64")["state"] == "cancelled"
    job = remote_job_dir(rig, record.id)
    pgid = int((job / "pid").read_text())
    # No process of the build's group is left on the host.
    alive = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    assert alive.stdout.strip() == "", f"left running: {alive.stdout}"
    assert "tick 12" not in (job / "build.log").read_text()
    doc = json.loads(json.dumps(record.data))
    assert doc["jobs"][0]["digest"] is None
