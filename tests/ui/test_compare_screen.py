"""The dashboard's compare screen (key ``v``) at 80x24 on a recorded two-arch run whose arm64
step failed: one row per step, the first diverging row marked and under the cursor, each arch's
bar in the row; ``enter`` shows that step's own output from both arches side by side; ``esc``
closes each. No host is dialled: the run is written to a private state directory."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from matui.engine.records import JobState, RunRecord
from matui.ui.app import MatuiApp
from matui.ui.compare_screen import CompareScreen, StepOutputScreen, column_widths
from tests.helpers.dashboard import REPO, fake_config, screen_text, settle, toasts, wait_for
from tests.helpers.records import job_record, staged_run

HEAD = [
    '#0 building with "default" instance using docker driver',
    "",
    "#1 [internal] load build definition from Dockerfile",
    "#1 DONE 0.0s",
    "",
    "#2 [1/3] FROM 127.0.0.1:5000/matui/busybox:1.35",
    "#2 CACHED",
    "",
    "#3 [2/3] RUN ./configure",
    "#3 0.100 checking for cc... cc",
]
AMD64 = [
    *HEAD,
    "#3 DONE 0.4s",
    "",
    "#4 [3/3] RUN make -j8 && ./selftest",
    "#4 1.000 selftest: all 42 passed on x86_64",
    "#4 DONE 1.2s",
    "",
    "#5 exporting to image",
    "#5 DONE 0.1s",
]
ARM64 = [
    *HEAD,
    "#3 DONE 1.6s",
    "",
    "#4 [3/3] RUN make -j8 && ./selftest",
    "#4 2.500 selftest: FAIL simd_roundtrip on aarch64 lane 3",
    "#4 ERROR: executor failed running [/bin/sh -c make -j8 && ./selftest]: exit code: 3",
    "ERROR: failed to solve: executor failed running [/bin/sh -c make]: exit code: 3",
]


def record_run(root: Path) -> RunRecord:
    jobs = [
        job_record(
            arch,
            REPO,
            state=state,
            seconds=seconds,
        )
        for arch, state, seconds in (
            ("amd64", JobState.SUCCEEDED, 2.0),
            ("arm64", JobState.FAILED, 4.5),
        )
    ]
    return staged_run(root, REPO, jobs, {"amd64": AMD64, "arm64": ARM64})


def test_column_widths_fill_the_table() -> None:
    name, bar = column_widths(76, 2)  # 80 columns less the border and padding
    assert (name, bar) == (21, 6)
    assert name + 2 * bar + 1 + 4 + 2 * 11 + 2 * 7 + 2 == 76
    name, bar = column_widths(200, 2)
    assert (name, bar) == (95, 31)
    assert column_widths(400, 2)[1] == 40  # bars stop at 40 columns; the name takes the rest
    assert column_widths(40, 4)[1] == 6  # never thinner than six columns a bar


async def test_compare_screen_at_80x24(tmp_path: Path) -> None:
    record = record_run(tmp_path)
    app = MatuiApp(fake_config(), probe_on_start=False, resume_on_start=False, state_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), "the compare screen")
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.record.id == record.id
        table = screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 5, "the compare table's rows")
        await settle(pilot)
        # The first row where the arches part ways is marked and under the cursor.
        assert table.cursor_row == 3
        row = [str(cell) for cell in table.get_row_at(3)]
        assert row[:5] == ["*", "#4", "[3/3] RUN make -j8 && ./selftest", "done 1.2s", "error 2.5s"]
        assert [str(cell) for cell in table.get_row_at(4)][3:5] == ["done 0.1s", "not reached"]
        # The bars: one axis (0 .. 2.5 s on arm64's side), arm64's slow configure step shows.
        amd64_bar, arm64_bar = (str(cell) for cell in table.get_row_at(2)[5:7])
        assert len(amd64_bar) == len(arm64_bar) and arm64_bar.count("█") > amd64_bar.count("█")
        assert table.max_scroll_x == 0  # every column fits 80 columns
        text = screen_text(app)
        assert "* parts ways at #4: arm64 error 2.5s; amd64 done 1.2s" in text
        assert "estimated from durations: amd64, arm64" in text
        assert "enter: the step's output" in text

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StepOutputScreen), "the step's output")
        await settle(pilot)
        columns = [str(s.render()) for s in app.screen.query(Static)]
        assert any("amd64: done 1.2s" in c and "all 42 passed" in c for c in columns), columns
        assert any("arm64: error 2.5s" in c and "FAIL simd_roundtrip" in c for c in columns)
        shown = screen_text(app)
        left = [line for line in shown.splitlines() if "all 42 passed" in line]
        right = [line for line in shown.splitlines() if "FAIL simd" in line]
        assert left and right  # both arches' lines on screen at once
        assert "checking for cc" not in shown  # another step's output
        assert "esc: back to the steps" in shown

        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back to the compare screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareScreen), "the dashboard")


async def test_compare_without_a_run_says_so(tmp_path: Path) -> None:
    app = MatuiApp(fake_config(), probe_on_start=False, resume_on_start=False, state_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("v")
        await wait_for(pilot, lambda: toasts(app), "a toast")
        assert toasts(app) == ["no run to compare yet: b builds"]
        assert not isinstance(app.screen, CompareScreen)
