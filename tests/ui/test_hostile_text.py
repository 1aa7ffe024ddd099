"""Host text with terminal escape sequences reaches the dashboard inert: probe answers (hosts
panel, flags panel), a failing context upload's stderr (the pane's title, the toasts), build
log lines, a failing step, a flag built from log evidence.

The real app under Pilot on the rig: sshd hosts whose sessions find fake tools first on their
PATH (:mod:`tests.helpers.hostile`) and real buildx builds printing the sequences raw. What
would reach the terminal is checked twice: the screen's text, row by row, and the exported SVG.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from matui.engine.config import load_config
from matui.ui.app import MatuiApp
from tests.helpers.dashboard import panes, screen_text, settle, toasts, wait_for
from tests.helpers.hostile import (
    HOSTILE,
    HostileHost,
    host_block,
    hostile_hosts,
    unsafe,
)
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

SIZE = (160, 45)

HOSTILE_DOCKERFILE = f"""\
ARG BASE
FROM ${{BASE}}
RUN printf '%s\\n' 'log {HOSTILE}' 'exec format error {HOSTILE}'
RUN if [ "$(uname -m)" = aarch64 ]; then echo 'fail {HOSTILE}'; exit 3; fi
"""


def assert_inert(app: MatuiApp) -> str:
    """What the terminal would get: no control character a terminal acts on."""
    text = screen_text(app)
    assert unsafe(text) == [], text
    assert unsafe(app.export_screenshot()) == []
    assert all(unsafe(message) == [] for message in toasts(app))
    return text


@pytest.fixture
def hostile(rig: Rig, tmp_path: Path) -> Iterator[dict[str, HostileHost]]:
    with hostile_hosts(rig, tmp_path) as made:
        yield made


def dashboard(config: Path, tmp_path: Path) -> MatuiApp:
    return MatuiApp(load_config(config), probe_on_start=False, state_root=tmp_path / "state")


async def test_probe_answers_reach_the_hosts_and_flags_panels_inert(
    rig: Rig, tmp_path: Path, hostile: dict[str, HostileHost]
) -> None:
    config = tmp_path / "matui.toml"
    config.write_text(
        host_block("broken", rig, hostile["broken"].sshd)
        + host_block("liar", rig, hostile["liar"].sshd)
    )
    app = dashboard(config, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("c")
        await wait_for(pilot, lambda: len(app.probes) == 2, "the probe", timeout=60)
        await settle(pilot)
        text = assert_inert(app)
        assert "clip clear csi8 dcs osc8 end" in text  # the broken engine's stderr
        assert "0.13.1" in text  # the liar's buildx version, in the hosts panel


async def test_a_failed_uploads_stderr_reaches_the_pane_title_inert(
    rig: Rig, tmp_path: Path, hostile: dict[str, HostileHost]
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    config = tmp_path / "matui.toml"
    config.write_text(
        host_block("upload", rig, hostile["upload"].sshd)
        + f"""
[[images]]
name = "{rig.registry}/hostile/upload"
tags = ["1.0"]
context = "ctx"
platforms = ["linux/amd64"]
build_args = {{ BASE = "{rig.base_image}" }}
"""
    )
    app = dashboard(config, tmp_path)
    # No toasts drawn: one would cover the pane's bottom edge, where the detail is.
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await wait_for(pilot, lambda: app.ended is not None, "the run's end", timeout=120)
        await settle(pilot)
        pane = panes(app)["amd64"]
        assert pane.state == "failed"
        assert pane.detail.startswith("context upload to upload failed: tar: clip clear")
        text = assert_inert(app)
        assert "context upload to upload failed: tar: clip" in text


async def test_log_lines_failing_steps_and_flags_reach_the_screen_inert(
    rig: Rig, tmp_path: Path
) -> None:
    config, _ = make_project(tmp_path, rig, HOSTILE_DOCKERFILE)
    app = dashboard(config, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await wait_for(pilot, lambda: app.ended is not None, "the run's end", timeout=240)
        await settle(pilot)
        views = panes(app)
        assert views["amd64"].state == "succeeded" and views["arm64"].state == "failed"
        for pane in views.values():
            store = pane.view.store
            lines = store.lines(0, len(store))
            assert all(unsafe(line) == [] for line in lines)
        amd64 = views["amd64"].view.store
        assert any("log clip clear csi8 dcs" in line for line in amd64.lines(0, len(amd64)))
        text = " ".join(assert_inert(app).split())
        assert "exec format error clip" in text  # the evidence flag, in the flags panel
