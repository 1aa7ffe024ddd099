"""The dashboard's build, publish, retry, cancel, re-probe and quit keys, on the rig: the real
app under Pilot, real SSH builder hosts, real buildx builds, a real registry.

Each test has its own config, repository and cache-busting step (``make_project``), and its own
state dir. Outcomes are checked where they land: the registry (skopeo), the run record, the
screen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from matui.engine.build.retry import RetryOptions
from matui.engine.config import load_config
from matui.engine.records import RunRecord
from matui.ui.app import MatuiApp
from matui.ui.confirm_screen import ConfirmScreen
from matui.ui.retry_screen import RetryScreen
from matui.ui.screens import PublishScreen, QuitScreen
from matui.ui.widgets.panels import FlagsPanel, HostsPanel
from tests.helpers.dashboard import (
    panes,
    press_handled,
    screen_text,
    settle,
    sleep_until,
    toasts,
    wait_for,
    widget_text,
)
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

SIZE = (120, 40)
BUILD = 240.0  # seconds a build may take on the rig (arm64 runs under QEMU)
PUSH = 120.0

BUILT = "built: ready to publish"  # the engine's verdict on the run

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"; for i in 1 2 3; do echo "line $i"; done
"""


ENDED = (
    "cannot",
    "refused",
    "failed",
    "built",
    "blocked",
    "published",
    "publish failed",
    "partly published",
    "cancelled",
    "lost",
    "hosts not",
)


async def until_status(
    pilot: Pilot[int], app: MatuiApp, status: str, what: str, timeout: float = BUILD
) -> None:
    """Wait for the title's status (it starts with ``status``); give up at once on another state
    the run cannot leave."""
    await wait_for(
        pilot,
        lambda: app.status_text.startswith(status),
        what,
        timeout=timeout,
        fail=lambda: not app.status_text.startswith(status) and app.status_text.startswith(ENDED),
    )


def dashboard(tmp_path: Path, config: Path, *, probe: bool = False) -> MatuiApp:
    return MatuiApp(load_config(config), probe_on_start=probe, state_root=tmp_path / "state")


def skopeo_raw(ref: str) -> bytes | None:
    """The manifest bytes the registry serves for ``ref``; None when it serves none."""
    found = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
        capture_output=True,
        timeout=60,
    )
    return found.stdout if found.returncode == 0 else None


def served(ref: str) -> tuple[str, dict[str, str]]:
    """(index digest, {platform: child digest}) of the index at ``ref``."""
    raw = skopeo_raw(ref)
    assert raw is not None, f"{ref} is not served"
    index = json.loads(raw)
    children = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
        if m["platform"]["os"] != "unknown"  # attestations, if any
    }
    return "sha256:" + hashlib.sha256(raw).hexdigest(), children


def states(app: MatuiApp) -> dict[str, str]:
    return {arch: pane.state for arch, pane in panes(app).items()}


def digests(app: MatuiApp) -> dict[str, str | None]:
    assert app.run_ is not None
    return {str(s.job.platform): s.digest for s in app.run_.status.values()}


def run_record(tmp_path: Path) -> dict[str, Any]:
    """The one run record under the test's state dir."""
    (path,) = (tmp_path / "state" / "runs").glob("*/run.json")
    return dict(json.loads(path.read_text()))


async def publish_screen(pilot: Pilot[int], app: MatuiApp) -> PublishScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, PublishScreen), "the publish screen")
    assert isinstance(app.screen, PublishScreen)
    return app.screen


