"""The publish screen's explicit override for arches built from different sources, under Pilot
without a rig: offered only when mixed sources are the sole error, A asks for the preview again
with the override, and the push gets that preview (the rig test in test_dashboard_rig.py pushes
for real and reads the recorded override back)."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from matui.engine.flags.model import Flag, FlagKind, Severity
from matui.engine.flags.sources import override_mixed_sources
from matui.engine.publish import PublishPreview, PublishReport
from matui.engine.records import RunRecord
from matui.ui.screens import PublishScreen
from tests.helpers.dashboard import screen_text, settle, wait_for

RECORD = RunRecord(Path("/nonexistent"), "20261201-120000-abcdef", "r.example/app", ["1.0"], [], [])
MIXED = Flag(
    FlagKind.SOURCE_MISMATCH,
    Severity.ERROR,
    "arm64",
    "arches built from different sources: Dockerfile (changed) differs between amd64 "
    "(built 12:01:05) and arm64 (built 12:07:40)",
)
OTHER = Flag(FlagKind.ARCH_MISMATCH, Severity.ERROR, "arm64", "exec format error in the log")


def blocked(*flags: Flag) -> PublishPreview:
    return PublishPreview(RECORD, None, None, (), flags, f"not publishing: {flags[0].message}")


class Host(App[None]):
    def __init__(self, screen: PublishScreen) -> None:
        super().__init__()
        self.publish_screen = screen

    def on_mount(self) -> None:
        self.push_screen(self.publish_screen)


async def test_a_allows_mixed_sources_then_enter_pushes_that_preview() -> None:
    asked: list[bool] = []
    pushed: list[PublishPreview] = []
    allowed = PublishPreview(
        RECORD,
        None,
        None,
        (),
        tuple(override_mixed_sources([MIXED])),
        None,
        allow_mixed_sources=True,
    )

    async def allow_mixed() -> PublishPreview:
        asked.append(True)
        return allowed

    async def push(preview: PublishPreview) -> PublishReport:
        pushed.append(preview)
        return PublishReport(preview, [])

    screen = PublishScreen(blocked(MIXED), push=push, allow_mixed=allow_mixed)
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert screen.state == "blocked" and screen.can_allow_mixed
        text = " ".join(screen_text(app).split())
        assert "Dockerfile (changed)" in text
        assert "A publish anyway from these different sources (recorded in the run)" in text
        await pilot.press("enter")  # nothing to confirm while blocked
        await pilot.press("a")  # only the capital is the override
        await settle(pilot)
        assert screen.state == "blocked" and not asked and not pushed
        await pilot.press("A")
        await wait_for(pilot, lambda: screen.state == "confirm", "the allowed preview")
        await settle(pilot)
        text = " ".join(screen_text(app).split())
        assert "mixed sources allowed: recorded in the run" in text
        assert "overridden with --allow-mixed-sources" in text
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.state == "done", "the push")
        assert asked == [True] and pushed == [allowed]


async def test_no_override_offered_when_another_error_blocks_too() -> None:
    async def allow_mixed() -> PublishPreview:
        raise AssertionError("the override must not be asked for")

    screen = PublishScreen(blocked(MIXED, OTHER), push=None, allow_mixed=allow_mixed)
    app = Host(screen)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert not screen.can_allow_mixed
        assert "publish anyway" not in " ".join(screen_text(app).split())
        await pilot.press("A")
        await settle(pilot)
        assert screen.state == "blocked"
