"""The dashboard shows the pre-flight's refusal of a Dockerfile whose FROM has no image for a
planned platform: b starts nothing, the title and the flags panel name the FROM and the
platform. The real app under Pilot on the rig."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.config import load_config
from matui.ui.app import MatuiApp
from matui.ui.widgets.panels import FlagsPanel
from tests.helpers.bases import amd64_only
from tests.helpers.dashboard import settle, wait_for
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo hello
"""


async def test_b_on_a_base_without_arm64_is_refused_naming_the_from(
    rig: Rig, tmp_path: Path
) -> None:
    base = amd64_only(rig, index=True)
    config, _ = make_project(tmp_path, rig, DOCKERFILE)
    config.write_text(config.read_text().replace(rig.base_image, base))
    app = MatuiApp(load_config(config), probe_on_start=False, state_root=tmp_path / "state")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("b")
        await wait_for(pilot, lambda: app.refusal is not None, "the refusal", timeout=120)
        await settle(pilot)
        assert app.run_ is None
        assert app.status_text.startswith(
            f"refused: base-image linux/arm64: Dockerfile:2 FROM ${{BASE}} → {base} has no "
            "linux/arm64 image (index lists linux/amd64)"
        )
        panel = " ".join(str(app.query_one(FlagsPanel).render()).split())
        assert f"ERROR base-image linux/arm64: Dockerfile:2 FROM ${{BASE}} → {base}" in panel
    assert not (tmp_path / "state" / "matui" / "runs").exists()
