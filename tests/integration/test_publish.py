"""`matui manifest` on the rig when publishing goes wrong: the registry unreachable, a login
missing, a per-arch image deleted, buildx failing, one of three tags refused, a tag moved
under the operator's feet. Each ends in one line naming what failed and what moved, exit 1, the
tags untouched, and a retry that works.

Every run is staged (:func:`tests.helpers.publishing.built_run`: the rig's base image per arch
in a repository of the test's own, and the record a build leaves), and every registry call goes
through a :class:`~tests.helpers.registry_proxy.RegistryProxy` of the test's own in front of the
rig's registry, which the test tells to misbehave. The real buildx makes every index.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matui.engine.config import load_config
from matui.engine.publish import PublishReport, preview_publish, publish
from matui.engine.records import RunRecord, TagOutcome
from matui.engine.registry import RegistryClient
from tests.helpers.cli import run_matui
from tests.helpers.publishing import BuiltRun, built_run, copy_child, delete_manifest
from tests.helpers.registry_proxy import RegistryProxy
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

TAGS = ("1.0", "1.0.1", "latest")


@pytest.fixture
def proxy(rig: Rig) -> Iterator[RegistryProxy]:
    with RegistryProxy(rig.registry) as server:
        yield server


def manifest(
    tmp_path: Path, run: BuiltRun, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_matui(
        "manifest", "--config", run.config, *args, env=env, state=tmp_path / "state", timeout=300
    )


def failure_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed `matui manifest` says on stderr: exit 1, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    said = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("matui: ") and not line.startswith("matui: warning")
    ]
    assert len(said) == 1, result.stderr
    return said[0]


def outcomes(doc: dict[str, Any]) -> dict[str, str]:
    return {r["tag"]: r["outcome"] for r in doc["results"]}


def last_publish(run: BuiltRun) -> dict[str, Any]:
    data = json.loads((run.record.dir / "run.json").read_text())
    return dict(data["publishes"][-1])


def runs_row(tmp_path: Path, run: BuiltRun) -> str:
    listed = run_matui("runs", state=tmp_path / "state", timeout=300)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(run.record.id)]
    return row


def test_a_registry_refusing_one_of_three_tags_gets_a_per_tag_report_then_a_retry_completes(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address, tags=TAGS)
    with proxy.misbehaving(refuse_put={(run.path, "latest")}):
        first = manifest(tmp_path, run, "--yes", "--json")
    line = failure_line(first)
    doc = json.loads(first.stdout)
    assert outcomes(doc) == {"1.0": "verified", "1.0.1": "verified", "latest": "refused"}
    results = {r["tag"]: r for r in doc["results"]}
    index = results["1.0"]["digest"]
    assert index.startswith("sha256:") and results["1.0.1"]["digest"] == index
    # The registry's answer, in the report, the output and the record.
    refusal = results["latest"]["error"]
    assert f"/v2/{run.path}/manifests/latest: 403 Forbidden" in refusal
    assert "latest refused" in line and "403 Forbidden" in line and "moved: 1.0, 1.0.1" in line
    assert doc["pushed"] is True and doc["verified"] is False and doc["error"] == line[7:]
    assert run.served("1.0") == (index, run.digests)
    assert run.served("1.0.1") == (index, run.digests)
    assert run.served("latest") is None
    recorded = last_publish(run)
    assert {r["tag"]: r["outcome"] for r in recorded["results"]} == outcomes(doc)
    assert "403 Forbidden" in recorded["error"]
    assert "partly: 2/3 tags" in runs_row(tmp_path, run)

    # The refusal lifted: the second publish pushes latest only and leaves the others alone.
    second = manifest(tmp_path, run, "--yes", "--json")
    assert second.returncode == 0, second.stderr
    doc = json.loads(second.stdout)
    assert outcomes(doc) == {"1.0": "unchanged", "1.0.1": "unchanged", "latest": "verified"}
    assert {r["digest"] for r in doc["results"]} == {index}
    assert doc["verified"] is True and doc["moved"] == ["latest"]
    assert "already serves this index: it will not be pushed again" in second.stderr
    for tag in TAGS:
        assert run.served(tag) == (index, run.digests)
    assert runs_row(tmp_path, run).endswith("published")

    # A third time: nothing moves, and it says so.
    third = manifest(tmp_path, run, "--yes", "--json")
    assert third.returncode == 0, third.stderr
    doc = json.loads(third.stdout)
    assert outcomes(doc) == dict.fromkeys(TAGS, "unchanged")
    assert doc["pushed"] is False and doc["no_op"] is True
    assert "already published:" in third.stderr and "already serve this index" in third.stderr
    assert "published and verified" not in third.stderr


def test_registry_unreachable_says_which_in_one_line_then_a_retry_works(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address)
    port = int(proxy.address.rpartition(":")[2])
    proxy.stop()  # the registry at run.repo is down: its port refuses connections
    for mode in ("--dry-run", "--yes"):
        result = manifest(tmp_path, run, mode, "--json")
        line = failure_line(result)
        assert f"cannot reach {proxy.address}" in line and "Connection refused" in line, line
        assert line.endswith("nothing was pushed")
        assert json.loads(result.stdout)["error"] == line[len("matui: ") :]
    assert run.served("1.0") is None
    assert run.record.dir.joinpath("run.json").read_text().count('"results"') == 0

    with RegistryProxy(rig.registry, port=port):  # back up at the same address
        retry = manifest(tmp_path, run, "--yes", "--json")
    assert retry.returncode == 0, retry.stderr
    assert outcomes(json.loads(retry.stdout)) == {"1.0": "verified"}
    assert run.served("1.0") is not None


def test_registry_dropping_connections_says_so_in_one_line(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address)
    with proxy.misbehaving(drop=True):
        for mode in ("--dry-run", "--yes"):
            line = failure_line(manifest(tmp_path, run, mode))
            assert f"cannot reach {proxy.address}" in line and "nothing was pushed" in line
    assert run.served("1.0") is None


def test_registry_asking_for_a_login_names_it_and_docker_login(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address)
    with proxy.misbehaving(require_login=True):
        for mode in ("--dry-run", "--yes"):
            result = manifest(tmp_path, run, mode, "--json")
            line = failure_line(result)
            assert f"{proxy.address} needs a login" in line, line
            assert f"`docker login {proxy.address}`" in line and "nothing was pushed" in line
            assert json.loads(result.stdout)["pushed"] is False
    assert run.served("1.0") is None
    retry = manifest(tmp_path, run, "--yes")
    assert retry.returncode == 0, retry.stderr


def test_a_per_arch_image_deleted_since_the_build_blocks_publishing_as_a_check(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address)
    arm64 = run.digests["linux/arm64"]
    delete_manifest(rig.registry, run.path, arm64)
    for mode in ("--dry-run", "--yes"):
        result = manifest(tmp_path, run, mode, "--json")
        line = failure_line(result)
        assert "open missing-image error on arm64" in line, line
        assert f"the linux/arm64 image {arm64[:19]} is gone from {run.repo}" in line
        assert "rebuild arm64" in line and "nothing was pushed" in line
        flags = json.loads(result.stdout)["flags"]
        (missing,) = [f for f in flags if f["kind"] == "missing-image"]
        assert (missing["severity"], missing["subject"]) == ("error", "arm64")
        assert missing["evidence"]["missing"] == arm64
        assert "error missing-image arm64" in result.stderr  # listed with the open flags
    assert run.served("1.0") is None

    copy_child(rig, arm64, f"{run.direct}:1.0-arm64")  # rebuilt: the same image is back
    retry = manifest(tmp_path, run, "--yes")
    assert retry.returncode == 0, retry.stderr
    assert run.served("1.0") is not None


def test_failing_imagetools_is_one_line_per_tag_and_moves_nothing(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    """buildx's push of the index dies (the registry drops the connection on the PUT): a
    DockerException from python-on-whales, which ends as the tag's refusal, one line."""
    run = built_run(tmp_path, rig, proxy.address, tags=("1.0", "latest"))
    with proxy.misbehaving(drop_manifest_puts=True):
        result = manifest(tmp_path, run, "--yes", "--json")
    line = failure_line(result)
    assert line.startswith("matui: 1.0 refused: imagetools create here failed (exit 1): ")
    assert f"/v2/{run.path}/manifests/1.0" in line and "nothing was pushed" in line
    assert "latest refused: imagetools create here failed (exit 1)" in line
    assert outcomes(json.loads(result.stdout)) == {"1.0": "refused", "latest": "refused"}
    assert run.served("1.0") is None and run.served("latest") is None
    assert last_publish(run)["error"] == line[len("matui: ") :]

    retry = manifest(tmp_path, run, "--yes", "--json")
    assert retry.returncode == 0, retry.stderr
    assert outcomes(json.loads(retry.stdout)) == {"1.0": "verified", "latest": "verified"}


