"""On the rig, the issue's case: a two-arch build whose arm64 step exits 3 while amd64 builds.

The real dashboard in tmux (``i`` on the arm64 pane) shows the failure card — the step, the
step's own exit code 3 apart from buildx's 1, the cause, the step's own lines, the host — at
120x40 and, the window resized, at 80x24, scrolling to read it whole. Then, after the dashboard
has quit, ``matui attach --run ID`` resumes the finished run from its record: the text summary
prints the same card and ``--json`` the same failure record with its host facts, restored from
the record (not computed again from a live build).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.projects import ARM64_EXITS_3, make_project
from tests.helpers.rig import Rig
from tests.helpers.tmux import BUILD, Tmux
from tests.helpers.tmux import tmux as tmux  # the fixture: one tmux server

pytestmark = pytest.mark.rig

CARD_END = "esc closes"
SCROLLBAR = str.maketrans(dict.fromkeys("▁▂▃▄▅▆▇█▔▏▎▍▌▋▊▉", " "))


def _card(screen: str) -> str:
    """The card's rows of a captured screen, inside its frame, joined by one space (a wrapped
    value reads as one line again); empty when no card is open."""
    lines = screen.splitlines()
    top = next((i for i, line in enumerate(lines) if "Why arm64 failed" in line), None)
    if top is None:
        return ""
    title = lines[top].index("Why arm64 failed")
    left = lines[top].rindex("╭", 0, title)
    right = lines[top].index("╮", title)
    inside = []
    for line in lines[top:]:
        inside.append(line[left + 1 : right].translate(SCROLLBAR))
        if CARD_END in line:
            break
    return " ".join(" ".join(inside).split())


def _changed(tmux: Tmux, before: str) -> str:
    deadline = time.monotonic() + 5
    while (screen := tmux.screen()) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    return screen


def read_card(tmux: Tmux) -> str:
    """Open arm64's card (the pane must be focused) and read it whole, page by page."""
    tmux.keys("i")
    screen = tmux.wait(lambda s: CARD_END in s and "Why arm64" in s, "the card to open")
    seen = _card(screen)
    for _ in range(6):  # a card taller than the screen scrolls; at most a few pages
        if "boom one" in seen and "boom two" in seen:
            break
        tmux.keys("PageDown")
        screen = _changed(tmux, screen)
        seen += " " + _card(screen)
    return seen


def check_card(seen: str) -> None:
    step = re.search(r"step #\d+ (\[\d+/\d+\] RUN if \[)", seen)
    assert step is not None, seen  # the step's name as buildx prints it
    assert "exit code 3 (the step's own; buildx exited 1)" in seen, seen
    assert "cause build-error" in seen and "retry worth it no" in seen, seen
    assert "boom one" in seen and "boom two" in seen, seen  # the step's own lines
    assert "other step" not in seen, seen  # not another step's output
    assert "emu-1: declared amd64, native amd64, emulated (QEMU)" in seen, seen
    assert re.search(r"docker \S+ · buildx \S+ · [0-9.]+ [KMGT]iB free", seen), seen


def test_arm64_exit_3_card_in_the_dashboard_at_120x40_and_80x24_then_in_the_cli(
    rig: Rig, tmp_path: Path, tmux: Tmux
) -> None:
    config, _ = make_project(tmp_path, rig, ARM64_EXITS_3)
    state = tmp_path / "state"
    status = tmp_path / "exit-status"
    tmux.start_matui(config, state, status)
    tmux.keys("b")

    def ended(screen: str) -> bool:
        return (
            "arm64 · FAILED" in screen
            and "amd64 · succeeded" in screen
            and "failed" in screen.splitlines()[0]
        )

    screen = tmux.wait(ended, "amd64 built and arm64 failed", timeout=BUILD)
    # The failed pane's subtitle: the step's own exit code and the cause, in one line.
    assert re.search(r"exit 3 at \[.*· build-error", screen), screen

    tmux.keys("Tab")  # the first pane (amd64) has the focus: arm64 is the next
    at_120x40 = read_card(tmux)
    check_card(at_120x40)
    tmux.keys("Escape")
    tmux.wait(lambda s: CARD_END not in s, "the card to close")

    tmux.run("resize-window", "-t", tmux.session, "-x", "80", "-y", "24")
    tmux.wait(lambda s: len(s.splitlines()[0]) <= 80 and len(s.splitlines()) <= 24, "80x24")
    at_80x24 = read_card(tmux)
    check_card(at_80x24)
    tmux.keys("Escape")
    tmux.wait(lambda s: CARD_END not in s, "the card to close")
    tmux.keys("q")
    assert tmux.exit_status(status) == "0", tmux.screen()

    # The run, resumed from its record by the CLI: the same card, restored.
    (record_path,) = (state / "matui" / "runs").glob("*/run.json")
    run_id = record_path.parent.name
    saved = {job["arch"]: job for job in json.loads(record_path.read_text())["jobs"]}
    failure = saved["arm64"]["failure"]
    assert failure["exit_code"] == 3 and failure["buildx_exit"] == 1
    assert failure["host"] == saved["arm64"]["host_facts"]
    assert failure["host"]["emulated"] is True and failure["host"]["host"] == "emu-1"
    assert saved["amd64"]["host_facts"]["emulated"] is False and saved["amd64"]["failure"] is None

    text = run_matui("attach", "--config", config, "--run", run_id, state=state)
    assert text.returncode == 1, text.stderr
    card = " ".join(text.stdout[text.stdout.index("arm64 failed:") :].split())
    assert "exit code 3 (the step's own; buildx exited 1)" in card, text.stdout
    assert "cause build-error" in card and "retry worth it no" in card, text.stdout
    assert "host emu-1: declared amd64, native amd64, emulated (QEMU)" in card, text.stdout
    assert "| boom one" in card and "| boom two" in card, text.stdout
    assert "amd64 failed:" not in text.stdout

    doc = run_matui("attach", "--config", config, "--run", run_id, "--json", state=state)
    jobs = {job["arch"]: job for job in json.loads(doc.stdout)["jobs"]}
    after = {job["arch"]: job for job in json.loads(record_path.read_text())["jobs"]}
    assert jobs["arm64"]["failure"] == after["arm64"]["failure"]
    assert jobs["arm64"]["failure"]["lines"] == failure["lines"]
    assert jobs["arm64"]["host_facts"] == failure["host"]
    assert jobs["amd64"]["host_facts"]["host"] == "amd64-1"
