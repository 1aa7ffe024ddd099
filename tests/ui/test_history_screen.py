"""The history screen (H) on staged run records: the rows, an old run opened read-only in the
dashboard's panes (its stored logs, replayed by the engine), build/retry/cancel/publish refused
while it is open, esc back to the current run (whose panes kept filling meanwhile), and d's
"what changed since the last green run"."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from matui.engine.build.run import LinesEvent
from matui.engine.history import arg_hash
from matui.engine.records import JobRecord, JobState, RunRecord, RunState
from matui.ui.app import MatuiApp
from matui.ui.history_screen import ChangesScreen, HistoryScreen
from matui.ui.widgets.arch_pane import ArchPane
from tests.helpers.dashboard import (
    REPO,
    buildx_lines,
    fake_config,
    fake_jobs,
    screen_text,
    settle,
    toasts,
    wait_for,
)
from tests.helpers.records import job_record

SIZE = (120, 40)
OLD = "20260101-000001-aaaaaa"
FAILED = "20260101-000002-bbbbbb"
SECRET = "s3cret-build-arg-value"


def _job(arch: str, state: str, dockerfile: str, **values: object) -> JobRecord:
    return job_record(
        arch,
        REPO,
        state=JobState(state),
        digest="sha256:" + "a" * 64 if state == "succeeded" else None,
        seconds=12.0,
        inputs={
            "base_images": {"busybox:1.35": "sha256:" + "b" * 64},
            "build_args": {"TOKEN": arg_hash(SECRET + dockerfile)},
            "dockerfile": "Dockerfile",
            "dockerfile_sha256": "sha256:" + dockerfile * 64,
        },
        **values,
    )


def _stage(root: Path) -> None:
    """A green run (both arches) and a later one where arm64 failed after an edit."""
    old = RunRecord.create(
        root,
        image=REPO,
        tags=["1.0"],
        platforms=["linux/amd64", "linux/arm64"],
        jobs=[_job("amd64", "succeeded", "1"), _job("arm64", "succeeded", "1")],
        run_id=OLD,
        created=1_000.0,
        state=RunState.SUCCEEDED,
    )
    for arch, count in (("amd64", 30), ("arm64", 45)):
        old.log_path(arch).write_text("\n".join(buildx_lines(arch, count)) + "\n")
    failed = RunRecord.create(
        root,
        image=REPO,
        tags=["1.0"],
        platforms=["linux/amd64", "linux/arm64"],
        jobs=[
            _job("amd64", "succeeded", "2"),
            _job("arm64", "failed", "2", failing_step="#6 [3/3] RUN make", exit_code=1),
        ],
        run_id=FAILED,
        created=2_000.0,
        state=RunState.FAILED,
    )
    for arch in ("amd64", "arm64"):
        failed.log_path(arch).write_text("\n".join(buildx_lines(arch, 5)) + "\n")


def _app(tmp_path: Path) -> MatuiApp:
    root = tmp_path / "state"
    _stage(root)
    return MatuiApp(fake_config(), probe_on_start=False, resume_on_start=False, state_root=root)


def _visible(app: MatuiApp) -> dict[str, ArchPane]:
    """The panes on show, by id; an old run's as ``old-ARCH``."""
    return {
        f"old-{p.arch}" if p.has_class("-read-only") else p.id or "": p
        for p in app.query(ArchPane)
        if p.display
    }


async def test_open_an_old_run_read_only_then_esc_returns(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        # the current run: two panes with a few lines each
        await app.show_jobs(fake_jobs())
        for pane in app.query(ArchPane):
            pane.view.add_lines(["current line 1", "current line 2"])
        await settle(pilot)

        await pilot.press("H")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")
        assert isinstance(app.screen, HistoryScreen)
        assert [row.run for row in app.screen.rows] == [FAILED, OLD]
        text = screen_text(app)
        assert "failed   arm64@#6 [3/3] RUN make" in text
        assert "built" in text and "amd64 12s" in text
        await pilot.press("down", "enter")  # the older, green run
        await wait_for(pilot, lambda: app.viewing is not None, "the old run opened")
        old = {p.arch: p for p in app.viewing.panes.values()} if app.viewing else {}
        await wait_for(
            pilot,
            lambda: len(old["amd64"].view.store) == 30 and len(old["arm64"].view.store) == 45,
            "the old run's stored lines in its panes",
        )
        await settle(pilot)
        assert set(_visible(app)) == {"old-amd64", "old-arm64"}
        title = screen_text(app).splitlines()[0]
        assert f"read-only: run {OLD}, " in title
        assert "#5 0.572 cc -O2" in screen_text(app)  # arm64's last line: it follows its end

        def refused(what: str) -> bool:
            return any(t.startswith(f"{what}: not on an old run") for t in toasts(app))

        for key, what in (("b", "build"), ("r", "retry"), ("x", "cancel"), ("m", "publish")):
            await pilot.press(key)
            await wait_for(pilot, partial(refused, what), f"{key} refused")
        assert app.run_ is None  # nothing was started

        # a live build goes on into the hidden current panes meanwhile
        app.handle_event(LinesEvent("amd64", 2, ["live while viewing"]))

        await pilot.press("escape")
        await wait_for(pilot, lambda: app.viewing is None, "back to the current run")
        await settle(pilot)
        assert set(_visible(app)) == {"pane-amd64", "pane-arm64"}
        assert not list(app.query(".-read-only"))
        assert "read-only" not in screen_text(app).splitlines()[0]
        assert len(app.query_one("#pane-amd64", ArchPane).view.store) == 3
        assert "live while viewing" in screen_text(app)


async def test_history_d_shows_what_changed_since_green_hashes_only(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("H")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")
        await pilot.press("d")  # the newest run; no pane focused: its failed arch, arm64
        await wait_for(pilot, lambda: isinstance(app.screen, ChangesScreen), "what changed")
        text = screen_text(app)
        assert f"arm64: 2 changes since green run {OLD}" in text
        assert "Dockerfile sha256" in text and "build arg TOKEN" in text
        assert arg_hash(SECRET + "2") in text and SECRET not in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "back to history")
        await pilot.press("down", "d")  # the green run (no failed arch: its first) has none
        await wait_for(pilot, lambda: isinstance(app.screen, ChangesScreen), "what changed")
        assert "no earlier green run of amd64" in screen_text(app)
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HistoryScreen), "closed")
        assert app.viewing is None


async def test_opening_another_old_run_replaces_the_first_and_esc_still_returns(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.show_jobs(fake_jobs())
        await settle(pilot)
        await pilot.press("H")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.viewing is not None and app.viewing.id == OLD, OLD)
        await pilot.press("H")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")
        await pilot.press("enter")  # the newest: the failed run
        await wait_for(pilot, lambda: app.viewing is not None and app.viewing.id == FAILED, FAILED)
        panes = app.viewing.panes if app.viewing else {}
        await wait_for(
            pilot, lambda: all(len(p.view.store) == 5 for p in panes.values()), "its lines"
        )
        await settle(pilot)
        assert sorted(p.state for p in _visible(app).values()) == ["failed", "succeeded"]
        assert f"read-only: run {FAILED}, " in screen_text(app).splitlines()[0]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.viewing is None, "back to the current run")
        await settle(pilot)
        assert set(_visible(app)) == {"pane-amd64", "pane-arm64"}
        assert len(list(app.query(ArchPane))) == 2
