"""Quit the dashboard mid-build, leaving the build running on its host; start it again and it
finds the run in its records and reattaches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from matui.engine.config import load_config
from matui.engine.records import list_runs
from matui.ui.app import MatuiApp
from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd

pytestmark = pytest.mark.rig


async def wait_for(predicate: object, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.1)


def test_quit_mid_build_then_start_again_reattaches(rig: Rig, sshd: Sshd, tmp_path: Path) -> None:
    config = load_config(project(tmp_path, rig, sshd))
    state = tmp_path / "state"

    async def first_session() -> str:
        app = MatuiApp(config, state_root=state, probe_on_start=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("b")
            await wait_for(lambda: app.run_ is not None and len(app._pane("amd64").view.store) > 5)
            await wait_for(
                lambda: any(
                    "tick 2" in line
                    for line in app._pane("amd64").view.store.lines(
                        0, len(app._pane("amd64").view.store)
                    )
                )
            )
            await pilot.press("q")
            await pilot.pause()
            assert app.screen.__class__.__name__ == "QuitScreen"
            await pilot.press("enter")  # the default: leave it running on its host
            await pilot.pause()
        assert app.run_ is not None
        return app.run_.id

    run_id = asyncio.run(first_session())
    (record,) = list_runs(state)
    assert record.id == run_id and record.state == "running"

    async def second_session() -> tuple[str, str | None, int]:
        app = MatuiApp(config, state_root=state, probe_on_start=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(lambda: app.run_ is not None)
            assert app.run_ is not None and app.run_.id == run_id
            pane = app._pane("amd64")
            await wait_for(lambda: pane.state == "succeeded", timeout=90)
            await pilot.pause()
            return pane.state, app.run_.status["amd64"].digest, len(pane.view.store)

    pane_state, digest, lines = asyncio.run(second_session())
    assert pane_state == "succeeded" and digest
    (record,) = list_runs(state)
    assert record.state == "succeeded"
    text = record.log_path("amd64").read_text()
    assert lines == text.count("\n")  # the pane holds every line exactly once
    assert [ln for ln in text.splitlines() if "tick 12" in ln]
