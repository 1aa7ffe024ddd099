"""The runner's part in step tables: it notes when it sees each step start and end while the
output arrives live (not when a stored log is replayed), saves the times with the job, starts
afresh on a retry, and when the run ends gives each failure record the seconds the same step
took on the arches that passed. A real BuildRun over hosts it never dials, fed log bytes the
way the follower feeds them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from matui.engine.build.failure import FailureRecord, JobFacts, failure_record
from matui.engine.build.run import BuildRun
from matui.engine.records import JobState, RunRecord
from tests.helpers.runs import feed, offline_run

REPO = "registry.example/team/app"
ARCHES = ("amd64", "arm64")

LOG = """\
#0 building with "default" instance using docker driver

#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s

#2 [1/2] RUN make deps
#2 0.100 fetching
#2 DONE 0.5s

#3 [2/2] RUN make
#3 0.200 compiling
"""
PASSED = LOG + "#3 DONE 2.0s\n"
FAILED = LOG + (
    "#3 ERROR: executor failed running [/bin/sh -c make]: exit code: 3\n"
    "ERROR: failed to solve: executor failed running [/bin/sh -c make]: exit code: 3\n"
)


def make_run(tmp_path: Path) -> BuildRun:
    return offline_run(tmp_path, REPO, ARCHES)


def test_live_output_notes_each_steps_times(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    status = run.status["amd64"]
    status.started = time.time() - 5.0
    head, _, tail = PASSED.partition("#3 [2/2]")
    feed(run, "amd64", head.encode())
    status.started -= 2.0  # two seconds later, the rest arrives
    feed(run, "amd64", ("#3 [2/2]" + tail).encode())
    seen = {item["step"]: item for item in status.steps.to_json()}
    assert sorted(seen) == [1, 2, 3]
    assert 5.0 <= seen[1]["start"] < 6.0 and 5.0 <= seen[2]["end"] < 6.0
    assert 7.0 <= seen[3]["start"] < 8.0 and 7.0 <= seen[3]["end"] < 8.0
    # Saved with the job at its next state change, and read back on a resume.
    run._set_state(status, JobState.SUCCEEDED, "done")
    saved = RunRecord.load(run.record.dir).job("amd64")
    assert saved.steps == status.steps.to_json()


def test_a_replayed_log_notes_no_times_and_a_retry_starts_afresh(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.record.log_path("amd64").write_text(PASSED)
    run.record.update_job("amd64", state=JobState.FAILED, steps=[{"step": 1, "start": 0.5}])
    resumed = BuildRun.resume(RunRecord.load(run.record.dir), run.config, run.pool, registry=None)
    status = resumed.status["amd64"]
    assert status.lines > 0  # the stored log was read ...
    assert status.steps.to_json() == [{"step": 1, "start": 0.5, "end": None}]  # ... and timed none
    resumed.status["arm64"].state = JobState.SUCCEEDED

    async def retry() -> None:
        resumed.retry("amd64")
        for task in resumed._tasks.values():
            task.cancel()

    asyncio.run(retry())
    assert resumed.status["amd64"].steps.to_json() == []


def test_failure_records_get_the_seconds_elsewhere_when_the_run_ends(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.record.log_path("amd64").write_text(PASSED)
    run.record.log_path("arm64").write_text(FAILED)
    run.status["amd64"].state = JobState.SUCCEEDED
    arm = run.status["arm64"]
    arm.state = JobState.FAILED
    arm.failure = failure_record(FAILED.splitlines(), JobFacts())
    assert arm.failure.step == "[2/2] RUN make" and arm.failure.elsewhere == {}
    asyncio.run(run._fill_elsewhere())
    assert arm.failure.elsewhere == {"amd64": 2.0}
    saved = RunRecord.load(run.record.dir).job("arm64").failure
    assert saved is not None and saved["elsewhere"] == {"amd64": 2.0}
    assert FailureRecord.from_json(saved).elsewhere == {"amd64": 2.0}
    assert ("same step elsewhere", "amd64 2.0 s") in arm.failure.card()
