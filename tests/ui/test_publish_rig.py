"""The dashboard's publish screen on the rig when publishing goes wrong — the same cases as
``tests/integration/test_publish.py`` for the CLI, under Pilot: `m` shows the engine's preview
(or why publishing is blocked, in one line), `enter` pushes and shows the per-tag report, the
title takes the outcome, and a retry after the cause is gone works.

Each test stages a run an earlier matui left while its builds ran, which ended meanwhile
(:func:`tests.helpers.publishing.built_run` with ``finished=False``): the dashboard picks it up
on start, finishes it, and says "built: ready to publish". Its repository is reached through
a :class:`~tests.helpers.registry_proxy.RegistryProxy` of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static

from matui.engine.config import load_config
from matui.engine.records import RunRecord, TagOutcome
from matui.ui.app import MatuiApp
from matui.ui.screens import PublishScreen
from tests.helpers.dashboard import screen_text, settle, wait_for
from tests.helpers.publishing import BuiltRun, built_run, copy_child, delete_manifest
from tests.helpers.registry_proxy import RegistryProxy
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

SIZE = (140, 48)
PUSH = 120.0
BUILT = "built: ready to publish"  # the engine's verdict on the run


@pytest.fixture
def proxy(rig: Rig) -> Iterator[RegistryProxy]:
    with RegistryProxy(rig.registry) as server:
        yield server


def dashboard(run: BuiltRun) -> MatuiApp:
    return MatuiApp(load_config(run.config), probe_on_start=False, state_root=run.state_root)


async def built(pilot: Pilot[int], app: MatuiApp) -> None:
    await wait_for(
        pilot, lambda: app.status_text == BUILT, "the run picked up and built", timeout=60
    )


def flat(app: MatuiApp) -> str:
    return " ".join(screen_text(app).split())


def shown(screen: PublishScreen) -> str:
    """The publish screen's summary and prompt as the widgets hold them, unwrapped (a long
    reference wraps inside the dialog's frame on screen)."""
    parts = [screen.query_one(f"#publish-{name}", Static).content for name in ("summary", "prompt")]
    return "\n".join(str(part.plain if isinstance(part, Text) else part) for part in parts)


async def open_publish(pilot: Pilot[int], app: MatuiApp) -> PublishScreen:
    await pilot.press("m")
    await wait_for(pilot, lambda: isinstance(app.screen, PublishScreen), "the publish screen")
    assert isinstance(app.screen, PublishScreen)
    await settle(pilot)
    return app.screen


async def push(pilot: Pilot[int], screen: PublishScreen) -> None:
    assert screen.state == "confirm", screen.state
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.state == "done", "the push", timeout=PUSH)
    await settle(pilot)


async def close(pilot: Pilot[int], app: MatuiApp) -> None:
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, PublishScreen), "screen closed")


def saved(run: BuiltRun) -> RunRecord:
    return RunRecord.load(run.record.dir)


async def test_one_of_three_tags_refused_shows_each_tags_fate_then_m_enter_completes_it(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address, tags=("1.0", "1.0.1", "latest"), finished=False)
    app = dashboard(run)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await built(pilot, app)
        screen = await open_publish(pilot, app)
        assert screen.preview.to_push == ["1.0", "1.0.1", "latest"]
        assert f"{run.repo}:latest" in screen_text(app)
        with proxy.misbehaving(refuse_put={(run.path, "latest")}):
            await push(pilot, screen)
        assert screen.report is not None
        results = {r.tag: r for r in screen.report.results}
        index = results["1.0"].digest
        assert index is not None and results["1.0.1"].digest == index
        text = flat(app)
        assert "PARTLY PUBLISHED" in text and "moved: 1.0, 1.0.1" in text
        assert "latest refused: imagetools create here failed (exit 1)" in text
        assert f"/v2/{run.path}/manifests/latest: 403 Forbidden" in text
        assert f"index {index}" in text
        assert app.status_text.startswith("partly published: ") and app.published is None
        assert run.served("latest") is None and run.served("1.0") == (index, run.digests)
        outcomes = {r.tag: r.outcome for r in saved(run).publishes[-1].results}
        assert outcomes == {
            "1.0": TagOutcome.VERIFIED,
            "1.0.1": TagOutcome.VERIFIED,
            "latest": TagOutcome.REFUSED,
        }
        await close(pilot, app)

        # Lifted: the preview shows two tags already serving the index; enter pushes latest.
        screen = await open_publish(pilot, app)
        assert screen.preview.to_push == ["latest"]
        assert flat(app).count("already serves this index: not pushed again") == 2
        await push(pilot, screen)
        text = flat(app)
        assert "PUBLISHED AND VERIFIED" in text and "(1.0, 1.0.1 already did)" in text
        assert text.count("unchanged: already serves this index") == 2
        assert app.status_text.startswith("published: ") and app.published == index
        for tag in ("1.0", "1.0.1", "latest"):
            assert run.served(tag) == (index, run.digests)
        assert saved(run).published
        await close(pilot, app)

        # Once more: a no-op that says so.
        screen = await open_publish(pilot, app)
        assert screen.preview.nothing_to_push
        assert "nothing to push" in flat(app)
        await push(pilot, screen)
        text = flat(app)
        assert "ALREADY PUBLISHED: 1.0, 1.0.1, latest already serve this index" in text
        assert "PUBLISHED AND VERIFIED" not in text
        assert screen.report is not None and screen.report.no_op


