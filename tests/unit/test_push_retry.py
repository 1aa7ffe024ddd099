"""Which failed jobs get a push-only retry of their built image, how long each retry waits, what
an attempt's output says, and the remote script that makes one (:mod:`matui.engine.build.pushretry`,
:func:`matui.engine.shell.push_script`)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from matui.engine import shell
from matui.engine.build.failure import JobFacts, failure_record, log_lines
from matui.engine.build.pushretry import (
    PUSH_DELAY,
    PUSH_DELAY_CAP,
    PushAttempt,
    PushTarget,
    attempt_outcome,
    marker,
    push_delay,
    push_target,
)
from matui.engine.config import FailureSignature
from matui.engine.records import JobRecord

DATA = Path(__file__).parents[1] / "data"
FAILURES = DATA / "failures"
IMAGE = "sha256:a4f5e73f955fbd3fdf39954e5d26ba5189d6863b4218070dfc10c78cc84bae90"


def target_of(path: Path, ref: str, **facts: object) -> PushTarget | None:
    lines = list(log_lines(path))
    failure = failure_record(lines, JobFacts(**facts))  # type: ignore[arg-type]
    return push_target(failure, lines, ref)


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("synthetic_push_blob_unknown.log", "127.0.0.1:5000/matui/app:1.0-arm64"),
        ("synthetic_push_503.log", "registry.example.com/team/app:1.0-arm64"),
        ("push_refused.log", "127.0.0.1:5999/matui/pushfail:t"),  # recorded on the rig
    ],
)
def test_a_registry_failure_after_the_image_was_built_gets_a_push_retry(
    name: str, ref: str
) -> None:
    assert target_of(FAILURES / name, ref) == PushTarget(ref, IMAGE)


def test_a_job_log_recorded_on_the_rig_with_its_three_push_retries() -> None:
    """Recorded on the rig (tests/integration/test_push_retry.py, a proxy answering every
    manifest PUT with 400 BLOB_UNKNOWN): buildx's push failed, then matui's three push retries.
    The cause stays the registry's and the built image is still found (a resumed run decides
    the same), and each attempt's outcome is read from its own lines."""
    path = FAILURES / "push_blob_unknown_retried.log"
    text = path.read_text()
    ref = re.search(r"#[0-9]+ pushing (\S+) with docker", text)
    image = re.search(r"writing image (sha256:[0-9a-f]{64})", text)
    assert ref is not None and image is not None
    lines = list(log_lines(path))
    failure = failure_record(lines, JobFacts())
    assert (
        failure.cause == "registry-push-failed"
        and failure.step == f"pushing {ref.group(1)} with docker"
    )
    assert push_target(failure, lines, ref.group(1)) == PushTarget(ref.group(1), image.group(1))
    starts = [i for i, line in enumerate(lines) if line.startswith("@@matui push retry ")]
    assert len(starts) == 3
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        assert attempt_outcome(lines[start:end]) == (None, "blob unknown")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("exit3.log", "an ordinary build error"),
        ("killed137.log", "killed for memory"),
        ("no_platform.log", "the base image lacks the platform"),
        ("dns.log", "a fetch failed"),
        ("qemu_segv.log", "QEMU crashed"),
    ],
)
def test_build_failures_get_none(name: str, why: str) -> None:
    assert target_of(FAILURES / name, "127.0.0.1:5000/matui/app:1.0-arm64") is None, why


def test_a_wrong_arch_binary_gets_none() -> None:
    path = DATA / "progress" / "exec_format_error.log"
    assert target_of(path, "127.0.0.1:5000/matui/app:1.0-arm64") is None


def test_a_push_that_failed_before_the_image_was_written_gets_none(tmp_path: Path) -> None:
    """The same push failure, but the log never shows the image written (another driver's
    export, or a log read from the middle): there is nothing in the engine to push."""
    text = (FAILURES / "synthetic_push_blob_unknown.log").read_text()
    cut = tmp_path / "no_image.log"
    cut.write_text("\n".join(line for line in text.splitlines() if "writing image" not in line))
    assert target_of(cut, "127.0.0.1:5000/matui/app:1.0-arm64") is None


def test_another_refs_push_gets_none() -> None:
    path = FAILURES / "synthetic_push_blob_unknown.log"
    assert target_of(path, "127.0.0.1:5000/matui/app:1.0-amd64") is None


def test_a_lost_host_or_a_gone_engine_gets_none() -> None:
    path = FAILURES / "synthetic_push_blob_unknown.log"
    ref = "127.0.0.1:5000/matui/app:1.0-arm64"
    assert target_of(path, ref, state="lost") is None
    assert target_of(path, ref, engine_gone=True) is None


def test_a_user_signature_naming_another_cause_gets_none() -> None:
    path = FAILURES / "synthetic_push_blob_unknown.log"
    lines = list(log_lines(path))
    mine = FailureSignature(pattern="blob unknown", cause="our-registry", advice="call ops")
    failure = failure_record(lines, JobFacts(), signatures=[mine])
    assert failure.cause == "our-registry"
    assert push_target(failure, lines, "127.0.0.1:5000/matui/app:1.0-arm64") is None


def test_only_the_last_build_of_a_retried_job_counts() -> None:
    """A job retried as a whole: the second build failed before writing any image, so the
    first build's image is not the one to push."""
    first = (FAILURES / "synthetic_push_blob_unknown.log").read_text().splitlines()
    second = [
        '#0 building with "default" instance using docker driver',
        "",
        "#7 pushing 127.0.0.1:5000/matui/app:1.0-arm64 with docker",
        "#7 ERROR: blob unknown: blob unknown to registry",
    ]
    lines = first + second
    failure = failure_record(lines, JobFacts())
    assert push_target(failure, lines, "127.0.0.1:5000/matui/app:1.0-arm64") is None
    assert push_target(failure, first, "127.0.0.1:5000/matui/app:1.0-arm64") is not None