async def test_b_builds_both_arches_then_m_enter_pushes_and_shows_the_verified_index(
    rig: Rig, tmp_path: Path
) -> None:
    config, repo = make_project(tmp_path, rig, DOCKERFILE)
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await until_status(pilot, app, BUILT, "both arches built")
        assert states(app) == {"amd64": "succeeded", "arm64": "succeeded"}
        await settle(pilot)
        text = screen_text(app)
        assert "amd64 · succeeded · amd64-1" in text and "arm64 · succeeded · emu-1" in text
        (emu,) = [line for line in text.splitlines() if line.startswith("│ emu-1 ")]
        assert emu.split()[1:6] == ["emu-1", "amd64", "amd64", "yes", "EMULATED"], emu
        built = digests(app)
        assert all(d and d.startswith("sha256:") for d in built.values())
        assert any("arch is aarch64" in panes(app)["arm64"].view.store.line(i) for i in range(50))
        assert skopeo_raw(f"{repo}:1.0") is None

        await pilot.press("m")
        screen = await publish_screen(pilot, app)
        await settle(pilot)
        assert screen.state == "confirm"
        text = screen_text(app)
        assert f"{repo}:1.0" in text and "nothing (new tag)" in text
        for platform, digest in built.items():
            assert digest is not None
            assert platform in text and digest[:19] in text
        assert "enter push" in text

        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.state == "done", "the push", timeout=PUSH)
        await settle(pilot)
        index, children = served(f"{repo}:1.0")
        assert children == built  # the registry serves exactly what was built
        text = screen_text(app)
        assert "PUBLISHED AND VERIFIED" in text
        assert f"index {index}" in text  # the full digest, as the registry computes it
        assert "serves linux/amd64, linux/arm64" in text
        assert app.published == index
        record = run_record(tmp_path)
        (result,) = record["publishes"][-1]["results"]
        assert result["outcome"] == "verified" and result["digest"] == index

        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PublishScreen), "screen closed")
        await settle(pilot)
        title = screen_text(app).splitlines()[0]
        assert "published" in title and f"index {index[:19]}" in title

        # Pushed: m again shows the tag holding that very index, and nothing that would move.
        await pilot.press("m")
        screen = await publish_screen(pilot, app)
        await settle(pilot)
        text = screen_text(app)
        assert f"now: index {index[:19]}" in text
        rows = [line.split() for line in screen.summary.plain.splitlines()]
        diff = {row[0]: row[1:] for row in rows if row and row[0].startswith("linux/")}
        assert diff == {
            platform: [str(digest)[:19], str(digest)[:19], "same"]
            for platform, digest in built.items()
        }
        await pilot.press("escape")
        assert served(f"{repo}:1.0")[0] == index


