"""Shared fixtures. ``rig``: the real test rig (``bash rig/rig up``), for tests marked ``rig``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from tests.helpers.rig import RIG_NOT_UP, Rig, port_open, read_env, rig_from_env


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
        found = rig_from_env(read_env(env_file))
    except (OSError, KeyError, ValueError) as exc:
        _not_up(f"cannot read {env_file}: {exc!r}")
    down = [p for p in (found.port_bastion, found.port_amd64, found.port_emu) if not port_open(p)]
    if down:
        _not_up(f"no sshd on 127.0.0.1 port(s) {', '.join(map(str, down))}")
    return found
