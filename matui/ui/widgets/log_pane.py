"""One build job's live log: a Line API widget over a :class:`~matui.engine.logstore.LogStore`.

Modelled on toolong's ``LogLines``: the pane keeps no text of its own and renders only the rows
on screen (``render_line``) from the store. Ingest is batched: :meth:`LogPane.add_lines` only
appends to the store and marks the pane dirty; a timer flushes once per
:data:`FLUSH_INTERVAL` (update the virtual size, follow the end, repaint once), so a flood of
lines costs a handful of repaints a second, never one per line (k9s pushes log lines to its
view the same way, every 50 ms).

Lines arrive neutralised by the store (no escape sequence reaches the terminal); the pane only
expands tabs.
"""

from __future__ import annotations

import re
from typing import ClassVar, NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from matui.engine.logstore import LogStore, compile_pattern, display_width

__all__ = ["FLUSH_INTERVAL", "MAX_WIDTH", "LogPane"]

FLUSH_INTERVAL = 0.05
"""Seconds between flushes of newly added lines to the screen."""

MAX_WIDTH = 2000
"""Horizontal scrolling stops here: the virtual width is the widest line, capped."""

_RENDER_CHARS = 4 * MAX_WIDTH
"""Characters of a line considered when rendering (a 10 MB line renders in bounded time)."""

_H_STEP = 4
"""Columns per left/right key press."""

_TAB = 8


