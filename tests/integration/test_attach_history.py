"""`matui attach` replays what was already received before following: a build left running by a
killed `matui build` prints its history, then the live lines, every line once, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.records import list_runs
from matui.engine.text import decode_lines
from tests.helpers.cli import read_until, run_matui, spawn_matui
from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd

pytestmark = pytest.mark.rig


def test_attach_prints_the_history_then_the_live_lines_once_each_in_order(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    config = project(tmp_path, rig, sshd)  # 12 ticks over 6 s
    build = spawn_matui("build", "--config", config, state=tmp_path / "state")
    read_until(build, "tick 3")
    build.kill()  # no chance to cancel: the build goes on on its host
    build.wait(timeout=30)
    (record,) = list_runs(tmp_path / "state" / "matui")
    received = record.log_path("amd64").read_bytes()
    history = decode_lines(received[: received.rfind(b"\n")])
    assert any(line.endswith("tick 3") for line in history)

    attach = run_matui(
        "attach",
        "--config",
        config,
        state=tmp_path / "state",
        env={"PYTHONUNBUFFERED": "1"},
        timeout=180,
    )
    assert attach.returncode == 0, attach.stdout[-2000:] + attach.stderr[-2000:]
    out = attach.stdout.splitlines()
    printed = [ln[len("[amd64] ") :] for ln in out if ln.startswith("[amd64] ")]
    logged = [ln for ln in printed if not ln.startswith("== ")]
    # Every line of the job's log (as the engine decodes it), once, in order...
    (record,) = list_runs(tmp_path / "state" / "matui")
    assert logged == decode_lines(record.log_path("amd64").read_bytes().rstrip(b"\n"))
    ticks = [ln.rsplit(" ", 1)[-1] for ln in logged if ln.split(" ", 2)[-1].startswith("tick ")]
    assert ticks == [str(i) for i in range(1, 13)]
    # ...the history first: printed before the run is followed again.
    assert logged[: len(history)] == history
    reattached = printed.index(next(ln for ln in printed if ln.startswith("== running")))
    assert printed[:reattached] == history
