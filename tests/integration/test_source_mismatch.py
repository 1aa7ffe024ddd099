"""One source per release, on the rig: arm64 fails, the Dockerfile is edited, arm64 is retried
in the same run — amd64 is from the old Dockerfile, arm64 from the new one. The publish refuses,
naming the Dockerfile; the explicit override publishes and is recorded in the run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from matui.engine.build import start_build
from matui.engine.config import load_config
from matui.engine.records import JobState, RunRecord, find_run
from matui.engine.ssh import SshPool
from tests.helpers.cli import run_matui
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

FAILING_ON_ARM64 = 'RUN if [ "$(uname -m)" = aarch64 ]; then echo "boom on arm64"; exit 4; fi\n'
DOCKERFILE = "ARG BASE\nFROM ${BASE}\nCOPY app.txt /app.txt\n" + FAILING_ON_ARM64


def test_retry_after_a_dockerfile_edit_refuses_to_publish_until_overridden(
    rig: Rig, tmp_path: Path
) -> None:
    config_path, repo = make_project(tmp_path, rig, DOCKERFILE, files={"app.txt": b"v1\n"})
    config = load_config(config_path)
    state_root = tmp_path / "state" / "matui"  # where the CLI (XDG_STATE_HOME) looks
    dockerfile = tmp_path / "ctx" / "Dockerfile"

    async def build_fail_edit_retry() -> str:
        async with SshPool(config.hosts) as pool:
            prepared = await start_build(config, pool, state_root=state_root)
            build = prepared.run
            first = await build.wait()
            assert first["arm64"].state is JobState.FAILED
            assert first["amd64"].state is JobState.SUCCEEDED
            # The fix: an edit of the Dockerfile only (app.txt stays as it was).
            dockerfile.write_text(
                dockerfile.read_text().replace(FAILING_ON_ARM64, "RUN echo fixed\n")
            )
            build.retry("arm64")
            after = await build.wait()
            assert after["arm64"].state is JobState.SUCCEEDED, after["arm64"].error
            return build.id

    run_id = asyncio.run(build_fail_edit_retry())
    record = RunRecord.load(state_root / "runs" / run_id)
    amd, arm = record.job("amd64"), record.job("arm64")
    assert amd.source and arm.source and amd.source != arm.source
    assert amd.source_at is not None and arm.source_at is not None
    assert amd.source_at < arm.source_at
    assert (record.dir / "arm64.source.json").is_file()
    # The run says blocked, naming the file.
    verdict = record.verdict()
    assert verdict.kind == "blocked" and "Dockerfile (changed)" in verdict.reason

    dry = run_matui(
        "manifest", "--config", config_path, "--dry-run", "--json", state=tmp_path / "state"
    )
    assert dry.returncode == 1, dry.stderr
    doc = json.loads(dry.stdout)
    assert doc["blocked"] and "source-mismatch" in doc["blocked"]
    [flag] = [f for f in doc["flags"] if f["kind"] == "source-mismatch"]
    assert flag["severity"] == "error" and flag["subject"] == "arm64"
    assert flag["evidence"]["changed"] == ["Dockerfile"]
    assert flag["evidence"]["added"] == [] and flag["evidence"]["removed"] == []
    assert "Dockerfile (changed) differs between amd64 (built " in flag["message"]
    assert "Dockerfile (changed)" in dry.stderr and "--allow-mixed-sources" in dry.stderr

    # A real push without the override refuses too, and nothing is recorded or pushed.
    refused = run_matui("manifest", "--config", config_path, "--yes", state=tmp_path / "state")
    assert refused.returncode == 1 and "source-mismatch" in refused.stderr
    assert RunRecord.load(record.dir).publishes == []

    allowed_dry = run_matui(
        "manifest",
        "--config",
        config_path,
        "--dry-run",
        "--allow-mixed-sources",
        state=tmp_path / "state",
    )
    assert allowed_dry.returncode == 0, allowed_dry.stderr
    assert "overridden with --allow-mixed-sources" in allowed_dry.stdout

    pushed = run_matui(
        "manifest",
        "--config",
        config_path,
        "--yes",
        "--allow-mixed-sources",
        "--json",
        state=tmp_path / "state",
    )
    assert pushed.returncode == 0, pushed.stderr
    out = json.loads(pushed.stdout)
    assert out["verified"] is True
    assert "arches from different sources, allowed: --allow-mixed-sources by" in out["line"]

    record = find_run(state_root, run_id)
    [attempt] = record.publishes
    [override] = attempt.overrides
    assert override.name == "allow-mixed-sources"
    assert override.sources == {"amd64": amd.source, "arm64": arm.source}
    assert override.user and "Dockerfile (changed)" in override.flags[0]
    assert record.verdict().kind == "published"

    runs = run_matui("runs", state=tmp_path / "state")
    assert runs.returncode == 0
    [line] = [line for line in runs.stdout.splitlines() if line.startswith(run_id)]
    assert "published (mixed sources allowed)" in line
    listed = json.loads(run_matui("runs", "--json", state=tmp_path / "state").stdout)["runs"][0]
    assert listed["publishes"][0]["overrides"][0]["name"] == "allow-mixed-sources"
    assert repo  # the index itself is verified by the publish (read back from the registry)