def test_the_wait_doubles_is_jittered_and_capped() -> None:
    for _ in range(200):
        assert PUSH_DELAY * 0.8 - 0.05 <= push_delay(1) <= PUSH_DELAY * 1.2 + 0.05
        assert PUSH_DELAY * 4 * 0.8 - 0.05 <= push_delay(3) <= PUSH_DELAY * 4 * 1.2 + 0.05
        assert push_delay(30) <= PUSH_DELAY_CAP * 1.2 + 0.05
    assert len({push_delay(2) for _ in range(50)}) > 1


def test_an_attempts_outcome_from_its_lines() -> None:
    digest = "sha256:" + "e" * 64
    pushed = [
        marker(1, 3, 2.2) + ": docker push r:1.0-arm64",
        "The push refers to repository [127.0.0.1:5000/matui/app]",
        "5b8c72934dfc: Layer already exists",
        f"1.0-arm64: digest: {digest} size: 942",
    ]
    assert attempt_outcome(pushed) == (digest, None)
    assert attempt_outcome(pushed[:-1]) == (None, "5b8c72934dfc: Layer already exists")
    failed = [
        marker(2, 3, 4.1) + ": docker push r:1.0-arm64",
        "5b8c72934dfc: Pushing",
        "blob unknown: blob unknown to registry",
        "ERROR: push retry 2/3 failed (exit 1): blob unknown: blob unknown to registry",
    ]
    assert attempt_outcome(failed) == (None, "blob unknown: blob unknown to registry")
    assert marker(2, 3, 4.1) == "@@matui push retry 2/3 after 4.1 s"


def test_an_attempt_is_ok_only_when_the_registry_serves_what_was_pushed() -> None:
    digest, other = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    attempt = PushAttempt(1, 3, 2.0, "r:t", IMAGE, 100, pid=42, exit_code=0, digest=digest)
    assert not attempt.ok  # not read back yet
    attempt.registry_digest = other
    assert not attempt.ok
    attempt.registry_digest = digest
    assert attempt.ok and not attempt.open
    assert PushAttempt.from_json(attempt.to_json()) == attempt
    assert PushAttempt(1, 3, 2.0, "r:t", IMAGE, 0, pid=7).open
    assert PushAttempt.from_json({"attempt": "x", "delay": None}).attempt == 0


def test_the_push_script() -> None:
    ref = "127.0.0.1:5000/matui/app:1.0-arm64"
    lock = shell.ImageLock("app-0123456789-linux-arm64", "me", "laptop", "run-1", "arm64")
    script = shell.push_script(
        "run-1", "arm64", ref, IMAGE, attempt=2, attempts=3, delay=4.1, image_lock=lock
    )
    text = script.script
    assert text.startswith('cd "$HOME" && cd .matui/runs/run-1/arm64 || exit 97\n')
    wire = script.wire()
    payload = re.search(r"printf %s (\S+) \|", wire)
    assert payload is not None and base64.b64decode(payload.group(1)).decode() == text
    # The push runs detached, as the build does, under the job's and the image's locks.
    assert "(exec setsid sh ./push.sh) </dev/null >/dev/null 2>&1 &" in text
    assert "flock -n 9" in text and "flock -n 8" in text
    assert 'echo "attached $(cat pid)"' in text and "started $(cat pid)" in text
    # What it appends to the log, and that it pushes only the image the job built.
    assert "@@matui push retry 2/3 after 4.1 s: docker push " + ref in text
    assert f"docker push -- {ref}" in text
    assert IMAGE in text and f"rc={shell.PUSH_NOT_BUILT}" in text
    assert "ERROR: push retry 2/3 failed (exit $rc): $last" in text
    # Never a build.
    assert "buildx" not in text


@pytest.mark.parametrize(
    ("ref", "image"),
    [
        ("r:t\nrm -rf ~", IMAGE),
        ("r:t", "sha256:not-a-digest; rm -rf ~"),
    ],
)
def test_the_push_script_refuses_bad_values(ref: str, image: str) -> None:
    with pytest.raises(shell.UnsafeValue):
        shell.push_script("run-1", "arm64", ref, image, attempt=1, attempts=3, delay=2)


def test_the_run_record_keeps_the_attempts() -> None:
    """A job's attempts go into the run record and come back, so a resumed run counts on; a
    hand-edited or older record without them reads as none."""
    attempt = PushAttempt(1, 3, 2.0, "r:t", IMAGE, 100, pid=42, exit_code=1, error="blob unknown")
    base = {"key": "arm64", "arch": "arm64", "platform": "linux/arm64", "host": "h"}
    base |= {"arch_tag": "1.0-arm64", "ref": "r:1.0-arm64"}
    saved = JobRecord.from_json({**base, "push_attempts": [attempt.to_json()]})
    assert [PushAttempt.from_json(a) for a in saved.push_attempts] == [attempt]
    assert JobRecord.from_json(json.loads(json.dumps(saved.to_json()))) == saved
    assert JobRecord.from_json(base).push_attempts == []
    assert JobRecord.from_json({**base, "push_attempts": None}).push_attempts == []
    assert JobRecord.from_json({**base, "push_attempts": ["x", 3]}).push_attempts == []
