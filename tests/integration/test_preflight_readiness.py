"""Pre-flight that prevents common failures, on the rig: a base image without a planned platform
refuses the build before any job starts (and `matui check` says the same), a host's free disk
below the configured floor refuses naming the host, and a registry a host cannot reach is an
error naming the host and the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.bases import amd64_only
from tests.helpers.cli import run_matui
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig, free_port

pytestmark = pytest.mark.rig

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE
FROM ${BASE}
RUN echo hello
"""


def jobs_on_hosts(rig: Rig, repo: str) -> list[Path]:
    """Job directories on the rig's builder hosts whose job.sh pushes to ``repo``."""
    runs = Path(f"~{rig.user}").expanduser() / ".matui" / "runs"
    return [
        script.parent
        for script in runs.glob("*/*/job.sh")
        if repo in script.read_text(errors="replace")
    ]


@pytest.mark.parametrize("index", [True, False], ids=["index", "single-manifest"])
def test_build_refuses_a_from_without_arm64_before_any_job_starts(
    rig: Rig, tmp_path: Path, index: bool
) -> None:
    base = amd64_only(rig, index=index)
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    config.write_text(config.read_text().replace(rig.base_image, base))
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 1, build.stderr
    doc = json.loads(build.stdout)
    assert doc["run"] is None and doc["jobs"] == []
    errors = [f for f in doc["flags"] if f["severity"] == "error"]
    assert [(f["kind"], f["subject"]) for f in errors] == [("base-image", "linux/arm64")]
    message = errors[0]["message"]
    assert message.startswith(f"Dockerfile:3 FROM ${{BASE}} → {base} "), message
    assert "linux/arm64" in message
    if index:
        assert "(index lists linux/amd64)" in message
    assert errors[0]["evidence"]["line"] == 3
    assert "not starting the build" in build.stderr and "linux/arm64" in build.stderr
    assert not (tmp_path / "state" / "matui" / "runs").exists()  # nothing recorded
    assert jobs_on_hosts(rig, repo) == []  # nothing launched on any host

    check = run_matui("check", "--config", config, "--json", timeout=120)
    assert check.returncode == 1, check.stderr
    flags = json.loads(check.stdout)["flags"]
    assert [(f["kind"], f["subject"], f["message"]) for f in flags if f["severity"] == "error"] == [
        ("base-image", "linux/arm64", message)
    ]
    human = run_matui("check", "--config", config, timeout=120)
    assert human.returncode == 1
    assert f"base-image  linux/arm64: Dockerfile:3 FROM ${{BASE}} → {base}" in human.stdout


def test_check_passes_the_rig_base_image_for_both_platforms(rig: Rig, tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, rig, DOCKERFILE)
    check = run_matui("check", "--config", config, "--json", timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["flags"] == []


def test_disk_floor_above_free_space_refuses_naming_the_host(rig: Rig, tmp_path: Path) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    text = config.read_text().replace(
        f"port = {rig.port_emu}\n", f'port = {rig.port_emu}\nmin_free_disk = "900TiB"\n'
    )
    config.write_text(text)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 1, build.stderr
    doc = json.loads(build.stdout)
    assert doc["run"] is None
    errors = [f for f in doc["flags"] if f["severity"] == "error"]
    assert [(f["kind"], f["subject"]) for f in errors] == [("disk-space", "emu-1")]
    assert "900.0 TiB" in errors[0]["message"] and "matui gc" in errors[0]["message"]
    assert jobs_on_hosts(rig, repo) == []
    check = run_matui("check", "--config", config, timeout=120)
    assert check.returncode == 1
    assert "disk-space  emu-1: " in check.stdout


def test_registry_no_host_can_reach_is_an_error_naming_host_and_registry(
    rig: Rig, tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    config, _ = make_project(tmp_path, rig, DOCKERFILE, repo=f"{nowhere}/team/app")
    check = run_matui("check", "--config", config, "--json", timeout=120)
    assert check.returncode == 1
    errors = [f for f in json.loads(check.stdout)["flags"] if f["severity"] == "error"]
    assert {(f["kind"], f["subject"]) for f in errors} == {
        ("push-access", "amd64-1"),
        ("push-access", "emu-1"),
    }
    for flag in errors:
        assert nowhere in flag["message"] and "cannot reach" in flag["message"]
