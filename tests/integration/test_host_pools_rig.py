"""Host pools on the rig: two amd64 hosts, the first a private sshd that is stopped: the build
runs on the other, and `matui build` says why, in its plan lines and in its --json plan."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.projects import QUICK
from tests.helpers.rig import Rig
from tests.helpers.sshd import private_sshd

pytestmark = pytest.mark.rig


def test_one_host_of_the_pool_unreachable_the_build_runs_on_the_other(
    rig: Rig, tmp_path: Path
) -> None:
    down = private_sshd(rig, tmp_path / "sshd")
    down.stop()  # its port is closed now: connection refused
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(QUICK % secrets.token_hex(6))
    repo = f"{rig.registry}/pool-test/app{secrets.token_hex(4)}"
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
port = {down.port}
known_hosts = "{down.known_hosts}"

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
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 0, build.stderr + build.stdout
    doc = json.loads(build.stdout)
    assert [(j["arch"], j["host"], j["state"]) for j in doc["jobs"]] == [
        ("amd64", "amd64-2", "succeeded")
    ]
    (job,) = doc["plan"]["jobs"]
    assert job["host"] == "amd64-2" and job["candidates"] == 2
    assert job["reason"].startswith("the only usable amd64 host (")
    (passed,) = doc["plan"]["passed_over"]
    assert (passed["host"], passed["state"]) == ("amd64-1", "unreachable")
    assert passed["reason"].startswith("UNREACHABLE: ")
    assert f"127.0.0.1:{down.port}" in passed["reason"] or "refused" in passed["reason"]
    # The human lines, before the build's own: where and why, and who was passed over.
    assert f"matui: plan: linux/amd64 on amd64-2: {job['reason']}" in build.stderr
    assert "matui: not using host amd64-1: UNREACHABLE: " in build.stderr
