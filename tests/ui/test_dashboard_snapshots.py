"""SVG snapshots of the dashboard (pytest-textual-snapshot), driven without a build.

Deterministic by construction: no run (so no clock and no run id in the title), documentation
addresses and made-up host names, fixed log lines, no notifications, and the look pinned
against the terminal the tests run in (colour system, MATUI_THEME, NO_COLOR, filters). Update
the baselines with ``pytest tests/ui/test_dashboard_snapshots.py --snapshot-update`` and look at
``snapshot_report.html`` before committing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import textual.constants
from textual.pilot import Pilot

from matui.engine.build.run import LinesEvent, StateEvent, StepChange
from matui.engine.flags import Flag
from matui.engine.publish import PublishPreview
from matui.engine.records import JobState, RunRecord
from matui.ui.app import MatuiApp
from matui.ui.screens import PublishScreen, QuitScreen
from tests.helpers.dashboard import (
    FOUR,
    REPO,
    TWO,
    buildx_lines,
    error_flag,
    fake_config,
    fake_jobs,
    fake_probes,
    info_flag,
    settle,
    warning_flag,
)

SnapCompare = Callable[..., bool]

SMALL = (80, 24)
LARGE = (200, 50)

DIGEST_AMD64 = "sha256:" + "3f1c9a7e" * 8
DIGEST_PPC64LE = "sha256:" + "b2d4e6f8" * 8


@pytest.fixture(autouse=True)
def pinned_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same colours and theme whatever terminal runs the tests: the app picks its ANSI
    theme on a 16-colour console (TERM, COLORTERM, TEXTUAL_COLOR_SYSTEM) or MATUI_THEME."""
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "truecolor")
    monkeypatch.setattr(textual.constants, "FILTERS", "")
    for name in ("MATUI_THEME", "NO_COLOR", "TEXTUAL_THEME"):
        monkeypatch.delenv(name, raising=False)


def failed_lines(arch: str) -> list[str]:
    return [
        *buildx_lines(arch, 40),
        f"#7 [{arch} 3/4] RUN make -j8",
        "#7 4.211 src/simd.c:88:5: error: unknown type name '__m256i'",
        "#7 4.298 make: *** [Makefile:31: obj/simd.o] Error 1",
        '#7 ERROR: process "/bin/sh -c make -j8" did not complete successfully: exit code: 2',
        "------",
        " > [3/4] RUN make -j8:",
        'ERROR: failed to solve: process "/bin/sh -c make -j8" did not complete successfully',
    ]


def succeeded_lines(arch: str) -> list[str]:
    return [
        *buildx_lines(arch, 60),
        "#9 exporting to image",
        "#9 pushing layers 0.4s done",
        f"#9 pushing manifest for {fake_jobs([arch])[0].ref} 0.1s done",
        "#9 DONE 0.6s",
    ]


async def stream(pilot: Pilot[int], logs: dict[str, list[str]]) -> None:
    """Each log in two batches a flush apart, as a build streams it.

    (All at once, a following pane's scrollbar thumb can stay at the top: the pane scrolls to
    the end before its scrollbar is shown, and Textual moves the thumb only when it is shown.
    Reported; the snapshots show the streaming case, which is deterministic.)
    """
    app = pilot.app
    assert isinstance(app, MatuiApp)
    for half in (0, 1):
        for arch, lines in logs.items():
            cut = len(lines) // 2
            part = lines[:cut] if half == 0 else lines[cut:]
            app.handle_event(LinesEvent(arch, 0 if half == 0 else cut, part))
        await settle(pilot)


def dashboard(arches: Sequence[str]) -> MatuiApp:
    return MatuiApp(fake_config(arches), probe_on_start=False, resume_on_start=False)


async def two_arches(pilot: Pilot[int]) -> None:
    """amd64 built; arm64 failed at its compile step; an info and an error flag."""
    app = pilot.app
    assert isinstance(app, MatuiApp)
    await app.show_jobs(fake_jobs(TWO))
    app.show_probes(fake_probes(TWO), [info_flag(), error_flag()])
    await stream(pilot, {"amd64": succeeded_lines("amd64"), "arm64": failed_lines("arm64")})
    app.handle_event(StateEvent("amd64", JobState.SUCCEEDED, DIGEST_AMD64))
    app.handle_event(StateEvent("arm64", JobState.FAILED, "exit 1 at #7 [3/4] RUN make -j8"))
    app.set_status("failed: arm64", "bad")  # no run object: the status a failed run shows
    await settle(pilot)


