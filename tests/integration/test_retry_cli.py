"""On the rig: ``matui retry`` builds one failed arch again as a new attempt of the same run.

A two-arch build whose arm64 step fails on its first attempt: the step fails while the context's
``stamp`` file carries an old modification time. The test then touches the file (its content,
and so the run's source digest, stay the same): a build that copies it afresh passes. Retried
``--no-cache`` on the same host (the COPY and every RUN run again: no ``CACHED`` step in the new
attempt), or on another host with its own engine (``--host``), arm64 succeeds; amd64 keeps its
digest in the record; the arm64 log holds both attempts, the second opened by its marker line.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig
from tests.helpers.sshd import private_sshd

pytestmark = pytest.mark.rig

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY stamp /stamp
RUN if [ "$(uname -m)" = aarch64 ] && [ "$(stat -c %Y /stamp)" -lt 1000000000 ]; then \
echo "stale stamp"; exit 3; fi
RUN echo built > /built
"""


def _failed_first(tmp_path: Path, rig: Rig, extra: str = "") -> tuple[Path, Path, dict[str, str]]:
    """Build once (arm64 fails at the stamp step); then make the stamp fresh. Returns the
    config, the run's record directory and amd64's record (digest)."""
    config, _ = make_project(tmp_path, rig, DOCKERFILE, files={"stamp": b"same content\n"})
    stamp = tmp_path / "ctx" / "stamp"
    os.utime(stamp, (100_000, 100_000))
    if extra:
        with config.open("a") as file:
            file.write(extra)
    state = tmp_path / "state"
    build = run_matui("build", "--config", config, "--json", state=state)
    assert build.returncode == 1, build.stderr
    jobs = {job["arch"]: job for job in json.loads(build.stdout)["jobs"]}
    assert jobs["amd64"]["state"] == "succeeded"
    assert jobs["arm64"]["state"] == "failed" and jobs["arm64"]["failure"]["exit_code"] == 3
    assert jobs["arm64"]["attempt"] == 1
    now = time.time()
    os.utime(stamp, (now, now))  # same content: the source digest does not change
    (record,) = state.rglob("run.json")
    return config, record.parent, jobs["amd64"]


def _saved(record_dir: Path) -> dict[str, dict[str, object]]:
    data = json.loads((record_dir / "run.json").read_text())
    return {job["arch"]: job for job in data["jobs"]}


STALE = re.compile(r"^#\d+ [0-9.]+ stale stamp$", re.M)
"""The failing step's own output line (its command, which says it too, is not)."""


def _attempts(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("@@matui attempt ")]


def test_retry_no_cache_rebuilds_the_failed_arch_and_keeps_the_other(
    rig: Rig, tmp_path: Path
) -> None:
    config, record_dir, amd64 = _failed_first(tmp_path, rig)
    state = tmp_path / "state"

    # A succeeded arch is not retried without --force; the refusal says why.
    refused = run_matui("retry", "--config", config, "--arch", "amd64", state=state)
    assert refused.returncode == 2, refused.stderr
    assert "--arch amd64: it succeeded" in refused.stderr and "--force" in refused.stderr

    retry = run_matui(
        "retry", "--config", config, "--arch", "arm64", "--no-cache", "--json", state=state
    )
    assert retry.returncode == 0, retry.stderr
    doc = json.loads(retry.stdout)
    jobs = {job["arch"]: job for job in doc["jobs"]}
    assert jobs["arm64"]["state"] == "succeeded" and jobs["arm64"]["attempt"] == 2
    assert jobs["arm64"]["retry_options"] == {"no_cache": True, "pull": False, "host": None}
    assert doc["verdict"]["kind"] == "built"
    # The cause was named, with the retry that fits it, before the retry started.
    assert "arm64 failed (build-error)" in retry.stderr
    # The other arch keeps its digest, in the output and in the record.
    assert jobs["amd64"]["digest"] == amd64["digest"]
    saved = _saved(record_dir)
    assert saved["amd64"]["digest"] == amd64["digest"] and saved["amd64"]["attempt"] == 1
    assert saved["arm64"]["state"] == "succeeded" and saved["arm64"]["attempt"] == 2

    log = (record_dir / "arm64.log").read_text()
    (marker,) = _attempts(log)
    assert marker == "@@matui attempt 2: retry --no-cache on host emu-1"
    first, second = log.split(marker + "\n")
    assert STALE.search(first) and not STALE.search(second)
    # --no-cache reached buildx: the new attempt's COPY and RUN steps all ran again.
    steps = dict(re.findall(r"^#(\d+) \[[^\]]*\] ((?:COPY|RUN) .*)$", second, re.M))
    assert any(name.startswith("COPY stamp") for name in steps.values()), second
    cached = set(re.findall(r"^#(\d+) CACHED$", second, re.M))
    assert not cached & set(steps), second

    # matui logs shows both attempts of the arch, in order.
    logs = run_matui("logs", "--arch", "arm64", state=state)
    assert logs.returncode == 0, logs.stderr
    found = STALE.search(logs.stdout)
    assert found is not None and found.start() < logs.stdout.index(marker)


def test_retry_on_another_host_moves_the_job(rig: Rig, tmp_path: Path) -> None:
    # Another host that can build arm64 (under QEMU), with an engine of its own: the rig's
    # first dockerd, where this build's steps were never cached.
    other = private_sshd(rig, tmp_path / "emu2", docker_host=rig.docker_host)
    try:
        extra = f"""
[[hosts]]
name = "emu-2"
arch = "amd64"
address = "127.0.0.1"
port = {other.port}
known_hosts = "{other.known_hosts}"
allow_emulation = true
"""
        config, record_dir, amd64 = _failed_first(tmp_path, rig, extra)
        state = tmp_path / "state"
        assert _saved(record_dir)["arm64"]["host"] == "emu-1"

        # A host that cannot build arm64 is refused, naming the field and the hosts that can.
        refused = run_matui(
            "retry", "--config", config, "--arch", "arm64", "--host", "amd64-1", state=state
        )
        assert refused.returncode == 2
        assert "--host amd64-1" in refused.stderr and "emu-2" in refused.stderr

        retry = run_matui(
            "retry", "--config", config, "--arch", "arm64", "--host", "emu-2", state=state
        )
        assert retry.returncode == 0, retry.stdout + retry.stderr
        saved = _saved(record_dir)
        assert saved["arm64"]["host"] == "emu-2" and saved["arm64"]["emulated"] is True
        assert saved["arm64"]["state"] == "succeeded" and saved["arm64"]["attempt"] == 2
        assert saved["amd64"]["digest"] == amd64["digest"]
        log = (record_dir / "arm64.log").read_text()
        (marker,) = _attempts(log)
        assert marker == "@@matui attempt 2: retry on host emu-2"
        first, second = log.split(marker + "\n")
        assert STALE.search(first) and not STALE.search(second)
        assert "#0 building with" in second
    finally:
        other.stop()
