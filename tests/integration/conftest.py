"""Fixtures for tests that cross SSH: a private sshd per test, so killing it never disturbs
the shared rig, and a small project (config + context) building a slow, chatty image."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Rig


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


QUICK = """\
ARG BASE
FROM ${BASE}
RUN echo start-%s
"""


def project(tmp_path: Path, rig: Rig, sshd: Sshd, *, quick: bool = False) -> Path:
    """One amd64 image on the private sshd: 12 ticks over 6 s, or a quick one-step build."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text((QUICK if quick else TICKS) % secrets.token_hex(6))
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