async def four_arches(pilot: Pilot[int]) -> None:
    """amd64 built, arm64 running a step, ppc64le failed, s390x queued under QEMU on amd64-1
    because its own host is unreachable; flags of every severity."""
    app = pilot.app
    assert isinstance(app, MatuiApp)
    await app.show_jobs(fake_jobs(FOUR, emulated=["s390x"], hosts={"s390x": "amd64-1"}))
    probes = fake_probes(FOUR)
    probes[3] = replace(
        probes[3],
        reachable=False,
        uname=None,
        native_arch=None,
        docker_version=None,
        docker_arch=None,
        buildx_version=None,
        free_bytes=None,
        error="ssh: connect to 192.0.2.13 port 22: timed out",
    )
    flags: list[Flag] = [warning_flag("s390x"), error_flag()]
    app.show_probes(probes, flags)
    app.handle_event(StateEvent("arm64", JobState.RUNNING, "pid 4242 on arm64-1"))
    app.handle_event(StepChange("arm64", "[3/4] RUN make -j8"))
    await stream(
        pilot,
        {
            "amd64": succeeded_lines("amd64"),
            "arm64": buildx_lines("arm64", 250),
            "ppc64le": failed_lines("ppc64le"),
        },
    )
    app.handle_event(StateEvent("amd64", JobState.SUCCEEDED, DIGEST_AMD64))
    app.handle_event(StateEvent("ppc64le", JobState.FAILED, "exit 1 at #7 [3/4] RUN make -j8"))
    app.set_status("building")
    await settle(pilot)


def test_two_arches_80x24(snap_compare: SnapCompare) -> None:
    """80x24 (tmux default), two arches: the hosts and flags strip on top, amd64 succeeded
    (digest in the subtitle), arm64 FAILED with a red frame and its error lines at the end,
    the flags panel with an error and an info flag (cut to the strip's height)."""
    assert snap_compare(dashboard(TWO), terminal_size=SMALL, run_before=two_arches)


def test_two_arches_200x50(snap_compare: SnapCompare) -> None:
    """200x50, two arches side by side right of the hosts and flags column: amd64 succeeded,
    arm64 FAILED (red frame, error lines), the error flag listed before the info one."""
    assert snap_compare(dashboard(TWO), terminal_size=LARGE, run_before=two_arches)


def test_four_arches_80x24(snap_compare: SnapCompare) -> None:
    """80x24, four arches in a 2x2 grid under the strip: amd64 succeeded, arm64 running (its
    step in the subtitle), ppc64le FAILED, s390x queued under QEMU on amd64-1; s390x-1 is
    UNREACHABLE and amd64-1 EMULATED in the hosts table."""
    assert snap_compare(dashboard(FOUR), terminal_size=SMALL, run_before=four_arches)


def test_four_arches_200x50(snap_compare: SnapCompare) -> None:
    """200x50, four arches in a 2x2 grid right of the side column, same states as at 80x24;
    every flag fits in the flags panel."""
    assert snap_compare(dashboard(FOUR), terminal_size=LARGE, run_before=four_arches)


def test_four_arches_zoomed_200x50(snap_compare: SnapCompare) -> None:
    """200x50, four arches with the failed ppc64le pane focused (tab tab) and zoomed (z): it
    fills the pane area, the others are hidden."""
    assert snap_compare(
        dashboard(FOUR), terminal_size=LARGE, run_before=four_arches, press=["tab", "tab", "z"]
    )


def test_two_arches_80x24_ansi_theme(
    snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch
) -> None:
    """80x24, the two-arch scene in the 16-colour ANSI theme the app picks on a 16-colour
    terminal (forced here with MATUI_THEME=ansi-dark): state still readable from text and
    frames alone."""
    monkeypatch.setenv("MATUI_THEME", "ansi-dark")
    assert snap_compare(dashboard(TWO), terminal_size=SMALL, run_before=two_arches)


