"""The retry menu (key ``r``) under Pilot, with the engine's choices for a few causes: the
suggested choice comes first and is marked, the cause's advice is shown above the choices, and
the screen hands back the options of the choice taken (``enter``) or None (``esc``). The real
``r`` -> menu -> BuildRun.retry path runs against the rig in ``test_dashboard_rig.py``."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import OptionList, Static

from matui.engine.arch import Platform
from matui.engine.build.retry import RetryHost, RetryOptions, retry_choices
from matui.engine.plan import BuildJob
from matui.ui.resources import stylesheet
from matui.ui.retry_screen import SUGGESTED, RetryScreen
from tests.helpers.dashboard import screen_text, wait_for

JOB = BuildJob(Platform.parse("linux/arm64"), "arm-1", False, "1.0-arm64", "r/app:1.0-arm64")
OTHERS = [RetryHost("arm-2", False), RetryHost("emu-1", True)]

_UNSET = object()


class Host(App[None]):
    """An app that opens the retry menu for ``cause`` and keeps what it was dismissed with."""

    CSS_PATH = str(stylesheet())  # the dashboard's: the menu is a dialog framed as there

    def __init__(self, cause: str | None) -> None:
        super().__init__()
        self.cause = cause
        self.result: object = _UNSET

    def compose(self) -> ComposeResult:
        yield Static("dashboard")

    def on_mount(self) -> None:
        suggestion, choices = retry_choices(JOB, self.cause, other_hosts=OTHERS)
        headline = f"arm64 failed ({self.cause}) on arm-1"
        self.push_screen(RetryScreen("arm64", headline, suggestion, choices), self.keep)

    def keep(self, result: RetryOptions | None) -> None:
        self.result = result


def labels(app: App[None]) -> list[str]:
    menu = app.screen.query_one("#retry-choices", OptionList)
    return [str(menu.get_option_at_index(i).prompt) for i in range(menu.option_count)]


async def test_a_corrupt_cache_suggests_no_cache_first_and_enter_takes_it() -> None:
    app = Host("cache-corrupt")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RetryScreen), "the retry menu")
        shown = labels(app)
        assert shown[0] == f"without cache (--no-cache)  ← {SUGGESTED}"
        assert shown[1:] == [
            "same host (arm-1)",
            "another host: arm-2",
            "another host: emu-1 (emulated)",
            "with a fresh base (--pull)",
        ]
        text = screen_text(app)
        assert "Retry arm64" in text and "retry without the build cache" in text
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.result is not _UNSET, "the menu's answer")
        assert app.result == RetryOptions(no_cache=True)


async def test_a_build_error_marks_nothing_says_fix_it_and_esc_keeps_things() -> None:
    app = Host("build-error")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RetryScreen), "the retry menu")
        assert not any(SUGGESTED in label for label in labels(app))
        assert "fix the code or the Dockerfile" in " ".join(screen_text(app).split())
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.result is not _UNSET, "the menu's answer")
        assert app.result is None


async def test_a_full_disk_suggests_the_other_host_and_down_picks_the_next_choice() -> None:
    app = Host("disk-full")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RetryScreen), "the retry menu")
        assert labels(app)[:2] == [f"another host: arm-2  ← {SUGGESTED}", "same host (arm-1)"]
        await pilot.press("down", "down", "down", "enter")  # same host, emu-1, --no-cache
        await wait_for(pilot, lambda: app.result is not _UNSET, "the menu's answer")
        assert app.result == RetryOptions(no_cache=True)


async def test_the_base_image_lacking_the_platform_says_fix_the_from() -> None:
    app = Host("base-image-lacks-platform")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RetryScreen), "the retry menu")
        assert "fix the FROM" in " ".join(screen_text(app).split())
        assert not any(SUGGESTED in label for label in labels(app))
