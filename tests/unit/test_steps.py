"""matui.engine.build.steps: a job's step table (from logs recorded on the rig and synthetic
ones), the arches of a run side by side (aligned rows, the first step where they part ways, the
timeline), one step's output per arch, and the failure record's seconds elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.build.progress import ProgressParser
from matui.engine.build.steps import (
    Cell,
    RowState,
    StepClock,
    StepOutput,
    StepTable,
    compare,
    compare_run,
    elsewhere,
    match_key,
    normalise_name,
    side_by_side,
    step_output,
    step_table,
)
from matui.engine.records import JobRecord, JobState, RunRecord
from matui.engine.text import decode_lines
from tests.helpers.records import job_record

DATA = Path(__file__).resolve().parents[1] / "data"
FROM = "[1/4] FROM 127.0.0.1:5000/matui/busybox:1.35@sha256:" + "a" * 64


def lines_of(path: Path) -> list[str]:
    return decode_lines(path.read_bytes().rstrip(b"\n"))


def rows(table: object) -> list[tuple[object, ...]]:
    return [
        (s.number, s.name, s.stage, str(s.state), s.seconds, s.start, s.end)
        for s in table.steps  # type: ignore[attr-defined]
    ]


def job(arch: str, state: JobState = JobState.SUCCEEDED, seconds: float = 3.0) -> JobRecord:
    return job_record(
        arch,
        "127.0.0.1:5000/team/app",
        state=state,
        seconds=seconds,
    )


def build_log(arch: str, *, fail: bool = False, slow: float = 1.0) -> list[str]:
    """A two-arch build's log in buildx 0.13.1's format: ``fail`` stops at [3/4]."""
    out = [
        '#0 building with "default" instance using docker driver',
        "",
        "#1 [internal] load build definition from Dockerfile",
        "#1 DONE 0.0s",
        "",
        f"#2 {FROM}",
        "#2 CACHED",
        "",
        "#3 [2/4] RUN make deps",
        "#3 0.100 fetching",
        f"#3 DONE {0.5 * slow:.1f}s",
        "",
        "#4 [3/4] RUN make",
        "#4 0.200 compiling",
    ]
    if fail:
        out += [
            "#4 0.900 boom",
            "#4 ERROR: executor failed running [/bin/sh -c make]: exit code: 3",
            "------",
            " > [3/4] RUN make:",
            "------",
            "ERROR: failed to solve: executor failed running [/bin/sh -c make]: exit code: 3",
        ]
        return out
    out += [
        f"#4 DONE {2.0 * slow:.1f}s",
        "",
        "#5 [4/4] RUN make install",
        "#5 DONE 0.3s",
        "",
        "#6 exporting to image",
        f"#6 naming to 127.0.0.1:5000/team/app:1.0-{arch} done",
        "#6 DONE 0.0s",
        "",
        f"#7 pushing 127.0.0.1:5000/team/app:1.0-{arch} with docker",
        "#7 DONE 0.2s",
    ]
    return out


# -- the step table ----------------------------------------------------------------------------


def test_recorded_failed_build_estimated_from_durations() -> None:
    table = step_table(lines_of(DATA / "failures" / "exit3.log"), job_state="failed")
    assert table.estimated
    busybox = "127.0.0.1:5000/matui/busybox:1.35@sha256:"
    digest = "21b2a2e621ec792c8f7c91568db6b4f73e65a4fb67b66bc42aa2e2343a15b5e5"
    assert rows(table) == [
        (1, "[internal] load build definition from Dockerfile", None, "done", 0.0, 0.0, 0.0),
        (2, "[internal] load .dockerignore", None, "done", 0.0, 0.0, 0.0),
        (3, f"[internal] load metadata for {busybox[:-8]}", None, "done", 0.0, 0.0, 0.0),
        (4, f"[1/3] FROM {busybox}{digest}", None, "cached", None, 0.0, 0.0),
        (5, "[2/3] RUN echo before failing", None, "done", 0.2, 0.0, 0.2),
        (
            6,
            "[3/3] RUN echo step output one && echo step output two >&2 && exit 3",
            None,
            "error",
            0.309,  # no DONE: the time of its last output line
            0.2,
            0.509,
        ),
    ]
    assert [s.cached for s in table.steps] == [False, False, False, True, False, False]


def test_parallel_stages_states_and_stages() -> None:
    table = step_table(
        lines_of(DATA / "failures" / "synthetic_parallel_exit3.log"), job_state="failed"
    )
    assert [(s.number, s.stage, str(s.state)) for s in table.steps] == [
        (4, "base", "cached"),
        (5, "builder", "error"),
        (6, "docs", "canceled"),
    ]


def test_a_step_without_done_in_a_built_image_is_done() -> None:
    # Seen on the rig: "[internal] load metadata" re-named after the export, never DONE.
    table = step_table(lines_of(DATA / "progress" / "parallel.log"), job_state="succeeded")
    assert {str(s.state) for s in table.steps} == {"done", "cached"}
    failed = step_table(lines_of(DATA / "progress" / "parallel_fail.log"), job_state="failed")
    assert [str(s.state) for s in failed.steps][2:] == [
        "no end seen",
        "cached",
        "error",
        "canceled",
    ]
    running = step_table(lines_of(DATA / "progress" / "parallel_fail.log")[:25])
    assert "running" in {str(s.state) for s in running.steps}


def test_observed_times_place_the_steps() -> None:
    parser = ProgressParser()
    clock = StepClock()
    lines = build_log("amd64")
    # As the runner sees them: a chunk at a time, each stamped when it arrives.
    for at, chunk in ((0.5, lines[:8]), (1.0, lines[8:12]), (3.25, lines[12:])):
        clock.observe(parser.feed_lines(chunk), at)
    table = step_table(lines, observed=clock.to_json(), job_state="succeeded")
    assert not table.estimated
    assert [(s.number, s.start, s.end, s.observed) for s in table.steps] == [
        (1, 0.5, 0.5, True),
        (2, 0.5, 0.5, True),
        (3, 1.0, 1.5, True),  # start as seen, end from DONE 0.5s
        (4, 3.25, 5.25, True),
        (5, 3.25, 3.55, True),
        (6, 3.25, 3.25, True),
        (7, 3.25, 3.45, True),
    ]
    # Partly observed (a reattach): the rest laid out after the step before it, estimated.
    partial = step_table(lines, observed=clock.to_json()[:3], job_state="succeeded")
    assert partial.estimated
    assert [(s.start, s.end, s.observed) for s in partial.steps][2:5] == [
        (1.0, 1.5, True),
        (1.5, 3.5, False),
        (3.5, 3.8, False),
    ]


def test_clock_round_trips_and_ignores_damage() -> None:
    clock = StepClock([{"step": 3, "start": 1.0, "end": 2.5}, {"step": "x"}, {"nope": 1}])
    assert clock.to_json() == [{"step": 3, "start": 1.0, "end": 2.5}]
    assert len(StepClock(StepClock(clock.to_json()).to_json())) == 1


def test_only_the_last_attempt_counts() -> None:
    lines = [*build_log("arm64", fail=True), "@@matui attempt 2: retry", *build_log("arm64")]
    table = step_table(lines, job_state="succeeded")
    assert [str(s.state) for s in table.steps] == ["done", "cached", *["done"] * 5]


def test_long_logs_across_batches_and_attempts() -> None:
    # A failing step printing 20 000 lines (the parser gets the log in batches) while a step
    # of another stage printed once, early, and was cancelled at the end.
    log = build_log("arm64", fail=True)
    at = log.index("#4 ERROR: executor failed running [/bin/sh -c make]: exit code: 3")
    log[at:at] = [
        "",
        "#9 [docs 1/1] RUN make docs",
        "#9 0.050 docs start",
        "",
        "#4 [3/4] RUN make",
        *(f"#4 {1 + i / 1000:.3f} cc unit {i}" for i in range(20_000)),
    ]
    log[-5:-5] = ["#9 CANCELED"]
    table = step_table(log, job_state="failed")
    by_number = {s.number: (str(s.state), s.seconds) for s in table.steps}
    assert by_number[4] == ("error", 20.999)
    assert by_number[9] == ("canceled", 0.05)
    # A second attempt whose banner falls inside a batch: only it counts.
    retried = [*log, "@@matui attempt 2: retry", *build_log("arm64")]
    assert [str(s.state) for s in step_table(retried, job_state="succeeded").steps] == [
        "done",
        "cached",
        *["done"] * 5,
    ]


# -- arches side by side -----------------------------------------------------------------------


def test_normalise_name() -> None:
    assert normalise_name(FROM) == "[1/4] FROM 127.0.0.1:5000/matui/busybox:1.35"
    assert normalise_name("[linux/arm64 builder 3/4] RUN make") == "[builder 3/4] RUN make"
    # A FROM shared with a concurrent three-step build on the same engine (seen on the rig)
    # matches the five-step build's own.
    assert match_key("[1/3] FROM b:1") == match_key("[1/5] FROM b:1") == "[] FROM b:1"
    assert match_key("[builder 3/4] RUN make") == "[builder] RUN make"
    assert match_key("[internal] load metadata for b:1") == "[internal] load metadata for b:1"
    ref = "127.0.0.1:5000/team/app:1.0-arm64"
    assert (
        normalise_name(f"pushing {ref} with docker", ref=ref, arch_tag="1.0-arm64")
        == "pushing 127.0.0.1:5000/team/app:<arch tag> with docker"
    )


def two_arch_comparison() -> tuple[list[JobRecord], dict[str, StepTable]]:
    jobs = [job("amd64", seconds=3.5), job("arm64", JobState.FAILED, 1.5)]
    tables = {
        "amd64": step_table(build_log("amd64"), job_state="succeeded"),
        "arm64": step_table(build_log("arm64", fail=True, slow=2.0), job_state="failed"),
    }
    return jobs, tables


def test_compare_aligns_rows_and_finds_where_they_part() -> None:
    jobs, tables = two_arch_comparison()
    result = compare("run-1", jobs, tables)
    got = [
        (r.number, r.name, r.diverges, [(str(c.state), c.seconds) for c in r.cells])
        for r in result.rows
    ]
    assert got == [
        (1, "[internal] load build definition from Dockerfile", False, [("done", 0.0)] * 2),
        (2, "[1/4] FROM 127.0.0.1:5000/matui/busybox:1.35", False, [("cached", None)] * 2),
        (3, "[2/4] RUN make deps", False, [("done", 0.5), ("done", 1.0)]),
        (4, "[3/4] RUN make", True, [("done", 2.0), ("error", 0.9)]),
        (5, "[4/4] RUN make install", False, [("done", 0.3), ("not reached", None)]),
        (6, "exporting to image", False, [("done", 0.0), ("not reached", None)]),
        (
            7,
            "pushing 127.0.0.1:5000/team/app:<arch tag> with docker",
            False,
            [("done", 0.2), ("not reached", None)],
        ),
    ]
    assert result.first_divergence == 3
    assert result.why == "arm64 error 0.9s; amd64 done 2.0s"
    assert result.estimated == ("amd64", "arm64")
    assert result.span == 3.0  # amd64: 0.5 + 2.0 + 0.3 + 0.2 laid end to end

    data = result.to_json(width=10)
    assert data["first_divergence"] == {
        "row": 3,
        "number": 4,
        "step": "[3/4] RUN make",
        "why": "arm64 error 0.9s; amd64 done 2.0s",
    }
    assert data["rows"][3]["arches"]["arm64"] == {
        "state": "error",
        "seconds": 0.9,
        "cached": False,
        "number": 4,
        "start": 1.0,
        "end": 1.9,
    }
    assert data["jobs"] == {
        "amd64": {"state": "succeeded", "seconds": 3.5},
        "arm64": {"state": "failed", "seconds": 1.5},
    }


def test_timeline_bars_share_one_axis() -> None:
    jobs, tables = two_arch_comparison()
    lanes = compare("run-1", jobs, tables).timeline(30)
    amd64, arm64 = lanes
    assert all(len(bar) == 30 for lane in lanes for bar in lane.bars)
    assert amd64.bars[2] == "█████" + " " * 25  # 0 .. 0.5 s of 3.0 s
    assert amd64.bars[3] == " " * 5 + "█" * 20 + " " * 5  # 0.5 .. 2.5 s
    assert arm64.bars[2] == "█" * 10 + " " * 20  # 0 .. 1.0 s: the slow arch shows
    assert arm64.bars[3] == " " * 10 + "X" * 9 + " " * 11  # failed, 1.0 .. 1.9 s
    assert arm64.bars[4] == " " * 30  # never reached
    assert amd64.bars[1] == "░" + " " * 29  # cached: one column


def test_compare_agreeing_and_single_arch() -> None:
    jobs = [job("amd64"), job("arm64")]
    tables = {j.key: step_table(build_log(j.arch), job_state="succeeded") for j in jobs}
    same = compare("r", jobs, tables)
    assert same.first_divergence is None and same.why == "the arches agree at every step"
    assert not any(r.diverges for r in same.rows)
    # A cache hit on one arch is no parting of ways: both produced the step.
    cached = [line.replace("DONE 0.3s", "CACHED") for line in build_log("arm64")]
    other = compare("r", jobs, {**tables, "arm64": step_table(cached, job_state="succeeded")})
    assert other.first_divergence is None
    assert other.rows[4].cell("arm64") == Cell("arm64", RowState.CACHED, None, 5, 2.5, 2.5)
    one = compare("r", jobs[:1], tables)
    assert one.why == "one arch only: nothing to compare"


def test_a_step_only_one_arch_has_is_placed_after_its_predecessor() -> None:
    jobs = [job("amd64"), job("arm64")]
    arm = build_log("arm64")
    at = arm.index("#5 [4/4] RUN make install")
    arm[at:at] = ["#9 [internal] load build context", "#9 DONE 0.1s", ""]
    tables = {
        "amd64": step_table(build_log("amd64"), job_state="succeeded"),
        "arm64": step_table(arm, job_state="succeeded"),
    }
    result = compare("r", jobs, tables)
    names = [r.name for r in result.rows]
    # #9 sorts last on arm64 (build order is #N), so it follows the push there.
    assert names[-1] == "[internal] load build context"
    assert result.rows[-1].cell("amd64").state is RowState.NOT_REACHED
    assert result.first_divergence == len(names) - 1


def test_find_by_number_or_name() -> None:
    jobs, tables = two_arch_comparison()
    result = compare("run-1", jobs, tables)
    assert result.find("4").name == "[3/4] RUN make"
    assert result.find("#3").name == "[2/4] RUN make deps"
    assert result.find("install").number == 5
    with pytest.raises(LookupError, match="matches 3 steps"):
        result.find("RUN make")
    with pytest.raises(LookupError, match="no such step"):
        result.find("99")


def test_compare_run_reads_the_stored_logs(tmp_path: Path) -> None:
    jobs = [job("amd64"), job("arm64", JobState.FAILED)]
    record = RunRecord.create(
        tmp_path, image="127.0.0.1:5000/team/app", tags=["1.0"], platforms=[], jobs=jobs
    )
    for j, fail in ((jobs[0], False), (jobs[1], True)):
        record.log_path(j.key).write_text("\n".join(build_log(j.arch, fail=fail)) + "\n")
    result = compare_run(RunRecord.load(record.dir))
    assert result.diverging is not None and result.diverging.name == "[3/4] RUN make"
    # Saved step times make the timeline observed.
    record.update_job("amd64", steps=[{"step": n, "start": n * 0.1, "end": None} for n in (1, 2)])
    again = compare_run(RunRecord.load(record.dir))
    assert again.rows[0].cell("amd64").start == 0.1
    assert "amd64" in again.estimated  # steps 3.. were not observed


# -- a step's output and the failure's seconds elsewhere --------------------------------------


def test_step_output_is_the_steps_own_lines_of_the_last_attempt() -> None:
    lines = build_log("arm64", fail=True) + build_log("arm64", fail=True)
    out = step_output(lines, "arm64", 4)
    assert out.lines == (
        "[3/4] RUN make",
        "0.200 compiling",
        "0.900 boom",
        "ERROR: executor failed running [/bin/sh -c make]: exit code: 3",
    )
    assert out.dropped == 0
    assert step_output(lines, "arm64", 4, limit=2).dropped == 2
    assert step_output(lines, "arm64", None).lines == ()


def test_side_by_side_wraps_and_pads() -> None:
    left = StepOutput("amd64", 4, ("short", "x" * 25))
    right = StepOutput("arm64", None, ())
    text = side_by_side([left, right], 43)
    assert text == [
        "amd64 #4             │ arm64: not reached",
        "────────             │ ──────────────────",
        "short                │",
        "xxxxxxxxxxxxxxxxxxxx │",
        "xxxxx                │",
    ]


def test_elsewhere_is_the_same_step_on_the_arches_that_passed() -> None:
    amd, arm = job("amd64"), job("arm64", JobState.FAILED)
    table = step_table(build_log("amd64"), job_state="succeeded")
    assert elsewhere("[3/4] RUN make", arm, [(amd, table)]) == {"amd64": 2.0}
    assert elsewhere("[1/4] FROM x", arm, [(amd, table)]) == {}  # no such step there