@pytest.mark.parametrize("mode", ["down", "drop"])
async def test_registry_unreachable_blocks_with_one_line_then_a_retry_works(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path, mode: str
) -> None:
    run = built_run(tmp_path, rig, proxy.address, finished=False)
    app = dashboard(run)
    port = int(proxy.address.rpartition(":")[2])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await built(pilot, app)
        if mode == "down":
            proxy.stop()
            screen = await open_publish(pilot, app)
        else:
            with proxy.misbehaving(drop=True):
                screen = await open_publish(pilot, app)
        assert screen.state == "blocked" and screen.push is None
        assert screen.blocked is not None and "\n" not in screen.blocked
        assert f"cannot reach {proxy.address}" in screen.blocked
        assert screen.blocked.endswith("nothing was pushed")
        text = flat(app)
        assert "NOT READY TO PUBLISH" in text and f"cannot reach {proxy.address}" in text
        await pilot.press("enter")  # nothing to confirm
        await settle(pilot)
        assert screen.state == "blocked" and app.screen is screen
        await close(pilot, app)
        assert run.served("1.0") is None

        if mode == "down":
            with RegistryProxy(rig.registry, port=port):
                screen = await open_publish(pilot, app)
                await push(pilot, screen)
        else:
            screen = await open_publish(pilot, app)
            await push(pilot, screen)
        assert "PUBLISHED AND VERIFIED" in flat(app)
        assert run.served("1.0") is not None


async def test_registry_asking_for_a_login_names_it_and_docker_login(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address, finished=False)
    app = dashboard(run)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await built(pilot, app)
        with proxy.misbehaving(require_login=True):
            screen = await open_publish(pilot, app)
        assert screen.state == "blocked" and screen.blocked is not None
        assert f"{proxy.address} needs a login" in screen.blocked
        assert f"`docker login {proxy.address}`" in flat(app)
        await close(pilot, app)
        screen = await open_publish(pilot, app)
        await push(pilot, screen)
        assert run.served("1.0") is not None


async def test_a_deleted_per_arch_image_is_an_open_error_flag_that_blocks_the_push(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address, finished=False)
    arm64 = run.digests["linux/arm64"]
    app = dashboard(run)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await built(pilot, app)
        delete_manifest(rig.registry, run.path, arm64)
        screen = await open_publish(pilot, app)
        assert screen.state == "blocked" and screen.push is None
        assert screen.blocked is not None
        assert screen.blocked.startswith("not publishing: open missing-image error on arm64: ")
        assert "NOT READY TO PUBLISH" in flat(app)
        text = shown(screen)
        assert f"error: missing-image arm64: the linux/arm64 image {arm64[:19]}" in text
        assert f"is gone from {run.repo}; rebuild arm64" in text
        await close(pilot, app)
        assert run.served("1.0") is None

        copy_child(rig, arm64, f"{run.direct}:1.0-arm64")  # rebuilt
        screen = await open_publish(pilot, app)
        await push(pilot, screen)
        assert "PUBLISHED AND VERIFIED" in flat(app)


async def test_failing_imagetools_says_not_published_in_one_line_and_a_retry_works(
    rig: Rig, proxy: RegistryProxy, tmp_path: Path
) -> None:
    run = built_run(tmp_path, rig, proxy.address, finished=False)
    app = dashboard(run)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await built(pilot, app)
        screen = await open_publish(pilot, app)
        with proxy.misbehaving(drop_manifest_puts=True):
            await push(pilot, screen)
        assert screen.report is not None and not screen.report.ok
        line = screen.report.line()
        assert line.startswith("1.0 refused: imagetools create here failed (exit 1): ")
        assert line.endswith("nothing was pushed")
        text = flat(app)
        assert "NOT PUBLISHED" in text and "imagetools create here failed (exit 1)" in text
        assert app.activity == "publish failed"  # beside the run's verdict
        assert run.served("1.0") is None
        await close(pilot, app)

        screen = await open_publish(pilot, app)
        await push(pilot, screen)
        assert "PUBLISHED AND VERIFIED" in flat(app)
        assert app.status_text.startswith("published: ") and app.activity is None