def test_publish_blocked_80x24(snap_compare: SnapCompare) -> None:
    """80x24, the publish screen when an arch failed: red frame, NOT READY TO PUBLISH and the
    engine's reason, only esc offered."""

    async def run_before(pilot: Pilot[int]) -> None:
        await two_arches(pilot)
        reason = (
            "run 20261127-083000-a1b2c3: not pushing the index:\n"
            "  - arm64 is failed: #7 [3/4] RUN make -j8\n"
            "fix the cause and rebuild (`matui build`), then push again"
        )
        record = RunRecord(Path("/nonexistent"), "20261127-083000-a1b2c3", REPO, ["1.0"], [], [])
        preview = PublishPreview(record, None, None, (), (), reason)
        pilot.app.push_screen(PublishScreen(preview, push=None))
        await settle(pilot)

    assert snap_compare(dashboard(TWO), terminal_size=SMALL, run_before=run_before)


def test_quit_while_building_80x24(snap_compare: SnapCompare) -> None:
    """80x24, the quit question while two builds run: enter leaves them running (default),
    c cancels them, esc goes back."""

    async def run_before(pilot: Pilot[int]) -> None:
        await four_arches(pilot)
        pilot.app.push_screen(QuitScreen(["arm64", "s390x"]))
        await settle(pilot)

    assert snap_compare(dashboard(FOUR), terminal_size=SMALL, run_before=run_before)


def test_help_80x24(snap_compare: SnapCompare) -> None:
    """80x24, the help screen (?): every key with what it does."""
    assert snap_compare(dashboard(TWO), terminal_size=SMALL, run_before=two_arches, press=["?"])


@pytest.fixture
def standard_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16-colour terminal (TEXTUAL_COLOR_SYSTEM=standard): the app picks its ANSI theme."""
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "standard")
    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", "standard")


@pytest.mark.usefixtures("standard_colours")
def test_failed_build_80x24_standard_colours(snap_compare: SnapCompare) -> None:
    """80x24 in 16 colours, a failed build: the side panel collapsed to its one line (hosts
    ready, 1 error and 1 info flag, the error's kind), the focused amd64 pane in a heavy frame,
    the failed arm64 pane's error lines in view (no toast over them), cut lines ending in →,
    the title with image:tag, the footer keeping b m r e p ? q."""
    assert snap_compare(dashboard(TWO), terminal_size=SMALL, run_before=two_arches)


@pytest.mark.usefixtures("standard_colours")
def test_failed_build_focused_80x24_standard_colours(snap_compare: SnapCompare) -> None:
    """80x24 in 16 colours, the failed arm64 pane focused (tab): its frame turns heavy, so the
    focus shows without colour; the flags opened with p, their text wrapped across the width."""
    assert snap_compare(
        dashboard(TWO), terminal_size=SMALL, run_before=two_arches, press=["tab", "p"]
    )


@pytest.mark.usefixtures("standard_colours")
def test_help_80x24_standard_colours(snap_compare: SnapCompare) -> None:
    """80x24 in 16 colours, the help screen: the whole screen, scrollable (its subtitle says
    how), 1…9 on one row, nothing clipped at the sides."""
    assert snap_compare(dashboard(TWO), terminal_size=SMALL, run_before=two_arches, press=["?"])


def test_wrapped_80x24(snap_compare: SnapCompare) -> None:
    """80x24, w pressed: the failed arm64 pane's long buildx error lines wrap onto the next
    rows (no → at the edge), the frame's subtitle starts with "wrap"."""
    assert snap_compare(
        dashboard(TWO), terminal_size=SMALL, run_before=two_arches, press=["tab", "w"]
    )


def test_plan_before_build_120x40(snap_compare: SnapCompare) -> None:
    """120x40 before b: one dashed pane per planned arch, titled with its host and native or
    emulated (s390x under QEMU on amd64-1), the side panel a third of the width."""

    async def run_before(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, MatuiApp)
        app.show_probes(fake_probes(FOUR), [warning_flag("s390x")])
        jobs = fake_jobs(FOUR, emulated=["s390x"], hosts={"s390x": "amd64-1"})
        await app.show_jobs(jobs, planned=True)
        await settle(pilot)

    assert snap_compare(dashboard(FOUR), terminal_size=(120, 40), run_before=run_before)
