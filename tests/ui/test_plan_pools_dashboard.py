"""The dashboard's plan panes before b say why a host was chosen from a pool: two amd64 hosts,
one unreachable, and the pane's subtitle carries the engine's reason; with a warm host in the
run records, the plan (through the engine's plan_for, as `matui build`) prefers it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from matui.engine.arch import Platform
from matui.engine.build.start import plan_for, warm_hosts
from matui.engine.config import Config, HostConfig, ImageConfig
from matui.engine.probe import HostProbe, HostState, failed_probe
from matui.engine.records import JobState
from matui.ui.app import MatuiApp
from tests.helpers.dashboard import REPO, fake_config, fake_probes, panes, settle
from tests.helpers.records import job_record, staged_run

HOSTS = (
    HostConfig("amd64-1", "amd64", "192.0.2.10", user="build"),
    HostConfig("amd64-2", "amd64", "192.0.2.12", user="build"),
)


def config() -> Config:
    image = ImageConfig(
        REPO, ("1.0",), fake_config().images[0].context, (Platform.parse("linux/amd64"),)
    )
    return Config(None, HOSTS, (image,))


def probes() -> list[HostProbe]:
    (ok,) = fake_probes(("amd64",))
    return [
        failed_probe(HOSTS[0], HostState.UNREACHABLE, "cannot reach host 'amd64-1': refused"),
        replace(ok, name="amd64-2"),
    ]


async def test_plan_pane_says_why_its_host_was_chosen_from_the_pool(tmp_path: Path) -> None:
    app = MatuiApp(config(), probe_on_start=False, resume_on_start=False, state_root=tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        app.show_probes(probes(), [])
        await app.show_plan()
        await settle(pilot)
        pane = panes(app)["amd64"]
        assert str(pane.border_title) == "amd64 · native on amd64-2"
        assert str(pane.border_subtitle).startswith("the only usable amd64 host (0 matui jobs")


def test_plan_for_prefers_the_host_that_built_the_image_last(tmp_path: Path) -> None:
    both = [
        replace(p, name=h.name) for p, h in zip(fake_probes(("amd64", "amd64")), HOSTS, strict=True)
    ]
    staged_run(
        tmp_path, REPO, [job_record("amd64", REPO, host="amd64-2", state=JobState.SUCCEEDED)], {}
    )
    assert warm_hosts(REPO, tmp_path) == {"linux/amd64": "amd64-2"}
    plan = plan_for(config(), config().images[0], ["1.0"], both, tmp_path)
    assert plan.jobs[0].host == "amd64-2"
    assert plan.jobs[0].reason == "built this image's linux/amd64 last (cache warm)"
    # A failed build there does not count as warm: the newest success does.
    staged_run(
        tmp_path, REPO, [job_record("amd64", REPO, host="amd64-1", state=JobState.FAILED)], {}
    )
    assert warm_hosts(REPO, tmp_path) == {"linux/amd64": "amd64-2"}
    assert warm_hosts("other/image", tmp_path) == {}
