"""The dashboard on the rig, a push the registry rejects once: the arch's pane shows the push
retry in its log (the line the engine wrote into the job's log) and ends succeeded with the
digest read back; the run is ready to publish. Nothing here is drawn by the dashboard itself:
the line comes through the ordinary log path."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from matui.engine.config import load_config
from matui.ui.app import MatuiApp
from tests.helpers.dashboard import panes, settle, wait_for
from tests.helpers.projects import make_project
from tests.helpers.registry_proxy import RegistryProxy
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "built on $(uname -m)" > /built
"""


async def test_the_pane_shows_the_push_retry_and_the_arch_succeeds(
    rig: Rig, tmp_path: Path
) -> None:
    with RegistryProxy(rig.registry) as proxy:
        path = f"push-retry/ui{secrets.token_hex(4)}"
        config, _ = make_project(tmp_path, rig, DOCKERFILE, repo=f"{proxy.address}/{path}")
        app = MatuiApp(load_config(config), probe_on_start=False, state_root=tmp_path / "state")
        with proxy.misbehaving(reject_repo=path, reject_puts=1) as rules:
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.press("b")
                await wait_for(
                    pilot,
                    lambda: app.status_text.startswith(("built", "failed", "cannot")),
                    "the run's end",
                    timeout=240,
                )
                await settle(pilot)
                assert app.status_text.startswith("built"), app.status_text
                assert rules.rejected_puts == 1
                assert app.run_ is not None
                (retried,) = [s for s in app.run_.status.values() if s.push_attempts]
                pane = panes(app)[retried.job.arch]
                assert pane.state == "succeeded"
                store = pane.view.store
                lines = [store.line(i) for i in range(len(store))]
                (line,) = [x for x in lines if x.startswith("@@matui push retry 1/3 after ")]
                assert lines.index(line) > max(i for i, x in enumerate(lines) if "ERROR" in x)
                assert any(f"digest: {retried.digest} size:" in x for x in lines)
