"""The dashboard shows what a builder did for a job, under Pilot with no host: a job pushed by
digest through a kubernetes builder says so (and its node) in its pane's subtitle, and the `h`
dialog names each host's builder, driver, nodes and how it pushes."""

from __future__ import annotations

from dataclasses import replace

from matui.engine.build.run import StateEvent
from matui.engine.records import JobState
from matui.ui.app import MatuiApp
from matui.ui.hosts_screen import HostsScreen
from tests.helpers.dashboard import (
    TWO,
    fake_config,
    fake_jobs,
    fake_probes,
    panes,
    settle,
    wait_for,
)

DIGEST = "sha256:" + "ab" * 32
#: The engine's one line for a job pushed by digest (``JobStatus.outcome_line``).
PUSHED = f"{DIGEST} (pushed by digest; builder kube/node builder-arm64)"


async def test_pane_subtitle_says_pushed_by_digest_builder_and_node() -> None:
    app = MatuiApp(fake_config(TWO), probe_on_start=False, resume_on_start=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await app.show_jobs(fake_jobs(TWO))
        app.handle_event(StateEvent("arm64", JobState.SUCCEEDED, PUSHED))
        app.handle_event(StateEvent("amd64", JobState.SUCCEEDED, DIGEST))
        await settle(pilot)
        shown = panes(app)
        assert str(shown["arm64"].border_subtitle) == (
            f"{DIGEST[:19]} (pushed by digest; builder kube/node builder-arm64)"
        )
        assert str(shown["amd64"].border_subtitle) == DIGEST[:19]  # a tag push: as before


async def test_hosts_dialog_names_the_builder_its_nodes_and_how_it_pushes() -> None:
    config = fake_config(TWO)
    app = MatuiApp(config, probe_on_start=False, resume_on_start=False)
    async with app.run_test(size=(100, 30)) as pilot:
        probes = fake_probes(TWO)
        probes[1] = replace(
            probes[1],
            builder="kube",
            builder_driver="kubernetes",
            builder_nodes=("builder-amd64=amd64", "builder-arm64=arm64"),
        )
        app.show_probes(probes, [])
        await settle(pilot)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HostsScreen), "the hosts dialog")
        assert isinstance(app.screen, HostsScreen)
        text = app.screen.text.plain
        assert (
            "builder kube (kubernetes driver; nodes builder-amd64=amd64, "
            "builder-arm64=arm64): pushes by digest"
        ) in text
        assert text.count("builder ") == 1  # the other host builds with the engine's own