RETRY_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY verdict /verdict
RUN echo "arch is $(uname -m)"; if [ "$(uname -m)" = aarch64 ] && [ "$(cat /verdict)" = fail ]; \
then echo "boom: arm64 says no"; exit 3; fi
"""


async def test_failed_arch_blocks_publish_then_r_retries_it_and_the_index_keeps_amd64(
    rig: Rig, tmp_path: Path
) -> None:
    config, repo = make_project(tmp_path, rig, RETRY_DOCKERFILE, files={"verdict": b"fail\n"})
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await until_status(pilot, app, "failed: arm64", "arm64 to fail")
        assert states(app) == {"amd64": "succeeded", "arm64": "failed"}
        await settle(pilot)
        assert "arm64 · FAILED · emu-1" in screen_text(app)
        amd64 = digests(app)["linux/amd64"]
        run_id = app.run_.id if app.run_ else None

        # e on the failed pane lands on buildx's error line.
        await pilot.press("tab")
        arm = panes(app)["arm64"]
        assert app.focused is arm.view
        await pilot.press("e")
        await settle(pilot)
        assert arm.view.highlight_line is not None
        assert "ERROR" in arm.view.store.line(arm.view.highlight_line)

        # Blocked: the screen says why and offers nothing to confirm; enter does nothing.
        await pilot.press("m")
        screen = await publish_screen(pilot, app)
        await settle(pilot)
        assert screen.state == "blocked" and screen.push is None
        text = " ".join(screen_text(app).split())
        assert "NOT READY TO PUBLISH" in text and "arm64 is failed" in text
        assert "enter push" not in text
        await press_handled(pilot, screen, "enter", "confirm")
        assert app.screen is screen and screen.state == "blocked"
        assert skopeo_raw(f"{repo}:1.0") is None
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PublishScreen), "screen closed")

        # Fix the cause, retry the focused arch only. arm64 is now built from another source
        # than amd64 (the verdict file changed): the run is blocked, naming the file.
        (tmp_path / "ctx" / "verdict").write_text("ok\n")
        # r opens the retry menu: a build error fits no retry (fix the code); no other host
        # here can build arm64. Taking "without cache" retries it with --no-cache.
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RetryScreen), "the retry menu")
        await settle(pilot)
        menu = " ".join(screen_text(app).split())
        assert "arm64 failed (build-error) on emu-1" in menu and "fix the code" in menu
        assert "same host (emu-1)" in menu and "suggested" not in menu
        await pilot.press("down", "enter")
        await until_status(pilot, app, "blocked: source-mismatch arm64", "the retry")
        assert app.run_ is not None
        assert app.run_.status["arm64"].retry_options == RetryOptions(no_cache=True)
        assert run_record(tmp_path)["jobs"][1]["attempt"] == 2
        assert "verdict (changed) differs between amd64" in app.status_text
        assert states(app) == {"amd64": "succeeded", "arm64": "succeeded"}
        assert app.run_ is not None and app.run_.id == run_id  # the same run
        built = digests(app)
        assert built["linux/amd64"] == amd64  # amd64 kept its digest
        # The pane shows both attempts, in order.
        lines = [arm.view.store.line(i) for i in range(len(arm.view.store))]
        assert any("boom: arm64 says no" in line for line in lines)
        assert "@@matui attempt 2: retry --no-cache on host emu-1" in lines
        assert "arm64 · succeeded · emu-1" in screen_text(app)

        # Publishing is blocked by the mixed sources; A is the deliberate override, recorded.
        await pilot.press("m")
        screen = await publish_screen(pilot, app)
        await settle(pilot)
        assert screen.state == "blocked" and screen.can_allow_mixed
        text = " ".join(screen_text(app).split())
        assert "open source-mismatch error on arm64" in text and "verdict (changed)" in text
        assert "A publish anyway from these different sources" in text
        await press_handled(pilot, screen, "enter", "confirm")
        assert screen.state == "blocked"
        await pilot.press("A")
        await wait_for(pilot, lambda: screen.state == "confirm", "the preview with the override")
        await settle(pilot)
        assert "mixed sources allowed: recorded in the run" in " ".join(screen_text(app).split())
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.state == "done", "the push", timeout=PUSH)
        assert served(f"{repo}:1.0")[1] == built
        assert app.run_ is not None
        [override] = RunRecord.load(app.run_.record.dir).publishes[-1].overrides
        assert override.name == "allow-mixed-sources"
        assert set(override.sources) == {"amd64", "arm64"}


EVIDENCE_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN if [ "$(uname -m)" = aarch64 ]; then echo "/usr/local/bin/tool: exec format $(echo error)"; fi
"""


async def test_an_open_error_flag_blocks_publish_and_enter_does_nothing(
    rig: Rig, tmp_path: Path
) -> None:
    """Both arches build, but the arm64 log shows ``exec format error``: the post-build checks
    open an error flag, and the publish screen refuses."""
    config, repo = make_project(tmp_path, rig, EVIDENCE_DOCKERFILE)
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        # Built, but the run's verdict is "blocked" by the error flag: the title says so.
        await until_status(pilot, app, "blocked: arch-mismatch arm64", "both arches built")
        assert states(app) == {"amd64": "succeeded", "arm64": "succeeded"}
        await settle(pilot)
        flags = " ".join(screen_text(app).split())
        assert "ERROR arch-mismatch arm64" in flags

        await pilot.press("m")
        screen = await publish_screen(pilot, app)
        await settle(pilot)
        assert screen.state == "blocked" and screen.push is None
        text = " ".join(screen_text(app).split())
        assert "NOT READY TO PUBLISH" in text
        assert "open arch-mismatch error on arm64" in text and "exec format error" in text
        assert "enter push" not in text
        await press_handled(pilot, screen, "enter", "confirm")
        assert app.screen is screen and screen.state == "blocked"
        assert skopeo_raw(f"{repo}:1.0") is None


