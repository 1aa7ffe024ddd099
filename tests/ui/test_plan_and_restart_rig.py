"""On the rig: the plan's panes before ``b`` (from the real probe), and a restarted dashboard
opening the last finished run from its record, so ``r`` retries and ``m`` publishes it.

Real SSH builder hosts (amd64-1 native, emu-1 building arm64 under QEMU), real buildx builds, a
real registry; each test has its own project, repository and state dir.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.ui.screens import PublishScreen
from tests.helpers.dashboard import panes, screen_text, settle, toasts, wait_for
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig
from tests.ui.test_dashboard_rig import (
    BUILD,
    DOCKERFILE,
    PUSH,
    RETRY_DOCKERFILE,
    SIZE,
    dashboard,
    served,
    states,
    until_status,
)

pytestmark = pytest.mark.rig


async def test_the_plan_shows_before_b_then_b_builds_into_its_panes(
    rig: Rig, tmp_path: Path
) -> None:
    config, _ = make_project(tmp_path, rig, DOCKERFILE)
    app = dashboard(tmp_path, config, probe=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: len(panes(app)) == 2, "the plan's panes", timeout=60)
        await settle(pilot)
        assert states(app) == {"amd64": "planned", "arm64": "planned"}
        text = screen_text(app)
        assert "amd64 · native on amd64-1" in text
        assert "arm64 · emulated on emu-1" in text
        assert app.run_ is None
        await pilot.press("b")
        await until_status(pilot, app, "built", "the build")
        assert states(app) == {"amd64": "succeeded", "arm64": "succeeded"}
        await settle(pilot)
        assert "arm64 · succeeded · emu-1 (QEMU)" in screen_text(app)


async def test_after_a_restart_the_failed_run_is_opened_and_r_retries_it(
    rig: Rig, tmp_path: Path
) -> None:
    config, _ = make_project(tmp_path, rig, RETRY_DOCKERFILE, files={"verdict": b"fail\n"})
    first = dashboard(tmp_path, config)
    async with first.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await until_status(pilot, first, "failed: arm64", "arm64 to fail")
        assert first.run_ is not None
        run_id = first.run_.id
        await settle(pilot)
        # The failure is in the title and the pane's frame, not in a toast over its lines;
        # what to do next is kept in the messages.
        assert not [t for t in toasts(first) if "failed" in t]
        assert any("e jumps to the error, r retries" in m.plain for m in first.messages)
        await pilot.press("q")

    again = dashboard(tmp_path, config)
    async with again.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: again.run_ is not None, "the last run opened", timeout=30)
        assert again.run_ is not None and again.run_.id == run_id
        await wait_for(
            pilot,
            lambda: len(panes(again)["arm64"].view.store) > 0,
            "the stored log replayed",
            timeout=30,
        )
        await settle(pilot)
        assert states(again) == {"amd64": "succeeded", "arm64": "failed"}
        assert again.status_text.startswith("failed: arm64")
        title = screen_text(again).splitlines()[0]
        assert f"run {run_id}" in title and "/build-test/app" in title
        assert any(f"run {run_id}" in t and "r retries" in t for t in toasts(again))
        arm = panes(again)["arm64"]
        arm.view.focus()
        await pilot.press("e")
        await settle(pilot)
        assert arm.view.highlight_line is not None
        lines = [arm.view.store.line(i) for i in range(len(arm.view.store))]
        assert any("boom: arm64 says no" in line for line in lines)

        # r retries the opened run's arm64: the same run, a new attempt after a separator.
        (tmp_path / "ctx" / "verdict").write_text("ok\n")
        await pilot.press("r")
        # r offers the retries that fit the cause; enter takes the first (the same host).
        await wait_for(pilot, lambda: len(again.screen_stack) > 1, "the retry choices")
        await pilot.press("enter")
        await until_status(pilot, again, "blocked: source-mismatch arm64", "the retry", BUILD)
        assert states(again) == {"amd64": "succeeded", "arm64": "succeeded"}
        assert again.run_.id == run_id
        lines = [arm.view.store.line(i) for i in range(len(arm.view.store))]
        sep = lines.index("@@matui attempt 2: retry on host emu-1")  # the engine's marker
        # The step's own output (not buildx echoing the RUN line): in attempt 1 only.
        assert any(line.endswith(" boom: arm64 says no") for line in lines[:sep])
        assert not any(line.endswith(" boom: arm64 says no") for line in lines[sep:])
        arm.view.scroll_to(y=sep, animate=False, immediate=True)
        await settle(pilot)
        assert "── attempt 2: retry on host" in screen_text(again)  # drawn as a separator


async def test_after_a_restart_the_built_run_is_opened_and_m_publishes_it(
    rig: Rig, tmp_path: Path
) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    first = dashboard(tmp_path, config)
    async with first.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await until_status(pilot, first, "built", "the build")
        assert first.run_ is not None
        run_id = first.run_.id
        built = {str(s.job.platform): s.digest for s in first.run_.status.values()}
        await pilot.press("q")

    again = dashboard(tmp_path, config)
    async with again.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: again.run_ is not None, "the last run opened", timeout=30)
        assert again.run_ is not None and again.run_.id == run_id
        await until_status(pilot, again, "built: ready to publish", "the verdict", 30)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(again.screen, PublishScreen), "publish screen")
        screen = again.screen
        assert isinstance(screen, PublishScreen)
        await wait_for(pilot, lambda: screen.state == "confirm", "the preview", timeout=60)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.state == "done", "the push", timeout=PUSH)
        assert served(f"{repo}:1.0")[1] == built

    # Published: a third start opens nothing (the plan or the placeholder only).
    third = dashboard(tmp_path, config)
    async with third.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(
            pilot,
            lambda: not [w for w in third.workers if w.group == "build" and not w.is_finished],
            "the start-up look at earlier runs to end",
        )
        assert third.run_ is None
