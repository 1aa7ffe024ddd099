"""The log pane's one width measure agrees with what Rich renders.

:func:`~matui.ui.widgets.log_pane.line_cells` gives the horizontal scroll range, the column a
search jumps to and each row's crop. For emoji ZWJ sequences, flags, keycaps, variation
selectors (VS15/VS16), combining marks, CJK and tabs it must equal the cells Rich renders: the
tab expansion Rich's own ``Text.expand_tabs`` makes, measured with ``cell_len``, and the cells of
the segments the pane hands to Textual. A search then puts its match where Rich draws it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.segment import Segment
from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from matui.ui.widgets.log_pane import LogPane, line_cells

TRICKY = {
    "ZWJ family": "👩\u200d👩\u200d👧",
    "ZWJ profession": "🧑\u200d💻",
    "flag": "🇫🇷",
    "keycap": "1\ufe0f\u20e3",
    "VS16 heart": "❤\ufe0f",
    "VS15 smiley": "☺\ufe0e",
    "skin tone": "👍🏽",
    "combining acute": "e\u0301",
    "combining stack": "a\u0300\u0301\u0302",
    "CJK": "漢字",
    "halfwidth kana": "ｱｲ",
    "Devanagari conjunct": "\u0915\u094d\u0937",
    "zero-width space": "x\u200by",
    "tab": "a\tb",
    "tab after wide": "漢\tx",
    "tab after ZWJ": "👩\u200d\t|",
    "VS16 after tab": "❤\t\ufe0f",
}


def rich_expanded(text: str) -> str:
    """The line as Rich itself expands its tabs."""
    rich_text = Text(text)
    rich_text.expand_tabs(8)
    return rich_text.plain


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_line_cells_is_what_rich_renders(text: str) -> None:
    assert line_cells(text) == cell_len(rich_expanded(text))
    marked = f"{text}|{text}|"
    assert line_cells(marked) == cell_len(rich_expanded(marked))


PIECES = [*TRICKY.values(), "a", " ", "\t", "\u200d", "\ufe0f", "\ufe0e", "\u0301", "字", "🇫"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12))
def test_any_mix_measures_as_rich_renders(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert line_cells(text) == cell_len(rich_expanded(text))


class PaneApp(App[None]):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        yield LogPane(id="log")

    def on_mount(self) -> None:
        pane = self.query_one(LogPane)
        pane.add_lines(self.lines)
        pane.focus()


async def settled(pilot: Pilot[None], pane: LogPane) -> None:
    """Wait (polling, with a deadline) for the pane's flush and any search to end."""
    for _ in range(1000):
        if not pane.pending and not pane.searching:
            break
        await pilot.pause(0.01)
    assert not pane.pending and not pane.searching
    await pilot.pause()
    await pilot.pause()


def cells_before(segments: list[Segment], marker: str) -> int:
    """Cells of the rendered row before ``marker``, as Textual will place them."""
    cells = 0
    for segment in segments:
        if marker in segment.text:
            return cells + cell_len(segment.text[: segment.text.index(marker)])
        cells += segment.cell_length
    raise AssertionError(f"{marker!r} not in {[s.text for s in segments]}")


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
async def test_the_pane_draws_and_scrolls_by_the_cells_rich_renders(text: str) -> None:
    line = f"{text}|END"
    app = PaneApp([line])
    async with app.run_test(size=(80, 5)) as pilot:
        pane = app.query_one(LogPane)
        await settled(pilot, pane)
        assert pane.virtual_size.width == line_cells(line) == cell_len(rich_expanded(line))
        strip = pane.render_line(0)
        assert cells_before(list(strip), "|END") == line_cells(text)
        assert strip.cell_length == pane.scrollable_content_region.width


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
async def test_a_search_jumps_to_the_column_rich_draws_the_match_at(text: str) -> None:
    prefix = f"#5 0.1 {text} " * 40  # wider than the pane, whatever the text
    line = f"{prefix}NEEDLE {text} tail"
    app = PaneApp(["#5 0.0 start", line, "#5 0.2 end"])
    async with app.run_test(size=(80, 8)) as pilot:
        pane = app.query_one(LogPane)
        await settled(pilot, pane)
        pane.search("needle")
        await settled(pilot, pane)
        assert pane.match_line == 1
        column = cell_len(rich_expanded(prefix))
        x = pane.scroll_offset.x
        width = pane.scrollable_content_region.width
        assert x <= column and column + len("NEEDLE") <= x + width, (x, column, width)
        y = 1 - pane.scroll_offset.y
        segments = list(pane.render_line(y))
        assert cells_before(segments, "NEEDLE") == column - x
        reversed_text = [s.text for s in segments if s.style is not None and s.style.reverse]
        assert reversed_text == ["NEEDLE"]
