"""The failure card's engine side: each job's host facts (as the run's pre-flight probed the
host) kept in the run record and in the failure record, the card's fields and headline computed
once for both front ends, and a resumed run showing the card a job had before the restart."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from matui.engine.build.failure import FailureRecord, HostFacts
from matui.engine.build.run import BuildRun, StateEvent
from matui.engine.probe import HostProbe
from matui.engine.records import JobRecord, JobState, RunRecord
from tests.helpers.runs import feed
from tests.unit.test_events import make_run, queued

FAILURES = Path(__file__).resolve().parents[1] / "data" / "failures"

PROBE = HostProbe(
    "amd64-1",
    "amd64",
    reachable=True,
    uname="x86_64",
    native_arch="amd64",
    docker_version="20.10.24",
    docker_arch="amd64",
    buildx_version="0.13.1",
    free_bytes=12 * 2**30 + 2**29,
)


def probed_run(tmp_path: Path) -> BuildRun:
    """A real run over a host it never dials, with the pre-flight's probe of that host."""
    base = make_run(tmp_path)
    return BuildRun(base.plan, base.config, base.pool, base.record, [PROBE])


def fail_with(run: BuildRun, log_name: str, buildx_exit: str = "1") -> None:
    """The job's log as the host wrote it, then buildx's exit as the host reports it."""
    feed(run, "amd64", (FAILURES / log_name).read_bytes())
    run._finish(run.status["amd64"], run._logs["amd64"].parser, {"exit": buildx_exit})


def test_each_job_keeps_its_hosts_facts_from_the_probe(tmp_path: Path) -> None:
    run = probed_run(tmp_path)
    facts = run.status["amd64"].host_facts
    assert facts == HostFacts(
        "amd64-1", "amd64", "amd64", False, "20.10.24", "0.13.1", PROBE.free_bytes
    )
    assert facts is not None
    assert facts.line() == (
        "amd64-1: declared amd64, native amd64, native · docker 20.10.24 · buildx 0.13.1 "
        "· 12.5 GiB free"
    )


def test_the_failure_record_carries_the_host_and_buildx_s_exit_apart(tmp_path: Path) -> None:
    run = probed_run(tmp_path)
    fail_with(run, "exit3.log")
    status = run.status["amd64"]
    assert status.state is JobState.FAILED
    failure = status.failure
    assert failure is not None
    assert failure.exit_code == 3 and failure.buildx_exit == 1
    assert failure.host == status.host_facts
    doc = failure.to_json()
    assert doc["host"]["buildx_version"] == "0.13.1"
    assert doc["host"]["emulated"] is False and doc["host"]["free_bytes"] == PROBE.free_bytes
    # The JSON `matui build --json` prints per job, and the run record, both carry them.
    job = status.to_json()
    assert job["host_facts"] == doc["host"] and job["failure"]["host"] == doc["host"]
    saved = RunRecord.load(run.record.dir).job("amd64")
    assert saved.host_facts == doc["host"] and saved.failure == doc
    # The state event hands the card to the front ends with the state.
    (failed,) = [e for e in queued(run) if isinstance(e, StateEvent) and e.state == "failed"]
    assert failed.failure == failure


def test_a_resumed_run_restores_the_failure_card(tmp_path: Path) -> None:
    run = probed_run(tmp_path)
    fail_with(run, "exit3.log")
    before = run.status["amd64"].failure
    resumed = BuildRun.resume(RunRecord.load(run.record.dir), run.config, run.pool)
    status = resumed.status["amd64"]
    assert status.state is JobState.FAILED
    assert status.failure == before
    assert status.host_facts == run.status["amd64"].host_facts


def test_an_older_record_without_host_facts_loads_and_resumes_with_the_runs_probes(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path)
    run.record.update(hosts=[PROBE])
    document = json.loads((run.record.dir / "run.json").read_text())
    for job in document["jobs"]:
        job.pop("host_facts", None)
    (run.record.dir / "run.json").write_text(json.dumps(document))
    record = RunRecord.load(run.record.dir)
    assert record.job("amd64").host_facts is None
    resumed = BuildRun.resume(record, run.config, run.pool)
    facts = resumed.status["amd64"].host_facts
    assert facts is not None and facts.docker_version == "20.10.24"