SLOW_AMD64_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"; if [ "$(uname -m)" = x86_64 ]; then echo sleeping; sleep 90; fi
"""


async def test_x_cancels_the_focused_arch_only_and_b_builds_again(rig: Rig, tmp_path: Path) -> None:
    """Also: m and b while building, and a second build in the same dashboard."""
    config, repo = make_project(tmp_path, rig, SLOW_AMD64_DOCKERFILE)
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await wait_for(
            pilot,
            lambda: (
                app.run_ is not None
                and app.run_.status["amd64"].lines > 0
                and any(
                    "sleeping" in panes(app)["amd64"].view.store.line(i)
                    for i in range(len(panes(app)["amd64"].view.store))
                )
            ),
            "amd64 asleep in its build",
            timeout=BUILD,
        )
        first_run = app.run_
        assert first_run is not None

        await pilot.press("m")
        screen = await publish_screen(pilot, app)
        await settle(pilot)
        assert screen.state == "blocked"
        assert "still building: amd64" in " ".join(screen_text(app).split())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PublishScreen), "screen closed")

        await pilot.press("b")
        await wait_for(
            pilot, lambda: any("a build is running" in t for t in toasts(app)), "b refused"
        )
        assert app.run_ is first_run

        amd = panes(app)["amd64"]
        assert app.focused is amd.view
        # x asks first; esc keeps the build.
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "x asks")
        assert "Cancel amd64 on host amd64-1?" in " ".join(screen_text(app).split())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "kept")
        assert amd.state == "running" and not any("asking" in t for t in toasts(app))
        started = time.monotonic()
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "x asks again")
        await pilot.press("y")
        await wait_for(pilot, lambda: amd.state == "cancelled", "amd64 cancelled", timeout=60)
        assert time.monotonic() - started < 60  # the sleep was cut short on the host
        await until_status(pilot, app, "cancelled: amd64", "the run to end")  # the verdict
        assert states(app) == {"amd64": "cancelled", "arm64": "succeeded"}
        await settle(pilot)
        assert "amd64 · cancelled · amd64-1" in screen_text(app)
        jobs = {job["arch"]: job for job in run_record(tmp_path)["jobs"]}
        assert jobs["amd64"]["state"] == "cancelled" and jobs["arm64"]["state"] == "succeeded"
        assert skopeo_raw(f"{repo}:1.0-amd64") is None  # the cancelled build pushed nothing
        assert skopeo_raw(f"{repo}:1.0-arm64") is not None

        # b again: a new run, new panes, both built.
        dockerfile = tmp_path / "ctx" / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text().replace("sleep 90", "true"))
        await pilot.press("b")
        await until_status(pilot, app, BUILT, "the second run")
        assert app.run_ is not None and app.run_ is not first_run
        assert states(app) == {"amd64": "succeeded", "arm64": "succeeded"}
        assert len(list((tmp_path / "state" / "runs").iterdir())) == 2
        assert skopeo_raw(f"{repo}:1.0-amd64") is not None


SLOW_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "started on $(uname -m)"; sleep SECONDS; echo "woke on $(uname -m)"
"""


async def both_asleep(pilot: Pilot[int], app: MatuiApp) -> None:
    def asleep() -> bool:
        found = panes(app)
        return len(found) == 2 and all(
            any("started on" in p.view.store.line(i) for i in range(len(p.view.store)))
            for p in found.values()
        )

    await wait_for(pilot, asleep, "both builds started", timeout=BUILD)


