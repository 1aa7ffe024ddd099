"""Retries that fit the cause: buildx gets ``--no-cache`` / ``--pull`` only when a retry asks for
them; a job moves only to another configured host that can build its platform; each cause
suggests the retry that can pass (or none); a retry is a new attempt, recorded and opened by a
marker line in the job's log (the scripts run on a real ``sh`` in a private HOME)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from matui.engine import shell
from matui.engine.arch import Platform
from matui.engine.build.failure import CAUSES, JobFacts, failure_record, log_lines
from matui.engine.build.retry import (
    RetryError,
    RetryHost,
    RetryKind,
    RetryOptions,
    attempt_marker,
    check_retry_host,
    parse_attempt_marker,
    retry_choices,
    retry_hosts,
    suggest_retry,
)
from matui.engine.build.run import NoteEvent
from matui.engine.config import HostConfig
from matui.engine.plan import BuildJob
from matui.engine.records import JobState, RunRecord
from tests.unit.test_events import make_run, queued
from tests.unit.test_job_truth import job_dir, run_script

HOSTS = (
    HostConfig("arm-1", "arm64", "192.0.2.11"),
    HostConfig("arm-2", "arm64", "192.0.2.12"),
    HostConfig("amd-1", "amd64", "192.0.2.13"),
    HostConfig("emu-1", "amd64", "192.0.2.14", allow_emulation=True),
)
JOB = BuildJob(Platform.parse("linux/arm64"), "arm-1", False, "1.0-arm64", "r/app:1.0-arm64")


def argv(*, no_cache: bool = False, pull: bool = False) -> list[str]:
    return shell.buildx_argv(
        platform="linux/arm64",
        ref="r/app:1.0-arm64",
        dockerfile="Dockerfile",
        build_args=[],
        labels={},
        target=None,
        no_cache=no_cache,
        pull=pull,
    )


# -- the flags: decided in buildx_argv only ------------------------------------------------------


def test_no_cache_and_pull_only_when_asked() -> None:
    plain = argv()
    assert "--no-cache" not in plain and "--pull" not in plain
    no_cache = argv(no_cache=True)
    assert "--no-cache" in no_cache and "--pull" not in no_cache
    pull = argv(pull=True)
    assert "--pull" in pull and "--no-cache" not in pull
    both = argv(no_cache=True, pull=True)
    # Flags, not positionals: before the `--` that ends buildx's options.
    assert both.index("--no-cache") < both.index("--") and both.index("--pull") < both.index("--")
    assert [a for a in both if a not in ("--no-cache", "--pull")] == plain


# -- where a job can move --------------------------------------------------------------------------


def test_retry_hosts_are_the_other_hosts_of_that_arch_then_emulating_ones() -> None:
    assert retry_hosts(HOSTS, JOB) == [RetryHost("arm-2", False), RetryHost("emu-1", True)]


def test_check_retry_host_accepts_another_host_of_the_platform() -> None:
    assert check_retry_host(HOSTS, JOB, "arm-2") == RetryHost("arm-2", False)
    assert check_retry_host(HOSTS, JOB, "emu-1") == RetryHost("emu-1", True)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("nope", ["--host nope", "no host of that name", "configured: arm-1, arm-2", "host add"]),
        ("arm-1", ["--host arm-1", "already built there", "leave out --host", "arm-2, emu-1"]),
        ("amd-1", ["--host amd-1", "declared amd64", "cannot build linux/arm64", "arm-2, emu-1"]),
    ],
)
def test_check_retry_host_refuses_naming_the_field_and_the_fix(name: str, words: list[str]) -> None:
    with pytest.raises(RetryError) as caught:
        check_retry_host(HOSTS, JOB, name)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# -- which retry fits the cause -------------------------------------------------------------------

OTHERS = [RetryHost("arm-2", False), RetryHost("emu-1", True)]


@pytest.mark.parametrize(
    ("cause", "kind", "host"),
    [
        ("base-image-lacks-platform", None, None),
        ("wrong-arch-binary", None, None),
        ("build-error", None, None),
        ("disk-full", RetryKind.OTHER_HOST, "arm-2"),
        ("host-or-engine-lost", RetryKind.OTHER_HOST, "arm-2"),
        ("killed-out-of-memory", RetryKind.OTHER_HOST, "arm-2"),
        ("qemu-crash", RetryKind.OTHER_HOST, "arm-2"),
        ("registry-push-failed", RetryKind.SAME_HOST, None),
        ("network-failure", RetryKind.SAME_HOST, None),
        ("buildx-died", RetryKind.SAME_HOST, None),
        ("log-clipped", RetryKind.SAME_HOST, None),
        ("stale-base", RetryKind.PULL, None),
        ("cache-corrupt", RetryKind.NO_CACHE, None),
        (None, RetryKind.SAME_HOST, None),
    ],
)
def test_each_cause_suggests_the_retry_that_fits(
    cause: str | None, kind: RetryKind | None, host: str | None
) -> None:
    suggestion = suggest_retry(cause, other_hosts=OTHERS)
    assert (suggestion.kind, suggestion.host) == (kind, host)
    assert suggestion.advice


def test_every_cause_of_matui_s_own_has_a_fit() -> None:
    for cause in CAUSES:
        assert suggest_retry(cause.name, retry_worth=cause.retry).advice


def test_the_fix_the_from_advice() -> None:
    assert "fix the FROM" in suggest_retry("base-image-lacks-platform").advice


def test_without_another_host_the_fallback_says_so() -> None:
    disk = suggest_retry("disk-full")
    assert disk.kind is RetryKind.SAME_HOST and "no other host" in disk.advice
    assert "free disk" in disk.advice
    # QEMU crashed: another emulating host would crash the same way.
    qemu = suggest_retry("qemu-crash", other_hosts=[RetryHost("emu-1", True)])
    assert qemu.kind is None and "native" in qemu.advice
    assert suggest_retry("killed-out-of-memory").kind is None


def test_a_user_cause_follows_its_own_retry_verdict() -> None:
    assert suggest_retry("boom", retry_worth=True).kind is RetryKind.SAME_HOST
    assert suggest_retry("boom", retry_worth=False).kind is None


def test_choices_put_the_suggested_one_first_and_mark_it() -> None:
    suggestion, choices = retry_choices(JOB, "cache-corrupt", other_hosts=OTHERS)
    assert suggestion.kind is RetryKind.NO_CACHE
    assert [c.kind for c in choices] == [
        RetryKind.NO_CACHE,
        RetryKind.SAME_HOST,
        RetryKind.OTHER_HOST,
        RetryKind.OTHER_HOST,
        RetryKind.PULL,
    ]
    assert [c.suggested for c in choices] == [True, False, False, False, False]
    assert choices[0].options == RetryOptions(no_cache=True)
    assert [c.options.host for c in choices if c.kind is RetryKind.OTHER_HOST] == ["arm-2", "emu-1"]
    assert "emulated" in choices[3].label


def test_choices_for_a_full_disk_suggest_the_other_native_host() -> None:
    _, choices = retry_choices(JOB, "disk-full", other_hosts=OTHERS)
    assert choices[0].suggested and choices[0].options == RetryOptions(host="arm-2")


def test_no_choice_is_marked_when_none_fits() -> None:
    suggestion, choices = retry_choices(JOB, "build-error", other_hosts=OTHERS)
    assert suggestion.kind is None
    assert not any(c.suggested for c in choices)
    assert choices[0].kind is RetryKind.SAME_HOST


# -- the attempt marker ---------------------------------------------------------------------------


def test_attempt_marker_round_trips() -> None:
    line = attempt_marker(2, RetryOptions(no_cache=True, host="arm-2"), "arm-2")
    assert line == "@@matui attempt 2: retry --no-cache on host arm-2"
    assert parse_attempt_marker(line) == (2, "retry --no-cache on host arm-2")
    assert parse_attempt_marker(attempt_marker(3, RetryOptions(), "h")) == (3, "retry on host h")
    assert parse_attempt_marker("#1 @@matui attempt 2: x") is None


def test_launch_writes_the_marker_before_the_build_s_output(tmp_path: Path) -> None:
    job = job_dir(tmp_path)
    (job / "build.log").write_text("first attempt\n")
    marker = attempt_marker(2, RetryOptions(pull=True), "h")
    result = run_script(
        shell.launch_script("r1", "amd64", ["echo", "built"], marker=marker), tmp_path
    )
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 20
    while not (job / "exit").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (job / "build.log").read_text() == f"first attempt\n{marker}\nbuilt\n"


def test_upload_to_a_moved_job_starts_its_log_afresh(tmp_path: Path) -> None:
    job = job_dir(tmp_path)
    (job / "build.log").write_text("an earlier attempt's log\n")
    # No tar on stdin here: tar fails, after the script has done what is tested.
    run_script(shell.upload_script("r1", "amd64"), tmp_path)
    assert (job / "build.log").exists()
    run_script(shell.upload_script("r1", "amd64", fresh_log=True), tmp_path)
    assert not (job / "build.log").exists()


# -- BuildRun.retry -------------------------------------------------------------------------------


async def _retry_and_stop(run: object, **options: object) -> None:
    from matui.engine.build.run import BuildRun

    assert isinstance(run, BuildRun)
    run.retry("amd64", **options)  # type: ignore[arg-type]
    tasks = [t for t in (run._tasks.get("amd64"), run._supervisor) if t is not None]
    for task in tasks:  # the hosts are never dialled: stop before the upload gets anywhere
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_a_retry_on_another_host_moves_the_job_and_records_the_attempt(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.config = type(run.config)(
        None, (*run.config.hosts, HostConfig("amd64-2", "amd64", "192.0.2.20")), run.config.images
    )
    status = run.status["amd64"]
    status.state = JobState.FAILED
    status.offset = 1234
    asyncio.run(_retry_and_stop(run, no_cache=True, host="amd64-2"))
    assert status.job.host == "amd64-2" and run.plan.jobs[0].host == "amd64-2"
    assert status.attempt == 2 and status.log_base == 1234
    assert status.retry_options == RetryOptions(no_cache=True, host="amd64-2")
    saved = RunRecord.load(run.record.dir).job("amd64")
    assert (saved.host, saved.attempt, saved.log_base) == ("amd64-2", 2, 1234)
    assert saved.retry_options == {"no_cache": True, "pull": False, "host": "amd64-2"}
    assert run.attempt_line("amd64") == "attempt 2: retry --no-cache on host amd64-2"


def test_a_retry_to_a_host_that_cannot_build_it_changes_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path, ("amd64", "arm64"))
    status = run.status["amd64"]
    status.state = JobState.FAILED
    with pytest.raises(RetryError, match="--host arm64-1: it is declared arm64"):
        run.retry("amd64", host="arm64-1")
    assert status.job.host == "amd64-1" and status.attempt == 1 and status.state is JobState.FAILED


def test_a_plain_retry_stays_on_its_host(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    status = run.status["amd64"]
    status.state = JobState.FAILED
    status.offset = 99
    asyncio.run(_retry_and_stop(run, pull=True))
    assert status.job.host == "amd64-1" and status.log_base == 0 and status.attempt == 2
    assert status.retry_options == RetryOptions(pull=True)


# -- a cause the classifier finds, and its retry ----------------------------------------------


def test_a_damaged_build_cache_is_recognised_and_suggests_no_cache() -> None:
    log = Path(__file__).parent.parent / "data" / "failures" / "synthetic_cache_corrupt.log"
    record = failure_record(log_lines(log), JobFacts())
    assert record.cause == "cache-corrupt" and record.retry is False
    assert "--no-cache" in record.advice
    _, choices = retry_choices(JOB, record.cause, retry_worth=record.retry)
    assert choices[0].suggested and choices[0].options == RetryOptions(no_cache=True)


def test_moving_a_lost_job_says_its_build_may_still_run_on_the_old_host(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.config = type(run.config)(
        None, (*run.config.hosts, HostConfig("amd64-2", "amd64", "192.0.2.20")), run.config.images
    )
    run.status["amd64"].state = JobState.LOST
    asyncio.run(_retry_and_stop(run, host="amd64-2"))
    notes = [e.text for e in queued(run) if isinstance(e, NoteEvent)]
    assert any(n.startswith("amd64-1 lost this job: its build may still be running") for n in notes)