def test_on_a_builder_host_a_refused_tag_is_reported_per_tag_too(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    """No docker here: the index is made on a builder host over SSH, tag by tag."""
    run = built_run(tmp_path, rig, proxy.address, tags=("1.0", "latest"))
    no_docker = {"PATH": str(tmp_path / "empty-bin")}
    with proxy.misbehaving(refuse_put={(run.path, "latest")}):
        result = manifest(tmp_path, run, "--yes", "--json", env=no_docker)
    line = failure_line(result)
    assert "latest refused: imagetools create on amd64-1 failed (exit 1): " in line, line
    assert "403 Forbidden" in line and "moved: 1.0" in line
    doc = json.loads(result.stdout)
    assert outcomes(doc) == {"1.0": "verified", "latest": "refused"}
    assert doc["via"] == "amd64-1" and last_publish(run)["via"] == "amd64-1"
    retry = manifest(tmp_path, run, "--yes", "--json", env=no_docker)
    assert retry.returncode == 0, retry.stderr
    assert outcomes(json.loads(retry.stdout)) == {"1.0": "unchanged", "latest": "verified"}


def test_a_tag_that_moves_after_the_preview_refuses_the_publish(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    """The engine pair directly: the operator confirmed a preview, then someone else pushed
    the tag. Nothing is pushed, the other push stays, and the record says why."""
    run = built_run(tmp_path, rig, proxy.address, tags=("1.0", "latest"))
    config = load_config(run.config)
    registry = RegistryClient()

    async def go() -> PublishReport:
        preview = await preview_publish(run.record, registry=registry, config=config)
        assert preview.blocked is None and preview.to_push == ["1.0", "latest"]
        # Someone else: the amd64 image alone under 1.0.
        copy_child(rig, run.digests["linux/amd64"], f"{run.direct}:1.0")
        report = await publish(preview, registry=registry, config=config, pool=None)
        return report

    report = asyncio.run(go())
    assert not report.ok and report.moved == []
    assert [r.outcome for r in report.results] == [TagOutcome.NOT_ATTEMPTED] * 2
    assert report.error is not None
    assert report.error.startswith("not publishing: open tag-overwrite error on 1.0: ")
    assert "moved since it was confirmed" in report.error
    assert report.line().endswith("nothing was pushed")
    other = run.served("1.0")
    assert other is not None and other[0] == run.digests["linux/amd64"]
    assert run.served("latest") is None
    saved = RunRecord.load(run.record.dir).publishes[-1]
    assert saved.error == report.line()
    assert [r.outcome for r in saved.results] == [TagOutcome.NOT_ATTEMPTED] * 2