def _expand_tabs(text: str, spans: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """Expand tabs to 8-column stops, moving highlight spans with the text."""
    out: list[str] = []
    where = [0] * (len(text) + 1)  # character index in the expanded text
    col = new = 0
    for i, ch in enumerate(text):
        where[i] = new
        if ch == "\t":
            n = _TAB - col % _TAB
            out.append(" " * n)
            col += n
            new += n
        else:
            out.append(ch)
            col += 1 if ch.isascii() else cell_len(ch)
            new += 1
    where[len(text)] = new
    return "".join(out), [(where[s], where[e]) for s, e in spans]


class _Frame(NamedTuple):
    """What every row of one repaint shares."""

    width: int
    height: int
    scroll_x: int
    scroll_y: int
    style: Style


class _StyledLine(NamedTuple):
    runs: list[tuple[str, Style]]
    ascii: bool
    cells: int


class LogPane(ScrollView, can_focus=True):
    """A scrolling, following, searchable view of one job's log lines."""

    ALLOW_SELECT = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "Up", show=False, id="log.up"),
        Binding("down", "scroll_down", "Down", show=False, id="log.down"),
        Binding("pageup", "page_up", "Page up", show=False, id="log.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="log.page_down"),
        Binding("home", "scroll_home", "Top", show=False, id="log.home"),
        Binding("end", "scroll_end", "End", show=False, id="log.end"),
        Binding("left", "scroll_left", "Left", show=False, id="log.left"),
        Binding("right", "scroll_right", "Right", show=False, id="log.right"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-pane--match",
        "log-pane--current-match",
        "log-pane--highlight",
        "log-pane--marker",
    }

    # 16-colour friendly: reverse and bold carry the meaning; $accent only tints.
    DEFAULT_CSS = """
    LogPane {
        background: $surface;
        color: $foreground;
    }
    LogPane > .log-pane--match {
        text-style: reverse;
    }
    LogPane > .log-pane--current-match {
        color: $accent;
        text-style: reverse bold;
    }
    LogPane > .log-pane--highlight {
        text-style: reverse bold;
    }
    LogPane > .log-pane--marker {
        color: $accent;
        text-style: reverse bold;
    }
    """

    follow: reactive[bool] = reactive(True, init=False)
    """Keep the newest line in view. Scrolling up turns it off; reaching the end turns it on."""

    class FollowChanged(Message):
        """Follow mode was turned on or off."""

        def __init__(self, pane: LogPane, follow: bool) -> None:
            super().__init__()
            self.pane = pane
            self.follow = follow

        @property
        def control(self) -> LogPane:
            return self.pane

    def __init__(
        self,
        store: LogStore | None = None,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.store = store if store is not None else LogStore()
        self._dirty = True  # lines already in a passed-in store
        self._seen_dropped = self.store.dropped
        self._unseen = 0  # lines added while not following
        self._auto_scrolling = False  # our own scroll, not the user's
        # Search state.
        self._search: tuple[str, bool, bool] | None = None
        self._rx: re.Pattern[str] | None = None
        self._match_line: int | None = None
        self._count_key: object = None
        self._counted = 0
        self._count = 0
        self._highlight_line: int | None = None
        # Rendering.
        self._lines: LRUCache[int, _StyledLine] = LRUCache(512)
        self._part_styles: dict[str, Style] = {}
        self._frame: _Frame | None = None

    # -- ingest ----------------------------------------------------------------------------

    def add_lines(self, lines: list[str]) -> None:
        """Append decoded lines; they reach the screen on the next flush (call from the app's
        event loop)."""
        if not lines:
            return
        self.store.append(lines)
        if not self.follow:
            self._unseen += len(lines)
        self._dirty = True

    @property
    def pending(self) -> bool:
        """Lines were added that the next flush will show."""
        return self._dirty

    def on_mount(self) -> None:
        self.set_interval(FLUSH_INTERVAL, self._flush, name="log-pane-flush")

    def _flush(self) -> None:
        """Once per tick: publish new lines (one repaint), follow the end."""
        if not self._dirty:
            if self.follow and self.scroll_offset.y < self.max_scroll_y:
                self._scroll_to_end()  # e.g. a scrollbar appeared or the pane was resized
            return
        self._dirty = False
        store = self.store
        if store.dropped != self._seen_dropped:
            self._lines_dropped(store.dropped - self._seen_dropped)
            self._seen_dropped = store.dropped
        size = Size(min(store.max_width, MAX_WIDTH), len(store))
        if size != self.virtual_size:
            self.virtual_size = size  # repaints
        else:
            self.refresh()
        if self.follow:
            self._scroll_to_end()

    def _lines_dropped(self, count: int) -> None:
        """The store dropped ``count`` old lines: every index moved down by that many."""

        def shift(index: int | None) -> int | None:
            return None if index is None or index < count else index - count

        self._match_line = shift(self._match_line)
        self._highlight_line = shift(self._highlight_line)
        self._lines.clear()
        if not self.follow:
            self._scroll_quietly(y=max(0, self.scroll_offset.y - count))

    # -- scrolling and follow ----------------------------------------------------------------

    def _scroll_quietly(self, x: float | None = None, y: float | None = None) -> None:
        """Scroll without it counting as the user's scroll (which toggles follow)."""
        self._auto_scrolling = True
        try:
            # force: before the first layout no scrollbar exists yet and an unforced scroll
            # is dropped; the position is clamped once the size is known.
            self.scroll_to(x, y, animate=False, immediate=True, force=True)
        finally:
            self._auto_scrolling = False

    def _scroll_to_end(self) -> None:
        self._scroll_quietly(y=self.max_scroll_y)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._auto_scrolling:
            return
        if round(new_value) >= self.max_scroll_y:
            self.follow = True
        elif new_value < old_value:
            self.follow = False

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self._unseen = 0
            self._scroll_to_end()
        self.post_message(self.FollowChanged(self, follow))

    def on_resize(self, event: events.Resize) -> None:
        if self.follow:
            self.call_after_refresh(self._scroll_to_end)

    @property
    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    def action_scroll_up(self) -> None:
        self.follow = False
        self.scroll_to(y=self.scroll_offset.y - 1, animate=False, immediate=True)

    def action_page_up(self) -> None:
        self.follow = False
        self.scroll_to(y=self.scroll_offset.y - self._page, animate=False, immediate=True)

    def action_scroll_home(self) -> None:
        self.follow = False
        self.scroll_to(0, 0, animate=False, immediate=True)

    def action_scroll_down(self) -> None:
        self.scroll_to(y=self.scroll_offset.y + 1, animate=False, immediate=True)
        if self.scroll_offset.y >= self.max_scroll_y:
            self.follow = True

    def action_page_down(self) -> None:
        self.scroll_to(y=self.scroll_offset.y + self._page, animate=False, immediate=True)
        if self.scroll_offset.y >= self.max_scroll_y:
            self.follow = True

    def action_scroll_end(self) -> None:
        if self.follow:
            self._scroll_to_end()
        self.follow = True

    def action_scroll_left(self) -> None:
        self.scroll_to(x=self.scroll_offset.x - _H_STEP, animate=False, immediate=True)

    def action_scroll_right(self) -> None:
        self.scroll_to(x=self.scroll_offset.x + _H_STEP, animate=False, immediate=True)

    @property
    def unseen_lines(self) -> int:
        """New lines below the view while not following (what the marker row shows)."""
        if self.follow or not self._unseen:
            return 0
        below = len(self.store) - (self.scroll_offset.y + self.scrollable_content_region.height)
        return max(0, min(self._unseen, below))

    def _show_line(self, index: int, column: int = 0) -> None:
        """Bring line ``index`` (and cell ``column`` of it) into view; stops following."""
        self.follow = False
        height = self.scrollable_content_region.height
        width = self.scrollable_content_region.width
        x, y = self.scroll_offset
        new_y: int | None = None
        # The last row may hold the "new lines" marker: keep the line above it.
        if not y <= index < y + max(1, height - 1):
            new_y = max(0, index - height // 3)
        new_x: int | None = None
        if not x <= column < x + width:
            new_x = max(0, column - width // 4)
        self._scroll_quietly(new_x, new_y)

    # -- search ----------------------------------------------------------------------------

    @property
    def search_pattern(self) -> str | None:
        """The remembered search pattern, if any."""
        return None if self._search is None else self._search[0]

    @property
    def match_line(self) -> int | None:
        """Index of the current search match."""
        return self._match_line

    @property
    def highlight_line(self) -> int | None:
        """Index of the line highlighted by :meth:`action_first_error`."""
        return self._highlight_line

    def search(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        backwards: bool = False,
    ) -> int | None:
        """Remember ``pattern`` and jump to its first match from the top of the view (the last
        one from the bottom of the view, ``backwards``), wrapping. Matches on visible rows are
        highlighted. An empty pattern clears the search. Returns the match's line index.

        Raises ValueError for an invalid regular expression (the old search stays).
        """
        if not pattern:
            self.clear_search()
            return None
        rx = compile_pattern(pattern, regex, ignore_case)
        self._search = (pattern, regex, ignore_case)
        self._rx = rx
        self._match_line = None
        self._count_key = None
        return self._jump(backwards)

    def clear_search(self) -> None:
        self._search = None
        self._rx = None
        self._match_line = None
        self._lines.clear()
        self.refresh()

    def action_next_match(self) -> None:
        self._jump(backwards=False)

    def action_previous_match(self) -> None:
        self._jump(backwards=True)

    def _jump(self, backwards: bool) -> int | None:
        if self._search is None or self._rx is None:
            return None
        pattern, regex, ignore_case = self._search
        top = self.scroll_offset.y
        bottom = top + self.scrollable_content_region.height - 1
        current = self._match_line
        if current is not None and top <= current <= bottom:
            start = current - 1 if backwards else current + 1
        else:
            start = bottom if backwards else top
        hit = self.store.search(
            pattern, regex=regex, ignore_case=ignore_case, start=start, backwards=backwards
        )
        self._match_line = hit
        self._lines.clear()
        if hit is not None:
            text = self.store.line(hit)
            m = self._rx.search(text)
            self._show_line(hit, display_width(text[: m.start()]) if m else 0)
        self.refresh()
        return hit

    @property
    def match_count(self) -> int:
        """Lines matching the current search (0 without one). Counted when asked, and only
        over lines not counted before."""
        if self._search is None:
            return 0
        key = (self._search, self.store.dropped)
        if key != self._count_key:
            self._count_key, self._counted, self._count = key, 0, 0
        total = len(self.store)
        if self._counted < total:
            pattern, regex, ignore_case = self._search
            self._count += len(
                self.store.find_all(
                    pattern,
                    regex=regex,
                    ignore_case=ignore_case,
                    start=self._counted,
                    stop=total,
                )
            )
            self._counted = total
        return self._count

    def action_first_error(self) -> None:
        """Jump to the first line that looks like a build error and highlight it."""
        index = self.store.first_error()
        if index is None:
            self.app.bell()
            return
        self._highlight_line = index
        self._lines.clear()
        self._show_line(index)
        self.refresh()

    # -- rendering -------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._part_styles.clear()
        self._lines.clear()

    def _component(self, name: str) -> Style:
        style = self._part_styles.get(name)
        if style is None:
            style = self.get_component_rich_style(name, partial=True)
            self._part_styles[name] = style
        return style

    def render_lines(self, crop: Region) -> list[Strip]:
        # Work out the frame once for all rows: rich_style walks every ancestor and each
        # refresh() clears its cache, so asking per row costs more than rendering the row.
        self._frame = self._current_frame()
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def _current_frame(self) -> _Frame:
        region = self.scrollable_content_region
        x, y = self.scroll_offset
        return _Frame(region.width, region.height, x, y, self.rich_style)

    def render_line(self, y: int) -> Strip:
        frame = self._frame or self._current_frame()
        width = frame.width
        base = frame.style
        if y == frame.height - 1 and not self.follow:
            unseen = self.unseen_lines
            if unseen:
                label = f" {unseen:,} new line{'s' if unseen != 1 else ''} ↓  (End: follow) "
                style = base + self._component("log-pane--marker")
                return Strip([Segment(label.center(width)[:width], style)], width)
        index = frame.scroll_y + y
        if index >= len(self.store):
            return Strip.blank(width, base)
        line = self._lines.get(index)
        if line is None:
            line = self._styled_line(index, base)
            self._lines[index] = line
        x0 = frame.scroll_x
        x1 = x0 + width
        if not line.ascii:
            segments = [Segment(text, style) for text, style in line.runs]
            return Strip(segments, line.cells).crop_extend(x0, x1, base)
        # One cell a character: crop by slicing, and build a single Strip (Strip.crop's
        # cell-by-cell split dominated the cost of a row).
        segments = []
        pos = 0
        for text, style in line.runs:
            end = pos + len(text)
            if end > x0:
                segments.append(Segment(text[max(x0 - pos, 0) : x1 - pos], style))
                if end >= x1:
                    break
            pos = end
        shown = max(0, min(line.cells, x1) - x0)
        if shown < width:
            segments.append(Segment(" " * (width - shown), base))
        return Strip(segments, width)

    def _styled_line(self, index: int, base: Style) -> _StyledLine:
        """Line ``index`` as runs of (text, style), tabs expanded, not yet cropped."""
        text = self.store.line(index)
        if len(text) > _RENDER_CHARS:
            text = text[:_RENDER_CHARS]
        line_style = base
        if index == self._highlight_line:
            line_style = base + self._component("log-pane--highlight")
        spans: list[tuple[int, int]] = []
        if self._rx is not None:
            spans = [m.span() for m in self._rx.finditer(text) if m.end() > m.start()]
        if "\t" in text:
            text, spans = _expand_tabs(text, spans)
        ascii = text.isascii()  # neutralised and tab-expanded: one cell per character
        cells = len(text) if ascii else cell_len(text)
        if not spans:
            return _StyledLine([(text, line_style)] if text else [], ascii, cells)
        name = "log-pane--current-match" if index == self._match_line else "log-pane--match"
        match_style = line_style + self._component(name)
        runs: list[tuple[str, Style]] = []
        pos = 0
        for start, end in spans:
            if start > pos:
                runs.append((text[pos:start], line_style))
            runs.append((text[start:end], match_style))
            pos = end
        if pos < len(text):
            runs.append((text[pos:], line_style))
        return _StyledLine(runs, ascii, cells)
