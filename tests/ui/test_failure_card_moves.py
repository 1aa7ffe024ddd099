"""The failure card of a job its hosts' failures moved: a ``moved`` row per move (from, to,
why) and the hosts tried, whole at 80x24 (the card scrolls; nothing is cut)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.app import App
from textual.containers import VerticalScroll

from matui.engine.build.failure import HOST_LOST
from matui.engine.build.retry import HostMove
from matui.ui.failure_screen import FailureScreen
from matui.ui.resources import stylesheet
from tests.helpers.dashboard import fake_failure, screen_text, settle, wait_for

MOVE = HostMove(
    "amd64-1",
    "amd64-2",
    HOST_LOST.name,
    False,
    "the only other healthy host for linux/amd64 (0 matui jobs)",
    "engine gone (failed to receive status: rpc error: code = Unavailable desc = error reading "
    "from server: EOF)",
)


class CardHost(App[None]):
    CSS_PATH = str(stylesheet())

    def __init__(self, **failure: Any) -> None:
        super().__init__()
        self.failure = replace(fake_failure("amd64"), **failure)

    def on_mount(self) -> None:
        self.push_screen(FailureScreen("amd64", "amd64-2", "lost", self.failure))


def _words(text: str) -> str:
    return " ".join(text.split())


async def test_the_card_of_a_moved_job_says_where_it_moved_and_which_hosts_were_tried() -> None:
    app = CardHost(
        cause=HOST_LOST.name,
        advice=HOST_LOST.advice,
        moves=(MOVE,),
        tried_hosts=("amd64-1", "amd64-2"),
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, FailureScreen), "the card")
        await settle(pilot)
        scroll = app.screen.query_one(VerticalScroll)
        assert scroll.max_scroll_x == 0  # long values wrap
        seen = _words(screen_text(app))
        while scroll.scroll_y < scroll.max_scroll_y:
            await pilot.press("pagedown")
            await settle(pilot)
            seen += " " + _words(screen_text(app))
        # A wrapped value reads whole once the frame's borders and padding are gone.
        flat = _words(seen.replace("│", " ").replace("▁", " ").replace("▂", " "))
        assert "moved from amd64-1 to amd64-2: engine gone (failed to receive status" in flat
        assert "hosts tried amd64-1, amd64-2 (no other healthy host" in flat
