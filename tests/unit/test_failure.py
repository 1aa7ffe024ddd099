"""matui.engine.build.failure: a failed job's record (step, exit code, the step's own lines) and
its cause, from logs recorded on the rig or written in their format (tests/data/failures/README.md
says which)."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.build.failure import (
    CAUSES,
    FAILURE_LINES,
    FailureRecord,
    JobFacts,
    failure_record,
    log_lines,
)
from matui.engine.build.progress import ProgressParser
from matui.engine.config import FailureSignature
from matui.engine.text import decode_lines

DATA = Path(__file__).resolve().parents[1] / "data"
FAILURES = DATA / "failures"
PROGRESS = DATA / "progress"

FAILED = JobFacts(declared_arch="amd64", native_arch="amd64")
EMULATED = JobFacts(declared_arch="amd64", native_arch="amd64", emulated=True)


def lines_of(path: Path) -> list[str]:
    return decode_lines(path.read_bytes().rstrip(b"\n"))


def record(name: str, facts: JobFacts = FAILED, **kwargs: object) -> FailureRecord:
    folder = PROGRESS if name in {"exec_format_error.log", "fail_with_output.log"} else FAILURES
    return failure_record(lines_of(folder / name), facts, **kwargs)  # type: ignore[arg-type]


def test_step_exit_code_3_is_the_steps_own() -> None:
    rec = record("exit3.log")
    assert rec.step == "[3/3] RUN echo step output one && echo step output two >&2 && exit 3"
    assert rec.step_number == 6
    assert rec.exit_code == 3
    assert rec.stage is None
    assert rec.lines == ("step output one", "step output two")
    assert rec.cause == "build-error"
    assert rec.retry is False
    assert "fix" in rec.advice
    assert rec.error is not None and rec.error.startswith("executor failed running")
    assert rec.dockerfile is None and rec.dockerfile_line is None  # buildx 0.13.1 prints none


def test_lines_are_the_failing_steps_not_the_logs_tail() -> None:
    rec = record("synthetic_parallel_exit3.log")
    assert rec.step_number == 5
    assert rec.exit_code == 3
    assert rec.stage == "builder"
    assert rec.lines == ("compiling", "error: undefined reference to 'main'")
    assert not any("docs page" in line for line in rec.lines)
    assert (rec.dockerfile, rec.dockerfile_line) == ("Dockerfile.release", 7)
    assert rec.cause == "build-error"


def test_only_the_last_lines_of_a_long_step_are_kept() -> None:
    rec = record("fail_with_output.log")
    assert len(rec.lines) == 13  # all of them: fewer than FAILURE_LINES
    assert rec.lines[0] == "about to fail" and rec.lines[-1] == "noise 12"
    many = [f"#6 0.1 line {i}" for i in range(500)]
    log = ["#6 [2/2] RUN spam", *many, "#6 ERROR: process x did not complete: exit code: 1"]
    rec = failure_record(log, FAILED)
    assert len(rec.lines) == FAILURE_LINES
    assert rec.lines[-1] == "line 499"


def test_newer_buildkit_wording_and_dockerfile_excerpt() -> None:
    rec = record("synthetic_invalid_elf.log", EMULATED)
    assert rec.exit_code == 255
    assert (rec.dockerfile, rec.dockerfile_line) == ("Dockerfile", 3)


@pytest.mark.parametrize(
    ("name", "facts", "cause", "retry", "exit_code"),
    [
        ("exec_format_error.log", FAILED, "wrong-arch-binary", False, 1),
        ("synthetic_invalid_elf.log", EMULATED, "wrong-arch-binary", False, 255),
        ("no_platform.log", FAILED, "base-image-lacks-platform", False, None),
        ("killed137.log", FAILED, "killed-out-of-memory", False, 137),
        ("disk_full.log", FAILED, "disk-full", False, 1),
        ("push_refused.log", FAILED, "registry-push-failed", True, None),
        ("synthetic_push_blob_unknown.log", FAILED, "registry-push-failed", True, None),
        ("synthetic_push_503.log", FAILED, "registry-push-failed", True, None),
        ("dns.log", FAILED, "network-failure", True, 1),
        ("qemu_segv.log", EMULATED, "qemu-crash", False, 139),
        ("qemu_illegal.log", EMULATED, "qemu-crash", False, 132),
        ("synthetic_clipped_fail.log", FAILED, "log-clipped", False, 2),
        ("exit3.log", FAILED, "build-error", False, 3),
    ],
)
def test_each_cause_from_its_log(
    name: str, facts: JobFacts, cause: str, retry: bool, exit_code: int | None
) -> None:
    rec = record(name, facts)
    assert (rec.cause, rec.retry, rec.exit_code) == (cause, retry, exit_code)
    assert rec.advice == next(c.advice for c in CAUSES if c.name == cause)


def test_a_native_segfault_is_the_codes_not_qemus() -> None:
    assert record("qemu_segv.log", FAILED).cause == "build-error"


def test_host_or_engine_lost_comes_from_the_jobs_facts() -> None:
    for facts in (JobFacts(state="lost"), JobFacts(engine_gone=True)):
        rec = record("exit3.log", facts)
        assert (rec.cause, rec.retry) == ("host-or-engine-lost", True)
    rec = failure_record([], JobFacts(state="lost"))
    assert rec.cause == "host-or-engine-lost" and rec.step is None and rec.lines == ()


def test_buildx_dying_without_a_failing_step() -> None:
    rec = failure_record(lines_of(PROGRESS / "buildx_killed.log"), FAILED)
    assert rec.step is None and rec.cause == "buildx-died" and rec.retry is True


def test_a_user_signature_wins_over_matuis_own() -> None:
    mine = FailureSignature(r"bad address '[^']*\.invalid'", "test-host-typo", "fix the URL")
    rec = record("dns.log", signatures=[mine])
    assert (rec.cause, rec.advice, rec.retry) == ("test-host-typo", "fix the URL", False)
    other = FailureSignature(r"npm ERR!", "npm", "retry", retry=True)
    assert record("dns.log", signatures=[other]).cause == "network-failure"


def test_a_backtracking_user_signature_cannot_hang_the_record() -> None:
    evil = FailureSignature(r"(a+)+$", "evil", "none")
    log = ["#5 [2/2] RUN x", f"#5 0.1 {'a' * 40}b", "#5 ERROR: exit code: 1"]
    # Unbounded, this search takes about 2**40 steps; the per-line time limit ends it.
    rec = failure_record(log, FAILED, signatures=[evil])
    assert rec.cause == "build-error"


def test_the_runners_parser_is_asked_not_fed_again() -> None:
    lines = lines_of(FAILURES / "exit3.log")
    parser = ProgressParser()
    parser.feed_lines(lines)
    rec = failure_record(lines, FAILED, parser=parser)
    assert rec == record("exit3.log")


def test_record_json_has_the_issues_keys() -> None:
    data = record("exit3.log").to_json()
    for key in ("step", "stage", "dockerfile_line", "exit_code", "cause", "advice", "retry"):
        assert key in data
    assert data["lines"] == ["step output one", "step output two"]
    assert data["exit_code"] == 3


def test_a_retried_jobs_log_counts_only_the_last_attempt(tmp_path: Path) -> None:
    # Both attempts fail at #6; the first printed 13 lines there.
    first = (PROGRESS / "fail_with_output.log").read_bytes()
    second = (FAILURES / "exit3.log").read_bytes()
    path = tmp_path / "build.log"
    path.write_bytes(first + second)
    rec = failure_record(log_lines(path), FAILED)
    assert rec == record("exit3.log")
    assert rec.lines == ("step output one", "step output two")


def test_log_lines_reads_the_file_as_the_runner_decodes_it(tmp_path: Path) -> None:
    data = b"#1 a\n#1 0.1 \xff bad\r\n\n#1 DONE 0.0s\nno newline at the end"
    path = tmp_path / "build.log"
    path.write_bytes(data)
    assert list(log_lines(path)) == decode_lines(data)
    assert list(log_lines(tmp_path / "missing.log")) == []