async def test_q_while_building_asks_esc_goes_back_enter_leaves_the_builds_running(
    rig: Rig, tmp_path: Path
) -> None:
    config, repo = make_project(tmp_path, rig, SLOW_DOCKERFILE.replace("SECONDS", "6"))
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await both_asleep(pilot, app)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit question")
        await settle(pilot)
        text = screen_text(app)
        assert "Builds still running: amd64, arm64" in text
        assert "leave them running on their hosts (default)" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, QuitScreen), "back")
        assert app.return_value is None and app.run_ is not None and app.run_.running

        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit question")
        await pilot.press("enter")
        await sleep_until(lambda: app.return_value is not None, "the app to quit", 30)
    assert app.return_value == 0
    run = app.run_
    assert run is not None
    # Left running: the builds finish on their hosts and push their per-arch tags.
    await sleep_until(
        lambda: skopeo_raw(f"{repo}:1.0-amd64") and skopeo_raw(f"{repo}:1.0-arm64"),
        "the per-arch tags",
        BUILD,
    )
    await asyncio.wait_for(run.wait(), BUILD)  # the followers end too, then close their pool
    await run.pool.close()


async def test_q_while_building_then_c_cancels_the_builds_on_their_hosts_and_quits(
    rig: Rig, tmp_path: Path
) -> None:
    config, repo = make_project(tmp_path, rig, SLOW_DOCKERFILE.replace("SECONDS", "90"))
    app = dashboard(tmp_path, config)
    started = time.monotonic()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await both_asleep(pilot, app)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit question")
        await pilot.press("c")
        await sleep_until(lambda: app.return_value is not None, "cancel, then quit", 60)
    assert app.return_value == 0
    assert time.monotonic() - started < 90  # nobody waited for the sleeps
    record = run_record(tmp_path)
    jobs = {job["arch"]: job["state"] for job in record["jobs"]}
    assert jobs == {"amd64": "cancelled", "arm64": "cancelled"}
    assert skopeo_raw(f"{repo}:1.0-amd64") is None and skopeo_raw(f"{repo}:1.0-arm64") is None


def host_rows(app: MatuiApp) -> dict[str, list[str]]:
    table = app.query_one(HostsPanel)
    return {str(key.value): [str(cell) for cell in table.get_row(key)] for key in table.rows}


async def test_c_probes_the_hosts_again(rig: Rig, tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, rig, DOCKERFILE)
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert host_rows(app)["amd64-1"][2:4] == ["?", "…"]  # not probed: probe_on_start=False
        await pilot.press("c")
        assert app.status_text == "probing hosts"
        await wait_for(
            pilot, lambda: app.status_text == "ready: press b to build", "the probe", timeout=60
        )
        rows = host_rows(app)
        for name in ("amd64-1", "emu-1"):
            host, declared, native, up, _, buildx = rows[name]
            assert (host, declared, native, up) == (name, "amd64", "amd64", "yes")
            assert buildx[:1].isdigit()
        assert "no flags" in screen_text(app)


async def test_c_flags_a_host_that_is_not_the_arch_it_claims(rig: Rig, tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, rig, DOCKERFILE)
    text = config.read_text()
    config.write_text(
        text.replace('name = "emu-1"\narch = "amd64"', 'name = "emu-1"\narch = "arm64"')
    )
    app = dashboard(tmp_path, config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("c")
        await wait_for(pilot, lambda: app.status_text == "hosts not ready", "the probe", timeout=60)
        await settle(pilot)
        assert host_rows(app)["emu-1"][1:3] == ["arm64", "amd64"]
        assert "MISMATCH" in host_rows(app)["emu-1"][4]
        flags = widget_text(app, app.query_one(FlagsPanel))  # wrapped in its panel
        assert "ERROR arch-mismatch emu-1: declared arm64" in flags
