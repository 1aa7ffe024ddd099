"""matui.engine.records: typed run records, one reader/writer, atomic saves across processes."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from matui.engine.arch import Platform
from matui.engine.flags import BuiltImage, Flag, FlagKind, Severity
from matui.engine.probe import HostProbe
from matui.engine.records import (
    SCHEMA,
    JobState,
    PublishRecord,
    RunRecord,
    RunState,
    TagOutcome,
    TagResult,
    Verdict,
    VerdictKind,
    find_run,
    list_runs,
)
from tests.helpers.records import job_record


def _record(root: Path, **values: Any) -> RunRecord:
    return RunRecord.create(
        root,
        image="r.example/app",
        tags=["1.0", "latest"],
        platforms=["linux/amd64", "linux/arm64"],
        jobs=[job_record("amd64"), job_record("arm64")],
        **values,
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    flag = Flag(FlagKind.ARCH_MISMATCH, Severity.WARNING, "arm64", "runs under QEMU", {"a": 1})
    probe = HostProbe("amd64-1", "amd64", True, native_arch="amd64", emulation=("arm64",))
    record = _record(tmp_path, flags=[flag], hosts=[probe], config="/c.toml", context="/ctx")
    record.update_job("arm64", state="succeeded", digest="sha256:" + "a" * 64, notes=["n"])
    record.publishes.append(
        PublishRecord(
            12.5,
            "local",
            {"repository": "r.example/app"},
            [TagResult("1.0", "r.example/app:1.0", TagOutcome.VERIFIED, digest="sha256:x")],
            [flag],
        )
    )
    record.save()

    loaded = RunRecord.load(record.dir)
    assert loaded == record
    assert loaded.job("arm64").state is JobState.SUCCEEDED
    assert loaded.hosts[0].emulation == ("arm64",)
    assert json.loads((record.dir / "run.json").read_text())["schema"] == SCHEMA


def test_update_job_refuses_an_unknown_field(tmp_path: Path) -> None:
    record = _record(tmp_path)
    with pytest.raises(TypeError, match="no field 'colour'"):
        record.update_job("amd64", colour="red")


def test_a_schema_1_record_loads(tmp_path: Path) -> None:
    """Records written before the schema existed: untyped keys, `manifests`, booleans per tag."""
    run_dir = tmp_path / "runs" / "20260101-000000-abcdef"
    run_dir.mkdir(parents=True)
    old = {
        "run": "20260101-000000-abcdef",
        "created": 1.0,
        "image": "r.example/app",
        "tags": ["1.0"],
        "platforms": ["linux/amd64"],
        "jobs": [{**job_record("amd64").to_json(), "state": "succeeded", "bytes": 9, "extra": 1}],
        "state": "succeeded",
        "manifests": [
            {
                "plan": {},
                "via": "local",
                "flags": [],
                "results": [{"tag": "1.0", "ref": "r.example/app:1.0", "verified": True}],
            }
        ],
        "manifest": {"tag": "1.0", "verified": True},
    }
    (run_dir / "run.json").write_text(json.dumps(old))
    loaded = RunRecord.load(run_dir)
    assert loaded.state is RunState.SUCCEEDED
    assert loaded.job("amd64").bytes == 9
    assert loaded.tag_results()["1.0"].outcome is TagOutcome.VERIFIED
    assert loaded.published


def test_a_newer_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    record = _record(tmp_path)
    doc = json.loads((record.dir / "run.json").read_text())
    doc["schema"] = SCHEMA + 1
    (record.dir / "run.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="upgrade matui"):
        RunRecord.load(record.dir)
    assert list_runs(tmp_path) == []  # skipped, not fatal


def test_tag_results_take_each_tags_latest_attempt(tmp_path: Path) -> None:
    record = _record(tmp_path)
    first = [
        TagResult("1.0", "r:1.0", TagOutcome.VERIFIED),
        TagResult("latest", "r:latest", TagOutcome.REFUSED, error="denied"),
    ]
    record.publishes.append(PublishRecord(1.0, "local", {}, first))
    assert not record.published
    second = [
        TagResult("1.0", "r:1.0", TagOutcome.UNCHANGED),
        TagResult("latest", "r:latest", TagOutcome.VERIFIED),
    ]
    record.publishes.append(PublishRecord(2.0, "local", {}, second))
    assert record.published


def test_find_run_by_prefix(tmp_path: Path) -> None:
    a = _record(tmp_path)
    assert find_run(tmp_path, a.id[:-2]).id == a.id
    with pytest.raises(LookupError, match="no run 'nope'"):
        find_run(tmp_path, "nope")


def _save_many(run_dir: str, arch: str, rounds: int) -> None:
    record = RunRecord.load(Path(run_dir))
    for i in range(rounds):
        record.update_job(arch, lines=i, notes=[f"{arch} {i}" * 50])


def test_two_processes_saving_one_run_never_fail_or_corrupt(tmp_path: Path) -> None:
    record = _record(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    rounds = 300
    procs = [
        ctx.Process(target=_save_many, args=(str(record.dir), arch, rounds))
        for arch in ("amd64", "arm64")
    ]
    for proc in procs:
        proc.start()
    reads = 0
    while any(p.is_alive() for p in procs):
        # Every read while both write sees one whole document.
        RunRecord.load(record.dir)
        reads += 1
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    final = RunRecord.load(record.dir)
    # Both processes' changes survive: neither overwrote the other's job with a stale copy.
    assert [job.lines for job in final.jobs] == [rounds - 1, rounds - 1]
    assert reads > 0
    assert sorted(p.name for p in record.dir.iterdir()) == [".lock", "run.json"]  # no temporary


def test_built_images_are_the_succeeded_jobs_with_a_digest(tmp_path: Path) -> None:
    digest, before = "sha256:" + "1" * 64, "sha256:" + "7" * 64
    record = RunRecord.create(
        tmp_path,
        image="r.example/app",
        tags=["1.0"],
        platforms=["linux/amd64", "linux/arm64", "linux/arm/v7"],
        jobs=[
            job_record(
                "amd64",
                state=JobState.SUCCEEDED,
                digest=digest,
                arch_tag_before=before,
                arch_evidence=["exec format error"],
            ),
            job_record("arm64", state=JobState.FAILED),
            job_record("armv7", state=JobState.SUCCEEDED),  # no digest recorded
        ],
    )
    assert record.built_images() == [
        BuiltImage(
            Platform.parse("linux/amd64"),
            digest,
            "1.0-amd64",
            before=before,
            evidence=("exec format error",),
        )
    ]


def test_verdict_worst_first(tmp_path: Path) -> None:
    record = _record(tmp_path)
    assert record.verdict().kind == "running"
    record.update_job("amd64", state="succeeded", digest="sha256:" + "1" * 64)
    record.update_job("arm64", state="failed")
    record.update(state="failed")
    assert record.verdict() == Verdict(VerdictKind.FAILED, "arm64 failed")
    record.update_job("arm64", state="succeeded", digest="sha256:" + "2" * 64)
    record.update(state="succeeded")
    assert record.verdict().kind == "built" and record.verdict().can_publish
    error = Flag(FlagKind.TAG_OVERWRITE, Severity.ERROR, "1.0", "holds an index")
    record.update(flags=[error])
    verdict = record.verdict()
    assert verdict.kind == "blocked" and "tag-overwrite 1.0: holds an index" in verdict.reason
    assert not verdict.can_publish
    record.update(flags=[])
    record.add_publish(
        PublishRecord(
            1.0,
            "local",
            {},
            [
                TagResult("1.0", "r:1.0", TagOutcome.VERIFIED),
                TagResult("latest", "r:latest", TagOutcome.REFUSED),
            ],
        )
    )
    assert record.verdict() == Verdict(VerdictKind.PARTLY_PUBLISHED, "1.0 done; latest not")
    record.update_job("amd64", state="lost")
    assert record.verdict().kind == "lost"
