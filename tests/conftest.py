"""Shared fixtures. ``rig``: the real test rig (``bash rig/rig up``), for tests marked ``rig``."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

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


def _read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value
    return values


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _not_up(reason: str) -> NoReturn:
    message = f"{RIG_NOT_UP} ({reason})"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def rig() -> Rig:
    rig_dir = Path(os.environ.get("MATUI_RIG_DIR", "/tmp/matui-rig"))
    env_file = rig_dir / "env"
    if not env_file.is_file():
        _not_up(f"{env_file} is missing")
    try:
        env = _read_env(env_file)
        found = Rig(
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
    except (OSError, KeyError, ValueError) as exc:
        _not_up(f"cannot read {env_file}: {exc!r}")
    down = [p for p in (found.port_bastion, found.port_amd64, found.port_emu) if not _port_open(p)]
    if down:
        _not_up(f"no sshd on 127.0.0.1 port(s) {', '.join(map(str, down))}")
    return found
