"""Ctrl-C on ``matui attach`` detaches (the builds go on, as when the dashboard quits), and
``matui cancel`` stops builds a detached matui left on their hosts, printing what each host
answered; a cancel that cannot be delivered exits non-zero.

On the rig, each test with its own private sshd (``sshd`` fixture) and state directory. A build
is left running on its host the way an operator leaves it: ``matui build`` killed (no chance to
cancel) once the build is logging.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from matui.engine.records import RunRecord, list_runs
from tests.helpers.cli import read_until, run_matui, spawn_matui
from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd

pytestmark = pytest.mark.rig


def left_running(config: Path, state: Path) -> RunRecord:
    """``matui build`` started and killed at its second tick: the build goes on on its host."""
    build = spawn_matui("build", "--config", config, state=state)
    try:
        seen = read_until(build, "tick 2")
        assert any("tick 2" in line for line in seen), "".join(seen)[-2000:]
    finally:
        build.kill()
        build.wait(timeout=30)
    (record,) = list_runs(state / "matui")
    assert record.jobs[0].pid is not None
    return record


def test_ctrl_c_on_attach_detaches_and_the_build_goes_on_to_finish(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    config = project(tmp_path, rig, sshd, ticks=16)  # 8 s
    state = tmp_path / "state"
    record = left_running(config, state)

    attach = spawn_matui("attach", record.id, "--config", config, state=state)
    try:
        read_until(attach, "== running reattaching")  # following it live now
        attach.send_signal(signal.SIGINT)
        out, _ = attach.communicate(timeout=60)
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait()
    assert attach.returncode == 1, out[-2000:]
    assert f"detached from run {record.id}; its builds go on on their hosts" in out
    assert f"`matui attach --run {record.id}`" in out and f"`matui cancel --run {record.id}`" in out
    assert "cancelling" not in out and "cancelled" not in out

    # Not cancelled: followed again, the build runs to its end and succeeds.
    again = run_matui("attach", "--run", record.id, "--config", config, state=state, timeout=180)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert any(line.endswith(" tick 16") for line in again.stdout.splitlines())
    assert "succeeded" in again.stdout
    assert str(RunRecord.load(record.dir).jobs[0].state) == "succeeded"


def test_matui_cancel_stops_a_detached_build_and_says_what_the_host_answered(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    config = project(tmp_path, rig, sshd, ticks=240)  # 2 minutes
    state = tmp_path / "state"
    record = left_running(config, state)

    cancel = run_matui("cancel", "--config", config, state=state, timeout=120)
    assert cancel.returncode == 0, cancel.stdout[-2000:] + cancel.stderr[-2000:]
    assert "amd64 on h: cancelled; the host answered: stopped (exit " in cancel.stdout
    assert f"asking the hosts to stop amd64 of run {record.id}" in cancel.stderr
    final = RunRecord.load(record.dir)
    assert str(final.jobs[0].state) == "cancelled" and str(final.state) == "cancelled"
    # The host's word: the job's exit file and cancel marker, on the host.
    job_dir = rig.host_job_dir(record.id)
    assert (job_dir / "cancelled").is_file() and (job_dir / "exit").is_file()

    # Nothing left to cancel: said, exit 0; an arch the run does not have: a usage error.
    again = run_matui("cancel", "--run", record.id, "--config", config, state=state)
    assert again.returncode == 0, again.stderr
    assert "amd64 on h: already cancelled; nothing to cancel" in again.stdout
    wrong = run_matui(
        "cancel", "--run", record.id, "--arch", "s390x", "--config", config, state=state
    )
    assert wrong.returncode == 2
    assert f"--arch s390x: run {record.id} has no such arch (it has: amd64)" in wrong.stderr


def test_a_cancel_that_cannot_be_delivered_exits_non_zero_and_can_be_sent_again(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    config = project(tmp_path, rig, sshd, ticks=240)
    state = tmp_path / "state"
    record = left_running(config, state)
    sshd.stop()  # this test's own sshd: the host cannot be reached; the build goes on
    try:
        cancel = run_matui("cancel", "--config", config, state=state, timeout=300)
    finally:
        sshd.start()
    assert cancel.returncode == 1, cancel.stdout[-2000:] + cancel.stderr[-2000:]
    # Lost, whichever gives up first: the cancel's own attempts ("the cancel could not be
    # delivered to h ...") or the follow that reattached to send it ("lost the connection to
    # h ..."); both were seen, and either way the host's answer is none.
    assert "amd64 on h: lost (" in cancel.stdout
    assert "could not be delivered to h" in cancel.stdout or "connection to h" in cancel.stdout
    assert "the host answered: nothing: the cancel did not reach it" in cancel.stdout
    assert "not every build is known to have stopped" in cancel.stderr
    assert str(RunRecord.load(record.dir).jobs[0].state) == "lost"

    # The host answers again: the lost job is asked again, and stopped.
    again = run_matui("cancel", "--run", record.id, "--config", config, state=state, timeout=120)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "amd64 on h: cancelled" in again.stdout and "answered: stopped" in again.stdout
    assert str(RunRecord.load(record.dir).jobs[0].state) == "cancelled"


def test_build_help_says_ctrl_c_cancels_and_attach_help_says_it_detaches() -> None:
    build = run_matui("build", "--help")
    text = " ".join(build.stdout.split())
    assert "Ctrl-C CANCELS the builds" in text
    attach = run_matui("attach", "--help")
    assert "Ctrl-C DETACHES: the builds go on" in " ".join(attach.stdout.split())
    cancel = run_matui("cancel", "--help")
    assert "--run" in cancel.stdout and "--arch" in cancel.stdout
