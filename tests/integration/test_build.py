"""The build engine end to end on the rig: real sshd hosts, real dockerd + buildx, real registry.

The rig has no arm64 machine: arm64 builds on an amd64 host that allows emulation (flagged).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from matui.engine.build import start_build
from matui.engine.build.run import LinesEvent
from matui.engine.config import load_config
from matui.engine.records import JobState, RunRecord
from matui.engine.registry import RegistryClient
from matui.engine.shell import RemoteScript
from matui.engine.ssh import SshPool
from tests.helpers.cli import run_matui
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig


def raw_manifest(ref: str) -> dict[str, Any]:
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"; for i in 1 2 3; do echo "line $i"; done
RUN echo built > /built
"""


def test_two_arch_build_then_index_push_verified(rig: Rig, tmp_path: Path) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 0, build.stderr[-3000:]
    doc = json.loads(build.stdout)
    jobs = {job["arch"]: job for job in doc["jobs"]}
    assert set(jobs) == {"amd64", "arm64"}
    assert jobs["amd64"]["host"] == "amd64-1"  # native first
    assert jobs["arm64"]["host"] == "emu-1"
    for arch, job in jobs.items():
        assert job["state"] == "succeeded"
        assert job["ref"] == f"{repo}:1.0-{arch}"
        # The per-arch tag in the registry is exactly the digest the build reported.
        out = subprocess.run(
            [
                "skopeo",
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                f"docker://{job['ref']}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == job["digest"]
    (flag,) = doc["flags"]
    assert (flag["kind"], flag["severity"], flag["subject"]) == (
        "arch-mismatch",
        "warning",
        "arm64",
    )
    # Each arch's log was streamed with its prefix, and the arm64 one ran emulated as aarch64.
    assert "[arm64] " in build.stderr and "arch is aarch64" in build.stderr
    assert "[amd64] " in build.stderr and "arch is x86_64" in build.stderr

    dry = run_matui("manifest", "--config", config, "--dry-run", "--json", state=tmp_path / "state")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["pushed"] is False
    assert (
        subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{repo}:1.0"],
            capture_output=True,
        ).returncode
        != 0
    )

    pushed = run_matui("manifest", "--config", config, "--yes", "--json", state=tmp_path / "state")
    assert pushed.returncode == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    assert result["pushed"] is True and result["verified"] is True
    assert result["platforms"] == ["linux/amd64", "linux/arm64"]
    index = raw_manifest(f"{repo}:1.0")
    entries = index["manifests"]
    assert isinstance(entries, list)
    served = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in entries
    }
    assert served == {
        "linux/amd64": jobs["amd64"]["digest"],
        "linux/arm64": jobs["arm64"]["digest"],
    }
    assert result["digest"].startswith("sha256:")

    runs = run_matui("runs", "--json", state=tmp_path / "state")
    (run,) = json.loads(runs.stdout)["runs"]
    assert run["run"] == doc["run"]
    assert [r["outcome"] for r in run["publishes"][-1]["results"]] == ["verified"]


def test_failing_arch_fails_alone_and_manifest_refuses(rig: Rig, tmp_path: Path) -> None:
    dockerfile = DOCKERFILE + 'RUN if [ "$(uname -m)" = aarch64 ]; then echo boom; exit 3; fi\n'
    config, _ = make_project(tmp_path, rig, dockerfile)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 1
    jobs = {job["arch"]: job for job in json.loads(build.stdout)["jobs"]}
    assert jobs["amd64"]["state"] == "succeeded" and jobs["amd64"]["digest"]
    arm = jobs["arm64"]
    assert arm["state"] == "failed"
    assert arm["exit_code"] == 1  # buildx's own exit code
    assert "RUN if" in arm["failing_step"]
    assert "exit code: 3" in arm["error"]  # the failing step's own exit code
    refused = run_matui("manifest", "--config", config, "--yes", state=tmp_path / "state")
    assert refused.returncode == 1
    assert "arm64 is failed" in refused.stderr


def test_invalid_utf8_and_long_lines_arrive_intact(rig: Rig, tmp_path: Path) -> None:
    long_line = b"L" * 300_000
    payload = b"before \xff\xfe\xc3 after\n" + long_line + b"\nend\n"
    dockerfile = "ARG BASE\nFROM ${BASE}\nCOPY payload /payload\nRUN cat /payload\n"
    config, _ = make_project(tmp_path, rig, dockerfile, files={"payload": payload})
    cfg = load_config(config)

    async def run() -> tuple[list[str], RunRecord, dict[str, object]]:
        lines: list[str] = []
        async with SshPool(cfg.hosts) as pool:
            prepared = await start_build(cfg, pool, state_root=tmp_path / "state")
            async for event in prepared.run.events():
                if isinstance(event, LinesEvent) and event.job == "amd64":
                    lines.extend(event.lines)
            status = await prepared.run.wait()
            host = cfg.host("amd64-1")
            remote_log = await pool.run(
                host, RemoteScript(f"cat .matui/runs/{prepared.run.id}/amd64/build.log")
            )
            return lines, prepared.run.record, {"status": status, "remote": remote_log.stdout}

    lines, record, extra = asyncio.run(run())
    status = extra["status"]
    assert isinstance(status, dict)
    assert status["amd64"].state is JobState.SUCCEEDED
    assert any("before \ufffd\ufffd\ufffd after" in line for line in lines)
    assert any(line.endswith(long_line.decode()) for line in lines)
    # The local record holds the host's log byte for byte.
    assert record.log_path("amd64").read_bytes() == extra["remote"]