def test_a_retry_drops_the_card_and_a_new_failure_makes_a_new_one(tmp_path: Path) -> None:
    run = probed_run(tmp_path)
    fail_with(run, "exit3.log")
    status = run.status["amd64"]
    run._set_state(status, JobState.QUEUED, "retry")
    assert status.failure is None
    assert RunRecord.load(run.record.dir).job("amd64").failure is None


def test_from_json_round_trips_and_makes_host_text_inert() -> None:
    record = FailureRecord(
        step="[3/4] RUN make",
        step_number=6,
        stage="builder",
        dockerfile="Dockerfile",
        dockerfile_line=7,
        exit_code=3,
        error="process did not complete successfully: exit code: 3",
        cause="build-error",
        advice="fix it",
        retry=False,
        lines=("one", "two"),
        host=HostFacts("b1", "arm64", "arm64"),
        buildx_exit=1,
    )
    assert FailureRecord.from_json(record.to_json()) == record
    raw = record.to_json() | {"lines": ["\x1b]52;c;aGk=\x07boom"], "step": "\x1b[2Jstep"}
    back = FailureRecord.from_json(raw)
    assert "\x1b" not in back.lines[0] and back.step is not None and "\x1b" not in back.step


def test_the_headline_keeps_the_exit_code_and_cause_and_shortens_the_step() -> None:
    record = FailureRecord(
        step='[3/4] RUN if [ "$(uname -m)" = aarch64 ]; then echo boom; exit 3; fi',
        step_number=6,
        stage=None,
        dockerfile=None,
        dockerfile_line=None,
        exit_code=3,
        error=None,
        cause="build-error",
        advice="fix it",
        retry=False,
    )
    line = record.headline(60)
    assert len(line) == 60
    assert line.startswith("exit 3 at [3/4] RUN if") and line.endswith("… · build-error")
    lost = replace(record, step=None, exit_code=None, cause="host-or-engine-lost")
    assert lost.headline(40, "the connection to b1 was lost") == (
        "the connection to… · host-or-engine-lost"
    )
    assert lost.headline(80, "gone") == "gone · host-or-engine-lost"


def test_the_card_has_every_field_in_order_and_the_summary_its_lines() -> None:
    record = FailureRecord(
        step="[builder 3/4] RUN make",
        step_number=6,
        stage="builder",
        dockerfile="Dockerfile",
        dockerfile_line=7,
        exit_code=3,
        error=None,
        cause="build-error",
        advice="fix it",
        retry=False,
        lines=tuple(f"line {i}" for i in range(8)),
        host=HostFacts("b1", "arm64", "arm64", docker_version="26.1.4"),
        buildx_exit=1,
    )
    labels = [label for label, _ in record.card()]
    assert labels == [
        "step",
        "stage",
        "dockerfile",
        "exit code",
        "cause",
        "advice",
        "retry worth it",
        "host",
    ]
    card = dict(record.card())
    assert card["exit code"] == "3 (the step's own; buildx exited 1)"
    assert card["dockerfile"] == "Dockerfile:7" and card["retry worth it"] == "no"
    summary = record.summary_lines("arm64", lines=3)
    assert summary[0] == "arm64 failed:"
    assert summary[-3:] == ["    | line 5", "    | line 6", "    | line 7"]
    assert any("retry worth it  no" in line for line in summary)


def test_the_same_step_elsewhere_is_shown_when_the_record_has_it() -> None:
    record = FailureRecord(None, None, None, None, None, None, None, "buildx-died", "", True)
    assert "same step elsewhere" not in dict(record.card())
    record = replace(record, elsewhere={"amd64": 4.25, "s390x": 12.0})
    assert dict(record.card())["same step elsewhere"] == "amd64 4.2 s, s390x 12.0 s"


def test_a_job_record_without_host_facts_loads() -> None:
    data = {
        "key": "amd64",
        "arch": "amd64",
        "platform": "linux/amd64",
        "host": "b1",
        "arch_tag": "1.0-amd64",
        "ref": "r/a:1.0-amd64",
    }
    assert JobRecord.from_json(data).host_facts is None
