"""Fixtures for tests that cross SSH: a private sshd per test, so killing it never disturbs
the shared rig (see :mod:`tests.helpers.sshd`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd, private_sshd


@pytest.fixture
def sshd(rig: Rig, tmp_path: Path) -> Iterator[Sshd]:
    server = private_sshd(rig, tmp_path)
    yield server
    server.stop()
