"""A private sshd per test, configured like the rig's amd64 host (same host key, same user and
docker engine) on a port of its own, so a test can drop its connections or stop it without
disturbing the shared rig."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.rig import Rig, free_port


@dataclass
class Sshd:
    port: int
    pidfile: Path
    config: Path
    known_hosts: Path
    log: Path
    """sshd's own log (``-E``, LogLevel VERBOSE): only this sshd's connections are in it."""

    def start(self) -> None:
        subprocess.run(["/usr/sbin/sshd", "-f", str(self.config), "-E", str(self.log)], check=True)
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


def private_sshd(
    rig: Rig, tmp_path: Path, *, docker_host: str | None = None, options: Sequence[str] = ()
) -> Sshd:
    """Start an sshd like the rig's amd64 host on a free port, its files under ``tmp_path``;
    the caller stops it. ``known_hosts`` trusts it on its port. Its host key is the amd64
    host's. Its sessions use the amd64 host's docker engine, or the one at ``docker_host``
    (``unix://...``), e.g. a private engine a test may restart. ``options`` are sshd_config
    lines (``"MaxSessions 1"``, ``"LogLevel DEBUG1"``) replacing the rig's line for the same
    keyword."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = (rig.sshd_dir("amd64") / "sshd_config").read_text()
    pidfile = tmp_path / "sshd.pid"
    replaced = ["Port ", "PidFile ", "ClientAliveInterval"]
    head = [f"Port {port}", f"PidFile {pidfile}"]
    if docker_host is not None:
        # sshd takes the first SetEnv for a name: the rig's line must go, not just follow.
        replaced.append("SetEnv DOCKER_HOST=")
        head.append(f"SetEnv DOCKER_HOST={docker_host}")
    replaced += [f"{line.split()[0]} " for line in options]
    head += options
    lines = [line for line in base.splitlines() if not line.startswith(tuple(replaced))]
    config = tmp_path / "sshd_config"
    config.write_text("\n".join([*head, *lines]) + "\n")
    key = (rig.sshd_dir("amd64") / "ssh_host_ed25519_key.pub").read_text().split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key[0]} {key[1]}\n")
    server = Sshd(port, pidfile, config, known_hosts, tmp_path / "sshd.log")
    server.start()
    return server
