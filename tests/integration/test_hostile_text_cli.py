"""Host text with terminal escape sequences reaches the CLI's output inert: probe answers
(`matui check`), a failing context upload's stderr (the job's state detail and error), build log
lines, a failing step's name and error, and a flag built from log evidence (`matui build`).

The hosts are real sshd servers on the rig whose sessions find fake tools first on their PATH
(:mod:`tests.helpers.hostile`); the builds are real buildx builds whose Dockerfile prints the
sequences raw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.hostile import (
    HOSTILE,
    HostileHost,
    host_block,
    hostile_hosts,
    unsafe,
)
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

HOSTILE_DOCKERFILE = f"""\
ARG BASE
FROM ${{BASE}}
RUN printf '%s\\n' 'log {HOSTILE}' 'exec format error {HOSTILE}'
RUN if [ "$(uname -m)" = aarch64 ]; then echo 'fail {HOSTILE}'; exit 3; fi
"""
"""amd64 builds and its log shows arch-mismatch evidence (a flag); arm64 fails at a step whose
name and error carry the sequences."""


def inert(output: bytes) -> str:
    text = output.decode("utf-8", "replace")
    assert unsafe(text) == [], text
    return text


@pytest.fixture
def hosts(rig: Rig, tmp_path: Path) -> Iterator[dict[str, HostileHost]]:
    with hostile_hosts(rig, tmp_path) as made:
        yield made


def test_check_prints_probe_answers_inert(
    rig: Rig, tmp_path: Path, hosts: dict[str, HostileHost]
) -> None:
    config = tmp_path / "matui.toml"
    config.write_text(
        host_block("broken", rig, hosts["broken"].sshd)
        + host_block("liar", rig, hosts["liar"].sshd)
    )
    check = run_matui("check", "--config", config, state=tmp_path / "state", text=False)
    out = inert(check.stdout + check.stderr)
    assert check.returncode == 1
    # The host text got through, made inert: the words around the sequences are there.
    assert "Cannot connect: clip clear csi8" in out  # the broken engine's stderr
    assert "20.10" in out and "0.13.1" in out  # the liar's versions
    doc = json.loads(
        run_matui(
            "check", "--config", config, "--json", state=tmp_path / "state", text=False
        ).stdout
    )
    for probe in doc["hosts"]:
        for value in (probe["error"], probe["uname"], probe["docker_version"]):
            assert unsafe(value or "") == [], probe
        assert unsafe(probe["buildx_version"] or "") == [], probe
        assert all(unsafe(p) == [] for p in probe["problems"]), probe


def test_build_prints_a_failed_upload_inert(
    rig: Rig, tmp_path: Path, hosts: dict[str, HostileHost]
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    config = tmp_path / "matui.toml"
    config.write_text(
        host_block("upload", rig, hosts["upload"].sshd)
        + f"""
[[images]]
name = "{rig.registry}/hostile/upload"
tags = ["1.0"]
context = "ctx"
platforms = ["linux/amd64"]
build_args = {{ BASE = "{rig.base_image}" }}
"""
    )
    build = run_matui("build", "--config", config, state=tmp_path / "state", text=False)
    out = inert(build.stdout + build.stderr)
    assert build.returncode == 1
    assert "context upload to upload failed: tar: clip clear csi8" in out, out
    doc = json.loads(
        run_matui(
            "build", "--config", config, "--json", state=tmp_path / "state", text=False
        ).stdout
    )
    (job,) = doc["jobs"]
    assert job["state"] == "failed" and "tar: clip" in job["error"]
    assert unsafe(job["error"]) == []


def test_build_prints_log_lines_failing_steps_and_flags_inert(rig: Rig, tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, rig, HOSTILE_DOCKERFILE)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state", text=False)
    log = inert(build.stderr)
    assert build.returncode == 1
    assert "log clip clear csi8 dcs" in log  # a log line, its sequences gone
    doc = json.loads(build.stdout)
    jobs = {job["arch"]: job for job in doc["jobs"]}
    assert jobs["amd64"]["state"] == "succeeded"
    assert jobs["arm64"]["state"] == "failed"
    assert "fail clip" in (jobs["arm64"]["failing_step"] or "") + (jobs["arm64"]["error"] or "")
    for job in jobs.values():
        for value in (job["failing_step"], job["error"], *job["notes"]):
            assert unsafe(value or "") == [], job
    evidence = [f for f in doc["flags"] if f["kind"] == "arch-mismatch" and f["subject"] == "amd64"]
    assert evidence and "exec format error clip" in evidence[0]["message"], doc["flags"]
    assert all(unsafe(f["message"]) == [] for f in doc["flags"])
