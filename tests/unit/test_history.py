"""matui.engine.history: run rows, per-arch trends, sparklines, the inputs a job records and
"what changed since the last green run", on synthetic run records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from matui.engine.history import (
    SPARK,
    SPARK_ASCII,
    arg_hash,
    base_images,
    changes_since_green,
    history,
    job_inputs,
    last_green,
    sparkline,
)
from matui.engine.probe import HostProbe
from matui.engine.records import (
    JobRecord,
    JobState,
    PublishRecord,
    RunRecord,
    RunState,
    TagOutcome,
    TagResult,
    list_runs,
)
from tests.helpers.cli import run_matui
from tests.helpers.records import job_record

DATA = Path(__file__).resolve().parents[1] / "data" / "failures"
BUSYBOX = "127.0.0.1:5000/matui/busybox:1.35"
BUSYBOX_DIGEST = "sha256:21b2a2e621ec792c8f7c91568db6b4f73e65a4fb67b66bc42aa2e2343a15b5e5"
SECRET = "hunter2-very-secret-value"


def _job(arch: str, state: str = "succeeded", **values: Any) -> JobRecord:
    return job_record(
        arch,
        state=JobState(state),
        digest=values.pop("digest", "sha256:" + "a" * 64 if state == "succeeded" else None),
        **values,
    )


def _inputs(dockerfile: str = "d1", token: str = SECRET, base: str = "b" * 64) -> dict[str, Any]:
    return {
        "base_images": {BUSYBOX: "sha256:" + base},
        "build_args": {"TOKEN": arg_hash(token), "VERSION": arg_hash("1.0")},
        "dockerfile": "Dockerfile",
        "dockerfile_sha256": "sha256:" + dockerfile * 32,
        "source": "sha256:src-" + dockerfile,
    }


def _run(
    root: Path,
    run_id: str,
    created: float,
    jobs: list[JobRecord],
    image: str = "r.example/app",
    **values: Any,
) -> RunRecord:
    values.setdefault("state", RunState.SUCCEEDED)
    return RunRecord.create(
        root,
        image=image,
        tags=["1.0"],
        platforms=[j.platform for j in jobs],
        jobs=jobs,
        run_id=run_id,
        created=created,
        finished=created + 60,
        started_by="ops@bastion",
        **values,
    )


def test_history_rows_newest_first_with_verdict_failing_step_and_publisher(
    tmp_path: Path,
) -> None:
    _run(tmp_path, "r1", 100.0, [_job("amd64", seconds=10.0), _job("arm64", seconds=30.0)])
    green = _run(tmp_path, "r2", 200.0, [_job("amd64", seconds=12.0), _job("arm64", seconds=33.0)])
    green.add_publish(
        PublishRecord(
            250.0,
            "local",
            {},
            [TagResult("1.0", "r.example/app:1.0", TagOutcome.VERIFIED, digest="sha256:i")],
            by="rel@laptop",
        )
    )
    _run(
        tmp_path,
        "r3",
        300.0,
        [
            _job("amd64", seconds=11.0),
            _job("arm64", "failed", seconds=5.0, failing_step="#6 [3/3] RUN make"),
        ],
        state=RunState.FAILED,
    )
    _run(tmp_path, "other", 250.0, [_job("amd64", seconds=99.0)], image="r.example/other")

    rows = history(list_runs(tmp_path), image="r.example/app")
    assert [r.run for r in rows] == ["r3", "r2", "r1"]
    newest = rows[0]
    assert newest.verdict.kind == "failed"
    assert newest.failed_text() == "arm64@#6 [3/3] RUN make"
    assert newest.who == "ops@bastion"
    assert newest.trend == {"amd64": (10.0, 12.0, 11.0), "arm64": (30.0, 33.0, None)}
    published = rows[1].published
    assert [(p.tag, p.by, p.digest) for p in published] == [("1.0", "rel@laptop", "sha256:i")]
    assert rows[1].verdict.kind == "published"
    # every image, and a limit that still reaches back for the trend
    everything = history(list_runs(tmp_path), limit=2)
    assert [r.run for r in everything] == ["r3", "other"]
    assert everything[0].trend["amd64"] == (10.0, 12.0, 11.0)
    doc = json.loads(json.dumps(newest.to_json()))
    assert doc["verdict"] == {"kind": "failed", "reason": "arm64 failed"}
    assert doc["arches"]["arm64"]["failing_step"] == "#6 [3/3] RUN make"
    assert doc["arches"]["amd64"]["seconds"] == 11.0


def test_trend_spans_only_the_last_runs(tmp_path: Path) -> None:
    for i in range(12):
        _run(tmp_path, f"r{i:02d}", float(i), [_job("amd64", seconds=float(i))])
    rows = history(list_runs(tmp_path), trend_runs=4)
    assert rows[0].trend["amd64"] == (8.0, 9.0, 10.0, 11.0)
    assert rows[-1].trend["amd64"] == (0.0,)


def test_sparkline_scales_between_low_and_high_with_gaps_and_ascii() -> None:
    assert sparkline([1.0, 8.0]) == SPARK[0] + SPARK[-1]
    assert sparkline([1.0, None, 8.0], ascii_only=True) == SPARK_ASCII[0] + " " + SPARK_ASCII[-1]
    assert sparkline([5.0, 5.0]) == SPARK[3] * 2
    assert sparkline([None, None]) == "  "
    assert sparkline([]) == ""
    assert all(c in SPARK for c in sparkline([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]))
    assert sparkline([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]).isascii() is False
    assert sparkline([3.0, 1.0, 4.0], ascii_only=True).isascii()


def test_base_images_from_recorded_buildx_logs(tmp_path: Path) -> None:
    assert base_images(DATA / "exit3.log") == {BUSYBOX: BUSYBOX_DIGEST}
    # metadata loaded, the build failed before the FROM step: the ref without a digest
    assert base_images(DATA / "no_platform.log") == {BUSYBOX: None}
    assert base_images(tmp_path / "missing.log") == {}


def test_base_images_multi_stage_pull_and_dockerfile_echo(tmp_path: Path) -> None:
    alpine = "docker.io/library/alpine:3.19"
    digest = "sha256:" + "c" * 64
    log = tmp_path / "job.log"
    log.write_bytes(
        b"#3 [internal] load metadata for docker.io/library/alpine:3.19\n"
        b"#4 [linux/arm64 internal] load metadata for " + BUSYBOX.encode() + b"\n"
        b"#5 [build 1/2] FROM " + alpine.encode() + b"@" + digest.encode() + b"\n"
        b"#5 resolve "
        + alpine.encode()
        + b"@"
        + digest.encode()
        + b" 0.0s done\n"
        + b"#9 0.1 x\n" * 300_000
        # a step's output and the framed Dockerfile echo name images too: not resolved ones
        + b"#9 0.2 FROM evil@sha256:"
        + b"d" * 64
        + b"\n"
        b"   1 | FROM " + BUSYBOX.encode() + b"@sha256:" + b"e" * 64 + b"\n"
        b"\x1b]52;c;aGk=\x07#7 [x] FROM evil2@sha256:" + b"f" * 64 + b"\n"
    )
    assert base_images(log) == {alpine: digest, BUSYBOX: None}


def test_job_inputs_hash_build_args_never_keep_the_value(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_bytes((DATA / "exit3.log").read_bytes())
    inputs = job_inputs(
        log=log,
        build_args={"TOKEN": SECRET, "VERSION": "1.0"},
        dockerfile="./Dockerfile",
        source="sha256:src",
        source_files={"Dockerfile": "sha256:" + "9" * 64, "app.py": "sha256:" + "8" * 64 + " +x"},
    )
    assert inputs == {
        "base_images": {BUSYBOX: BUSYBOX_DIGEST},
        "build_args": {"TOKEN": arg_hash(SECRET), "VERSION": arg_hash("1.0")},
        "dockerfile": "Dockerfile",
        "dockerfile_sha256": "sha256:" + "9" * 64,
        "source": "sha256:src",
    }
    assert SECRET not in json.dumps(inputs)
    assert arg_hash(SECRET) != arg_hash(SECRET + "x") and len(arg_hash(SECRET)) == 19


def test_changes_since_green_side_by_side_with_hashes_only(tmp_path: Path) -> None:
    probe_old = HostProbe("arm64-1", "arm64", True, docker_version="20.10", buildx_version="0.13.1")
    probe_new = HostProbe("arm64-2", "arm64", True, docker_version="24.0", buildx_version="0.13.1")
    _run(tmp_path, "g0", 50.0, [_job("arm64", inputs=_inputs("d0"))], hosts=[probe_old])
    _run(tmp_path, "g1", 100.0, [_job("arm64", inputs=_inputs())], hosts=[probe_old])
    _run(tmp_path, "f1", 150.0, [_job("arm64", "failed", inputs=_inputs("d9"))])
    now = _run(
        tmp_path,
        "now",
        200.0,
        [_job("arm64", "failed", host="arm64-2", inputs=_inputs("d2", token=SECRET + "2"))],
        hosts=[probe_new],
    )
    runs = list_runs(tmp_path)
    assert last_green(now, "arm64", runs) is not None
    changes = changes_since_green(now, "arm64", runs)
    assert changes.green_run == "g1"
    by = {c.what: c for c in changes.rows}
    assert by["host"].green == "arm64-1" and by["host"].now == "arm64-2"
    assert by["docker version"].changed and not by["buildx version"].changed
    assert by["Dockerfile sha256"].changed
    assert by["build arg TOKEN"].changed and not by["build arg VERSION"].changed
    assert by["build arg TOKEN"].now == arg_hash(SECRET + "2")
    assert not by[f"base image {BUSYBOX}"].changed
    assert by["source"].changed
    assert changes.message() == "arm64: 5 changes since green run g1"
    text = json.dumps(changes.to_json())
    assert SECRET not in text


def test_changes_without_an_earlier_green_run_or_arch(tmp_path: Path) -> None:
    later_green = _run(tmp_path, "late", 900.0, [_job("arm64")])
    first = _run(tmp_path, "first", 100.0, [_job("arm64", "failed"), _job("amd64")])
    runs = list_runs(tmp_path)
    changes = changes_since_green(first, "arm64", runs)
    assert changes.green_run is None and changes.rows == ()
    assert changes.message() == "no earlier green run of arm64"
    assert changes.to_json()["green_run"] is None
    with pytest.raises(LookupError, match="no arch 'riscv64'"):
        changes_since_green(first, "riscv64", runs)
    # the green run itself compares with none before it; inputs unknown on both sides: None
    assert changes_since_green(later_green, "arm64", runs).green_run is None


def test_old_records_without_inputs_or_who_compare_as_unknown(tmp_path: Path) -> None:
    old = _run(tmp_path, "old", 1.0, [_job("amd64")])
    data = json.loads((old.dir / "run.json").read_text())
    del data["started_by"]
    for job in data["jobs"]:
        del job["inputs"]
    (old.dir / "run.json").write_text(json.dumps(data))
    now = _run(tmp_path, "new", 2.0, [_job("amd64", inputs=_inputs())])
    runs = list_runs(tmp_path)
    assert history(runs)[-1].who is None
    by = {c.what: c for c in changes_since_green(now, "amd64", runs).rows}
    assert by["Dockerfile sha256"].green is None and by["Dockerfile sha256"].changed
    assert by[f"base image {BUSYBOX}"].green is None


def _staged_history(state: Path) -> None:
    root = state / "matui"
    _run(root, "20260101-000001-aaaaaa", 100.0, [_job("amd64", seconds=10.0, inputs=_inputs())])
    _run(
        root,
        "20260101-000002-bbbbbb",
        200.0,
        [
            _job(
                "amd64",
                "failed",
                seconds=4.0,
                failing_step="#6 [3/3] RUN make",
                inputs=_inputs("d2", token="other"),
            )
        ],
        state=RunState.FAILED,
    )


def test_cli_runs_json_and_text_and_changes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _staged_history(state)
    listed = run_matui("runs", "--json", state=state, timeout=60)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [r["verdict"]["kind"] for r in runs] == ["failed", "built"]
    assert runs[0]["arches"]["amd64"]["failing_step"] == "#6 [3/3] RUN make"
    assert runs[0]["run"] == "20260101-000002-bbbbbb" and runs[0]["who"] == "ops@bastion"
    assert runs[1]["trend"] == {"amd64": [10.0]}

    text = run_matui("runs", state=state, env={"PYTHONIOENCODING": "utf-8"}, timeout=60)
    assert "TIME AND TREND" in text.stdout
    assert "amd64 10s " + SPARK[3] in text.stdout
    plain = run_matui("runs", state=state, env={"PYTHONIOENCODING": "ascii"}, timeout=60)
    assert plain.returncode == 0 and "amd64 10s " + SPARK_ASCII[3] in plain.stdout

    changes = run_matui("changes", "--arch", "linux/amd64", "--json", state=state, timeout=60)
    assert changes.returncode == 0, changes.stderr
    doc = json.loads(changes.stdout)
    assert doc["green_run"] == "20260101-000001-aaaaaa"
    changed = {row["what"] for row in doc["rows"] if row["changed"]}
    assert changed == {"Dockerfile sha256", "build arg TOKEN", "source"}
    assert SECRET not in changes.stdout and "other" not in changes.stdout

    table = run_matui("changes", "--arch", "amd64", state=state, timeout=60)
    assert "amd64: 3 changes since green run 20260101-000001-aaaaaa" in table.stdout
    first = run_matui("changes", "--arch", "amd64", "--run", "20260101-000001", state=state)
    assert "no earlier green run of amd64" in first.stdout
    wrong = run_matui("changes", "--arch", "s390x", state=state, timeout=60)
    assert wrong.returncode == 2 and "--arch s390x" in wrong.stderr and "amd64" in wrong.stderr
