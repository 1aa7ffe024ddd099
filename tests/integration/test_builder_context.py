"""A host entry naming a builder, on the rig: a docker context on the rig's second engine
(``MATUI_RIG_DOCKER2_HOST``) in the builder user's docker config. matui builds through it
(``docker --context NAME buildx build``: buildx 0.13 refuses ``--builder`` for a context), and
the job record names the builder and the node that built the job; a builder that does not
exist stops the build before anything starts, naming it.

The context lives in a home of the test's own (a private sshd sets ``HOME``): the rig's shared
builder user never sees it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd, private_sshd

pytestmark = pytest.mark.rig

CONTEXT = "matui-second"


@pytest.fixture
def context_host(rig: Rig, tmp_path: Path) -> Iterator[Sshd]:
    """A private sshd whose sessions have a home holding a docker context on the second
    engine."""
    second = os.environ.get("MATUI_RIG_DOCKER2_HOST")
    if not second:
        pytest.fail("the rig's second engine is not set up (MATUI_RIG_DOCKER2_HOST)")
    # Under /tmp, not tmp_path: the builder user must be able to reach it.
    home = Path(tempfile.mkdtemp(prefix="matui-builder-home-", dir="/tmp"))
    home.chmod(0o755)
    env = {**os.environ, "DOCKER_CONFIG": str(home / ".docker")}
    subprocess.run(
        ["docker", "context", "create", CONTEXT, "--docker", f"host={second}"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(["chown", "-R", f"{rig.user}:{rig.user}", str(home)], check=True)
    # sshd takes its first SetEnv line only: one line, replacing the rig's, sets both.
    server = private_sshd(
        rig, tmp_path / "sshd", options=[f"SetEnv DOCKER_HOST={rig.docker_host} HOME={home}"]
    )
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def _with_builder(config: Path, builder: str) -> None:
    text = config.read_text()
    config.write_text(text.replace("\n[[images]]", f'builder = "{builder}"\n\n[[images]]', 1))


def test_build_through_a_docker_context_builder_records_builder_and_node(
    rig: Rig, tmp_path: Path, context_host: Sshd
) -> None:
    config = project(tmp_path, rig, context_host, quick=True)
    _with_builder(config, CONTEXT)
    state = tmp_path / "state"
    build = run_matui("build", "--config", config, "--json", state=state)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (record,) = state.rglob("run.json")
    (job,) = json.loads(record.read_text())["jobs"]
    assert job["state"] == "succeeded"
    assert (job["builder"], job["builder_node"]) == (CONTEXT, CONTEXT)
    assert any(f"builder {CONTEXT} on node {CONTEXT}" in note for note in job["notes"])
    # A docker-driver builder pushes the per-arch tag; --json and the table say through what.
    assert job["pushed_as"] == job["arch_tag"]
    (said,) = json.loads(build.stdout)["jobs"]
    assert said["pushed"] == f"builder {CONTEXT}/node {CONTEXT}"
    assert f"(builder {CONTEXT}/node {CONTEXT})" in build.stderr  # the job's succeeded line
    log = next(record.parent.rglob("*.log")).read_text(errors="replace")
    assert "ERROR: use `docker --context" not in log
    # The probe kept what `buildx inspect` said of the builder: its driver and its node.
    hosts = json.loads(record.read_text())["hosts"]
    assert [(h["builder"], h["builder_driver"], h["builder_nodes"]) for h in hosts] == [
        (CONTEXT, "docker", [f"{CONTEXT}=amd64"])
    ]


def test_a_missing_builder_stops_the_build_naming_it(
    rig: Rig, tmp_path: Path, context_host: Sshd
) -> None:
    config = project(tmp_path, rig, context_host, quick=True)
    _with_builder(config, "no-such-builder")
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode != 0
    said = build.stdout + build.stderr
    assert "builder no-such-builder" in said and "docker buildx inspect no-such-builder" in said
