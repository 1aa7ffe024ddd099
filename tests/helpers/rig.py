"""The test rig as ``rig/rig up`` describes it in ``$MATUI_RIG_DIR/env``: its addresses, key and
known_hosts, read into a :class:`Rig` that tests take from the ``rig`` fixture."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

RIG_NOT_UP = "rig not up: run `bash rig/rig up` as root"


@dataclass(frozen=True)
class Rig:
    """The values ``rig/rig up`` writes to ``$MATUI_RIG_DIR/env``."""

    dir: Path
    user: str
    key: Path
    known_hosts: Path
    port_bastion: int
    port_amd64: int
    port_emu: int
    registry: str
    base_image: str
    docker_host: str
    address: str = "127.0.0.1"

    def sshd_dir(self, name: str) -> Path:
        """``bastion``, ``amd64`` or ``emu``: host keys, sshd.log."""
        return self.dir / "sshd" / name

    def host_job_dir(self, run_id: str, key: str = "amd64") -> Path:
        """A job's directory on the builder hosts (all run as the rig's user on this machine)."""
        return Path(f"~{self.user}").expanduser() / ".matui" / "runs" / run_id / key


def read_env(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of a rig env file."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value
    return values


def rig_from_env(env: dict[str, str]) -> Rig:
    """Raises ``KeyError``/``ValueError`` when the file lacks a value or has a bad port."""
    return Rig(
        dir=Path(env["MATUI_RIG_DIR"]),
        user=env["MATUI_RIG_USER"],
        key=Path(env["MATUI_RIG_KEY"]),
        known_hosts=Path(env["MATUI_RIG_KNOWN_HOSTS"]),
        port_bastion=int(env["MATUI_RIG_PORT_BASTION"]),
        port_amd64=int(env["MATUI_RIG_PORT_AMD64"]),
        port_emu=int(env["MATUI_RIG_PORT_EMU"]),
        registry=env["MATUI_RIG_REGISTRY"],
        base_image=env["MATUI_RIG_BASE_IMAGE"],
        docker_host=env["DOCKER_HOST"],
    )


def port_open(port: int, address: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's pick); the caller binds it soon after."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])
