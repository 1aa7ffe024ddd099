"""A job's outcome is what its host says: the cancel's answer and the exit code decide, not the
request; the duration is the host's own wall time; a buildx that dies unexplained is quoted; one
build of an image per arch holds the host's lock. The scripts run on a real ``sh`` in a private
HOME; the decisions are the engine's own, fed what a host answers."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from matui.engine import shell
from matui.engine.build.run import BuildRun, NoteEvent, StateEvent, buildx_death_error
from matui.engine.flags import FlagKind, Severity, pushed_after_cancel_flags
from matui.engine.records import JobState, RunRecord
from tests.helpers.runs import feed
from tests.unit.test_events import DATA, make_run, queued

DIGEST = "sha256:0917a8d08ea9dd6dcbc78c26b4e637f0cb0025df60d82a1d40288554d1c78450"
METADATA = (DATA / "push_metadata.json").read_text()


def feed_log(run: BuildRun, name: str) -> None:
    feed(run, "amd64", (DATA / name).read_bytes())


# -- a buildx that dies without a step error --------------------------------------------------


def test_a_killed_buildx_shows_its_last_lines_not_just_its_exit_code(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    feed_log(run, "buildx_killed.log")
    status = run.status["amd64"]
    run._finish(status, run._logs["amd64"].parser, {"exit": "255"})
    assert status.state is JobState.FAILED
    assert status.error is not None
    assert status.error.startswith("buildx exited with 255; its last output: ")
    assert status.error.endswith("#5 0.525 tick 1 | #5 0.828 tick 2")
    assert RunRecord.load(run.record.dir).job("amd64").error == status.error


def test_buildx_s_own_last_words_are_quoted_before_step_output(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    feed_log(run, "synthetic_buildx_died.log")
    status = run.status["amd64"]
    assert run._logs["amd64"].parser.solve_error is None  # no ERROR: verdict to show
    run._finish(status, run._logs["amd64"].parser, {"exit": "1"})
    assert status.error is not None
    assert "failed to receive status: rpc error" in status.error
    assert "line 3" not in status.error  # buildx's own message, not the step's output


def test_buildx_death_error_when_nothing_was_printed() -> None:
    assert buildx_death_error(1, []) == "buildx exited with 1 and printed nothing"
    many = [f"msg {i}" for i in range(20)]
    assert buildx_death_error(2, many).endswith("msg 15 | msg 16 | msg 17 | msg 18 | msg 19")


# -- the outcome decides, not the request --------------------------------------------------------


def test_a_cancelled_job_that_finished_first_succeeds_with_its_digest(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    status = run.status["amd64"]
    run._cancelled.add("amd64")
    run._finish(status, run._logs["amd64"].parser, {"exit": "0", "metadata": METADATA})
    assert status.state is JobState.SUCCEEDED and status.digest == DIGEST
    events = queued(run)
    notes = [e.text for e in events if isinstance(e, NoteEvent)]
    assert any("the cancel came too late" in n and DIGEST in n for n in notes)
    (state,) = [e for e in events if isinstance(e, StateEvent)]
    assert "the cancel came too late" in state.detail
    saved = RunRecord.load(run.record.dir).job("amd64")
    assert saved.state is JobState.SUCCEEDED and saved.digest == DIGEST


def test_the_host_s_cancel_marker_and_a_non_zero_exit_make_it_cancelled(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    status = run.status["amd64"]
    run._cancelled.add("amd64")
    run._finish(status, run._logs["amd64"].parser, {"exit": "143", "cancelled": "1"})
    assert status.state is JobState.CANCELLED and status.digest is None


def test_a_build_that_exited_0_is_succeeded_even_with_the_marker(tmp_path: Path) -> None:
    """The TERM arrived after buildx had pushed and exited 0: the image is there."""
    run = make_run(tmp_path)
    status = run.status["amd64"]
    run._cancelled.add("amd64")
    outcome = {"exit": "0", "cancelled": "1", "metadata": METADATA}
    run._finish(status, run._logs["amd64"].parser, outcome)
    assert status.state is JobState.SUCCEEDED and status.digest == DIGEST


def test_a_cancel_request_without_the_host_s_marker_is_not_a_cancel(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    status = run.status["amd64"]
    run._cancelled.add("amd64")
    run._finish(status, run._logs["amd64"].parser, {"exit": "1"})
    assert status.state is JobState.FAILED


def test_the_duration_is_the_host_s_wall_time_also_after_a_reattach(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    status = run.status["amd64"]
    status.started = time.time() - 2  # as a reattach 2 s ago would have it
    outcome = {
        "exit": "0",
        "metadata": METADATA,
        "started": "1700000000.250000000",
        "ended": "1700000754.750000000",
    }
    run._finish(status, run._logs["amd64"].parser, outcome)
    assert status.seconds == pytest.approx(754.5)
    assert RunRecord.load(run.record.dir).job("amd64").seconds == pytest.approx(754.5)


def test_pushed_after_cancel_is_an_error_naming_the_tag_and_digest() -> None:
    ref = "registry.example/team/app:1.0-amd64"
    assert pushed_after_cancel_flags("1.0-amd64", ref, "sha256:old", "sha256:old") == []
    assert pushed_after_cancel_flags("1.0-amd64", ref, None, None) == []
    (flag,) = pushed_after_cancel_flags("1.0-amd64", ref, "sha256:old", DIGEST)
    assert flag.kind is FlagKind.TAG_OVERWRITE and flag.severity is Severity.ERROR
    assert ref in flag.message and DIGEST in flag.message and "cancelled" in flag.message


# -- the scripts, on a real sh --------------------------------------------------------------------


def run_script(
    script: shell.RemoteScript, home: Path, path: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {
        "HOME": str(home),
        "PATH": f"{path}:{os.environ['PATH']}" if path else os.environ["PATH"],
    }
    return subprocess.run(
        ["sh", "-c", script.wire()], capture_output=True, text=True, env=env, timeout=60
    )


def job_dir(home: Path, run_id: str = "r1", key: str = "amd64") -> Path:
    path = home / shell.job_dir(run_id, key)
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_cancel_answers_finished_for_a_build_that_ended_and_leaves_no_marker(
    tmp_path: Path,
) -> None:
    job = job_dir(tmp_path)
    (job / "pid").write_text("999999\n")
    (job / "exit").write_text("0\n")
    result = run_script(shell.cancel_script("r1", "amd64"), tmp_path)
    answer = shell.parse_cancel_answer(result.stdout)
    assert answer == shell.CancelAnswer("finished", 0)
    assert not (job / "cancelled").exists()


def test_cancel_answers_not_started_without_a_pid(tmp_path: Path) -> None:
    job_dir(tmp_path)
    result = run_script(shell.cancel_script("r1", "amd64"), tmp_path)
    assert shell.parse_cancel_answer(result.stdout).word == "not-started"


def test_cancel_stops_a_running_group_and_says_so(tmp_path: Path) -> None:
    job = job_dir(tmp_path)
    sleeper = subprocess.Popen(["setsid", "sh", "-c", "sleep 60 & sleep 60; wait"])
    try:
        (job / "pid").write_text(f"{sleeper.pid}\n")
        result = run_script(shell.cancel_script("r1", "amd64", grace=2), tmp_path)
        assert shell.parse_cancel_answer(result.stdout) == shell.CancelAnswer("stopped", 143)
        assert (job / "cancelled").exists() and (job / "exit").read_text().strip() == "143"
        assert float((job / "ended").read_text()) > 0
        sleeper.wait(timeout=10)  # the group's leader is our child: reap it, as init would
        alive = subprocess.run(["pgrep", "-g", str(sleeper.pid)], capture_output=True, text=True)
        assert alive.stdout.strip() == ""
    finally:
        sleeper.kill()
        sleeper.wait()


def test_parse_cancel_answer_of_nothing_is_unknown() -> None:
    assert shell.parse_cancel_answer("sh: cd: no such dir\n").word == "unknown"


def fake_docker(tmp_path: Path) -> Path:
    """A `docker` that builds nothing: it sleeps until a file appears, then exits 0."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(f"#!/bin/sh\nwhile [ ! -f {tmp_path}/release ]; do sleep 0.05; done\n")
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_one_build_of_an_image_per_arch_holds_the_host_s_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bin_dir = fake_docker(tmp_path)
    argv = ["docker", "buildx", "build", "--", "context"]
    name = shell.image_lock_name("registry.example/team/app", "linux/amd64")

    def launch(run_id: str, user: str) -> subprocess.CompletedProcess[str]:
        job_dir(home, run_id)
        lock = shell.ImageLock(name, user, "laptop-1", run_id, "amd64")
        return run_script(
            shell.launch_script(run_id, "amd64", argv, image_lock=lock), home, str(bin_dir)
        )

    first = launch("run-a", "alice")
    assert first.returncode == 0 and first.stdout.split()[0] == "started", first
    # Another run (another operator) of the same image and arch: nothing starts.
    second = launch("run-b", "bob")
    assert second.returncode == shell.IMAGE_BUSY
    holder = shell.ImageHolder.parse(name, second.stdout.partition("@@matui:image-busy\n")[2])
    assert (holder.user, holder.local_host, holder.run_id) == ("alice", "laptop-1", "run-a")
    assert holder.since.startswith("20") and holder.line().startswith("run run-a of alice@laptop-1")
    assert not (home / shell.job_dir("run-b", "amd64") / "pid").exists()
    # What `matui build` asks before uploading anything.
    status = run_script(shell.image_lock_status_script([name]), home)
    (held,) = shell.parse_image_holders(status.stdout)
    assert held.run_id == "run-a" and held.lock == name
    # Another arch, another image: free.
    other = shell.image_lock_name("registry.example/team/app", "linux/arm64")
    assert other != name
    assert (
        shell.parse_image_holders(run_script(shell.image_lock_status_script([other]), home).stdout)
        == []
    )
    # The build ends: the lock is free, and the job's stamps give its duration.
    (tmp_path / "release").touch()
    job = home / shell.job_dir("run-a", "amd64")
    deadline = time.monotonic() + 20
    while not (job / "exit").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (job / "exit").read_text().strip() == "0"
    assert float((job / "ended").read_text()) >= float((job / "started").read_text())
    deadline = time.monotonic() + 10
    while shell.parse_image_holders(
        run_script(shell.image_lock_status_script([name]), home).stdout
    ):
        assert time.monotonic() < deadline, "the lock stayed held after the build"
        time.sleep(0.05)
    third = launch("run-c", "bob")
    assert third.returncode == 0 and third.stdout.split()[0] == "started", third


def test_image_lock_names_are_plain_and_distinct() -> None:
    names = {
        shell.image_lock_name(repo, arch)
        for repo in ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a_b", "r.example/a/b")
        for arch in ("linux/amd64", "linux/arm64", "linux/arm/v7")
    }
    assert len(names) == 9
    for name in names:
        assert shell.check_name(name) == name


def test_a_resumed_finished_job_keeps_its_recorded_duration(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.record.update_job("amd64", state=JobState.SUCCEEDED, digest=DIGEST, seconds=12.5)
    resumed = BuildRun.resume(RunRecord.load(run.record.dir), run.config, run.pool)
    assert resumed.status["amd64"].seconds == 12.5
