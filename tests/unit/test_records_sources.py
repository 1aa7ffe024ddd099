"""Run records keep the source each job was built from; mixed sources block the verdict until a
publish records an explicit override for exactly those sources."""

from __future__ import annotations

import json
import time
from pathlib import Path

from matui.engine.flags.model import FlagKind, Severity
from matui.engine.records import (
    Override,
    PublishRecord,
    RunRecord,
    RunState,
    VerdictKind,
)
from tests.helpers.records import job_record

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
OLD = {"Dockerfile": "sha256:01", "app.py": "sha256:02"}
NEW = {"Dockerfile": "sha256:03", "app.py": "sha256:02"}


def _record(root: Path) -> RunRecord:
    jobs = [
        job_record(
            arch,
        )
        for arch in ("amd64", "arm64")
    ]
    record = RunRecord.create(
        root,
        image="r.example/app",
        tags=["1.0"],
        platforms=["linux/amd64", "linux/arm64"],
        jobs=jobs,
    )
    for arch, digest in (("amd64", A), ("arm64", B)):
        record.update_job(arch, state="succeeded", digest=digest)
    record.update(state=RunState.SUCCEEDED)
    return record


def test_source_saved_beside_the_record(tmp_path: Path) -> None:
    record = _record(tmp_path)
    record.save_source("amd64", "sha256:s1", OLD, 100.0, context_files=2)
    loaded = RunRecord.load(record.dir)
    job = loaded.job("amd64")
    assert (job.source, job.source_at, job.context_files) == ("sha256:s1", 100.0, 2)
    assert "Dockerfile" not in (record.dir / "run.json").read_text()
    assert loaded.source_files("amd64") == OLD
    # a manifest that is not the recorded source's is not trusted
    record.update_job("amd64", source="sha256:other")
    assert RunRecord.load(record.dir).source_files("amd64") is None


def test_same_source_publishable(tmp_path: Path) -> None:
    record = _record(tmp_path)
    record.save_source("amd64", "sha256:s1", OLD, 100.0)
    record.save_source("arm64", "sha256:s1", OLD, 500.0)
    assert record.source_flags() == []
    assert record.verdict().kind is VerdictKind.BUILT


def test_mixed_sources_block_until_overridden_for_exactly_them(tmp_path: Path) -> None:
    record = _record(tmp_path)
    t0 = time.mktime((2026, 12, 1, 12, 1, 0, 0, 0, -1))
    record.save_source("amd64", "sha256:s1", OLD, t0)
    record.save_source("arm64", "sha256:s2", NEW, t0 + 360)
    record = RunRecord.load(record.dir)
    [flag] = record.source_flags()
    assert flag.kind is FlagKind.SOURCE_MISMATCH and flag.severity is Severity.ERROR
    assert "Dockerfile (changed) differs between amd64 (built 12:01:00) and arm64" in flag.message
    verdict = record.verdict()
    assert verdict.kind is VerdictKind.BLOCKED and "Dockerfile" in verdict.reason

    override = Override(
        "allow-mixed-sources", t0 + 600, "op", record.current_sources(), [flag.message]
    )
    record.add_publish(PublishRecord(t0 + 600, "local", {}, [], overrides=[override]))
    record = RunRecord.load(record.dir)
    assert record.overrides() == [override]
    assert record.mixed_sources_override() == override
    [allowed] = record.source_flags()
    assert allowed.severity is Severity.WARNING and allowed.message.startswith("overridden")
    assert record.verdict().kind is VerdictKind.BUILT
    saved = json.loads((record.dir / "run.json").read_text())
    assert saved["publishes"][0]["overrides"][0]["sources"] == {
        "amd64": "sha256:s1",
        "arm64": "sha256:s2",
    }

    # arm64 rebuilt from yet another source: the override does not cover it
    record.save_source("arm64", "sha256:s3", NEW | {"new.txt": "sha256:04"}, t0 + 900)
    assert record.mixed_sources_override() is None
    assert record.verdict().kind is VerdictKind.BLOCKED


def test_old_records_without_sources_load_and_pass(tmp_path: Path) -> None:
    record = _record(tmp_path)
    data = json.loads((record.dir / "run.json").read_text())
    for job in data["jobs"]:
        del job["source"], job["source_at"]
    for attempt in data["publishes"]:
        del attempt["overrides"]
    (record.dir / "run.json").write_text(json.dumps(data))
    loaded = RunRecord.load(record.dir)
    assert loaded.job("amd64").source is None
    assert loaded.source_flags() == []
    assert loaded.verdict().kind is VerdictKind.BUILT
