"""A run's flags belong to the run: probing the hosts again (``c``) changes the hosts' flags,
never the run's, and the title keeps the run's verdict (the engine's). A reason shown in a toast
is kept in the flags panel's messages.

The real app under Pilot on the rig: the emu host builds arm64 under QEMU (an EMULATED warning);
a per-arch tag holding an index refuses the build (a blocking tag-overwrite error).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from textual.pilot import Pilot

from matui.engine.config import load_config
from matui.ui.app import MatuiApp
from matui.ui.widgets.panels import FlagsPanel
from tests.helpers.dashboard import screen_text, settle, wait_for
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

SIZE = (140, 45)

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"
"""


def dashboard(tmp_path: Path, config: Path) -> MatuiApp:
    return MatuiApp(load_config(config), probe_on_start=False, state_root=tmp_path / "state")


def flat(app: MatuiApp) -> str:
    return " ".join(screen_text(app).split())


def panel_text(app: MatuiApp) -> str:
    return " ".join(str(app.query_one(FlagsPanel).render()).split())


async def probe_again(pilot: Pilot[int], app: MatuiApp) -> None:
    app.probes = []
    await pilot.press("c")
    await wait_for(pilot, lambda: len(app.probes) == 2, "the probe", timeout=60)
    await settle(pilot)


async def test_probing_again_keeps_an_emulated_runs_flags_and_verdict(
    rig: Rig, tmp_path: Path
) -> None:
    config, _ = make_project(tmp_path, rig, DOCKERFILE)
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await wait_for(pilot, lambda: app.ended is not None, "the run's end", timeout=240)
        await settle(pilot)
        assert app.run_ is not None
        verdict = app.run_.verdict()
        assert app.status_text == verdict.line() == "built: ready to publish"
        warning = "linux/arm64 builds on emu-1 (amd64) under QEMU emulation"
        assert warning in panel_text(app)
        # The toast's reason is kept where the operator can read it later.
        assert "every arch built; m publishes the index" in panel_text(app)

        await probe_again(pilot, app)
        assert warning in panel_text(app)  # still the run's
        assert app.run_flags and any("QEMU" in f.message for f in app.run_flags)
        assert app.status_text == verdict.line()
        assert "built: ready to publish" in flat(app)


async def test_probing_again_keeps_a_refused_builds_error_and_reason(
    rig: Rig, tmp_path: Path
) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    # The classic single-arch-over-list: the per-arch tag already holds an index.
    subprocess.run(
        ["docker", "buildx", "imagetools", "create", "--tag", f"{repo}:1.0-arm64", rig.base_image],
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_HOST": rig.docker_host},
    )
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await wait_for(pilot, lambda: app.refusal is not None, "the refusal", timeout=120)
        await settle(pilot)
        assert app.run_ is None
        assert app.status_text.startswith("refused: tag-overwrite 1.0-arm64: ")
        assert "ERROR tag-overwrite 1.0-arm64:" in panel_text(app)
        assert "not starting the build" in panel_text(app)  # the toast, kept

        await probe_again(pilot, app)
        assert app.status_text.startswith("refused: tag-overwrite 1.0-arm64: ")
        assert "ready: press b to build" not in flat(app)
        assert "ERROR tag-overwrite 1.0-arm64:" in panel_text(app)
