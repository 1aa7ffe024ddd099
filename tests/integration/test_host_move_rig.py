"""Host moves on the rig: two amd64 hosts in a pool. The first is a private sshd whose docker is a
private engine; it is stopped while a long RUN step runs there, and the job moves once to the
rig's amd64 host and succeeds, the run's output and record saying so. A Dockerfile step that
exits 3 on a pool of two hosts does not move.

The private sshd runs as the rig's user on this machine, so the two host entries are one
machine to the planner: equal figures whatever other tests run there, and config order puts the
job on the first (the private one)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from matui.engine.records import JobState, list_runs
from tests.helpers.cli import read_until, run_matui, spawn_matui
from tests.helpers.dockerd import PrivateDockerd
from tests.helpers.projects import TICKS
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd, private_sshd

pytestmark = pytest.mark.rig

EXITS_3 = """\
ARG BASE
FROM ${BASE}
RUN echo start-%s; echo failing on purpose; exit 3
"""


@pytest.fixture
def private_engine(rig: Rig, tmp_path: Path) -> Iterator[PrivateDockerd]:
    """A docker engine of this test's own (it is stopped under a build; the rig's never is),
    holding the amd64 base image already, as the rig's engines do."""
    engine = PrivateDockerd(tmp_path / "engine")
    try:
        engine.start()
        engine.pull(rig.base_image, "linux/amd64")
        yield engine
    finally:
        engine.close()


@pytest.fixture
def engine_sshd(rig: Rig, private_engine: PrivateDockerd, tmp_path: Path) -> Iterator[Sshd]:
    """An amd64 builder host like the rig's, its sessions on the private engine."""
    server = private_sshd(rig, tmp_path / "engine-sshd", docker_host=private_engine.host)
    yield server
    server.stop()


def pool_config(tmp_path: Path, rig: Rig, first: Sshd, dockerfile: str) -> tuple[Path, str]:
    """A one-image amd64 project on a pool of two amd64 hosts: ``amd64-1`` (``first``, a
    private sshd), then ``amd64-2`` (the rig's amd64 host). Returns the config and the repo."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    repo = f"{rig.registry}/move-test/app{secrets.token_hex(4)}"
    config = tmp_path / "matui.toml"
    config.write_text(f"""
[defaults]
user = "{rig.user}"
identity = "{rig.key}"
known_hosts = "{rig.known_hosts}"

[[hosts]]
name = "amd64-1"
arch = "amd64"
address = "127.0.0.1"
port = {first.port}
known_hosts = "{first.known_hosts}"

[[hosts]]
name = "amd64-2"
arch = "amd64"
address = "127.0.0.1"
port = {rig.port_amd64}

[[images]]
name = "{repo}"
tags = ["1.0"]
context = "ctx"
platforms = ["linux/amd64"]
build_args = {{ BASE = "{rig.base_image}" }}
""")
    return config, repo


def test_an_engine_stopped_mid_build_moves_the_job_once_and_it_succeeds_elsewhere(
    rig: Rig, private_engine: PrivateDockerd, engine_sshd: Sshd, tmp_path: Path
) -> None:
    token = secrets.token_hex(6)
    config, _ = pool_config(tmp_path, rig, engine_sshd, TICKS % (token, 24))
    state = tmp_path / "state"
    proc = spawn_matui("build", "--config", config, state=state)
    try:
        # The long RUN step has started on the first host (its output is there): stop its engine.
        seen = read_until(proc, "tick 3")
        assert any("tick 3" in line for line in seen), "".join(seen)
        assert "matui: run " in "".join(seen) and "linux/amd64 on amd64-1" in "".join(seen)
        private_engine.stop()
        rest, _ = proc.communicate(timeout=420)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    output = "".join(seen) + rest
    assert proc.returncode == 0, output[-4000:]

    moved = [line for line in output.splitlines() if line.startswith("[amd64] note: moved ")]
    assert len(moved) == 1, output[-4000:]
    assert moved[0].startswith(
        "[amd64] note: moved linux/amd64 from amd64-1 to amd64-2: engine gone ("
    ), moved
    assert "@@matui attempt 2: retry on host amd64-2" in output
    # The summary: it succeeded on the second host, and says where it came from.
    summary = moved[0].removeprefix("[amd64] note: ")
    assert summary in output.splitlines()[-5:], output[-2000:]

    (record,) = list_runs(state / "matui")
    job = record.job("amd64")
    assert (job.state, job.host, job.attempt) == (JobState.SUCCEEDED, "amd64-2", 2)
    assert job.digest and job.digest.startswith("sha256:")
    assert job.tried_hosts == ["amd64-1", "amd64-2"]
    (move,) = job.moves
    assert (move["from"], move["to"], move["cause"]) == (
        "amd64-1",
        "amd64-2",
        "host-or-engine-lost",
    )
    assert str(move["detail"]).startswith("engine gone (")
    # The attempt on the second host ran the whole step: its last tick is in the log copy.
    log = record.log_path("amd64").read_text(errors="replace")
    assert log.count(f"start-{token}") >= 2 and "tick 24" in log.split("@@matui attempt 2")[1]


def test_a_failing_dockerfile_step_on_a_pool_of_two_does_not_move(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    """Both hosts healthy (the private sshd on the rig's engine); the step exits 3."""
    config, _ = pool_config(tmp_path, rig, sshd, EXITS_3 % secrets.token_hex(6))
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode != 0, build.stderr[-3000:]
    doc = json.loads(build.stdout)
    (job,) = doc["jobs"]
    assert (job["state"], job["attempt"], job["moves"]) == ("failed", 1, [])
    assert job["tried_hosts"] == [job["host"]]
    assert job["failure"]["cause"] == "build-error" and job["failure"]["exit_code"] == 3
    assert job["failure"]["moves"] == [] and job["failure"]["tried_hosts"] == [job["host"]]
    assert "moved linux/amd64" not in build.stderr and "@@matui attempt 2" not in build.stderr