def test_registry_reads_back_the_built_config_arch(rig: Rig, tmp_path: Path) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 0, build.stderr[-2000:]
    jobs = {job["arch"]: job for job in json.loads(build.stdout)["jobs"]}

    async def archs() -> dict[str, str]:
        from matui.engine.refs import parse_repository

        client = RegistryClient()
        found = {}
        for arch, job in jobs.items():
            facts = await client.image_config(parse_repository(repo), str(job["digest"]))
            found[arch] = facts.architecture
        return found

    assert asyncio.run(archs()) == {"amd64": "amd64", "arm64": "arm64"}


def test_index_is_created_on_a_builder_host_when_no_local_docker(rig: Rig, tmp_path: Path) -> None:
    """A bastion has no Docker: `imagetools create` then runs on a builder host over SSH."""
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 0, build.stderr[-2000:]
    jobs = {job["arch"]: job for job in json.loads(build.stdout)["jobs"]}
    no_docker = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PATH": str(tmp_path / "empty-bin"),
    }
    pushed = subprocess.run(
        [sys.executable, "-m", "matui", "manifest", "--config", str(config), "--yes", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=no_docker,
    )
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["verified"] is True
    served = {
        m["platform"]["architecture"]: m["digest"] for m in raw_manifest(f"{repo}:1.0")["manifests"]
    }
    assert served == {"amd64": jobs["amd64"]["digest"], "arm64": jobs["arm64"]["digest"]}
    runs = run_matui("runs", "--json", state=tmp_path / "state")
    (run,) = json.loads(runs.stdout)["runs"]
    assert run["publishes"][0]["via"] == "amd64-1"


def test_retry_one_arch_keeps_the_other_digest(rig: Rig, tmp_path: Path) -> None:
    dockerfile = (
        "ARG BASE\nFROM ${BASE}\nCOPY . /ctx\n"
        'RUN if [ "$(uname -m)" = aarch64 ] && [ -f /ctx/broken ]; then exit 4; fi\n'
    )
    config_path, _ = make_project(tmp_path, rig, dockerfile, files={"broken": b"x"})
    config = load_config(config_path)

    Outcomes = dict[str, tuple[JobState, str | None]]

    async def run() -> tuple[Outcomes, Outcomes]:
        async with SshPool(config.hosts) as pool:
            prepared = await start_build(config, pool, state_root=tmp_path / "state")
            build = prepared.run
            first = await build.wait()
            before = {k: (s.state, s.digest) for k, s in first.items()}
            (tmp_path / "ctx" / "broken").unlink()
            build.retry("arm64")
            after = await build.wait()
            return before, {k: (s.state, s.digest) for k, s in after.items()}

    before, after = asyncio.run(run())
    assert before["arm64"] == (JobState.FAILED, None)
    assert before["amd64"][0] is JobState.SUCCEEDED
    assert after["amd64"] == before["amd64"]  # untouched
    state, digest = after["arm64"]
    assert state is JobState.SUCCEEDED and digest


def imagetools(rig: Rig, *args: str) -> None:
    subprocess.run(
        ["docker", "buildx", "imagetools", "create", *args],
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_HOST": rig.docker_host},
    )


def test_build_refuses_when_a_per_arch_tag_holds_an_index(rig: Rig, tmp_path: Path) -> None:
    """The classic single-arch-over-list: the build does not start at all."""
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    imagetools(rig, "--tag", f"{repo}:1.0-arm64", rig.base_image)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 1
    doc = json.loads(build.stdout)
    assert doc["run"] is None and doc["jobs"] == []
    errors = [f for f in doc["flags"] if f["severity"] == "error"]
    assert [(f["kind"], f["subject"]) for f in errors] == [("tag-overwrite", "1.0-arm64")]
    assert "not starting the build" in build.stderr
    assert not (tmp_path / "state" / "matui" / "runs").exists()  # nothing ran, nothing recorded


def test_manifest_dry_run_diffs_against_what_the_tag_serves(rig: Rig, tmp_path: Path) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 0, build.stderr[-2000:]
    jobs = {job["arch"]: job for job in json.loads(build.stdout)["jobs"]}
    # The release tag already serves an older index: amd64 from the base image, arm64 as built.
    base = raw_manifest(rig.base_image)["manifests"]
    old_amd = next(m["digest"] for m in base if m["platform"]["architecture"] == "amd64")
    imagetools(rig, "--tag", f"{repo}:1.0", f"{rig.base_image}@{old_amd}",
               f"{repo}@{jobs['arm64']['digest']}")  # fmt: skip
    dry = run_matui("manifest", "--config", config, "--dry-run", "--json", state=tmp_path / "state")
    assert dry.returncode == 0, dry.stderr
    doc = json.loads(dry.stdout)
    diff = {c["platform"]: (c["change"], c["before"], c["after"]) for c in doc["diff"]["1.0"]}
    assert diff == {
        "linux/amd64": ("changed", old_amd, jobs["amd64"]["digest"]),
        "linux/arm64": ("same", jobs["arm64"]["digest"], jobs["arm64"]["digest"]),
    }
    assert doc["pushed"] is False
    assert "changed" in dry.stderr and "linux/amd64" in dry.stderr
