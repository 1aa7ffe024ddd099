"""One build job's live log: a Line API widget over a :class:`~matui.engine.logstore.LogStore`.

Modelled on toolong's ``LogLines``: the pane keeps no text of its own and renders only the rows
on screen (``render_line``) from the store. Ingest is batched: :meth:`LogPane.add_lines` only
appends to the store and marks the pane dirty; a timer flushes once per
:data:`FLUSH_INTERVAL` (update the virtual size, follow the end, repaint once), so a flood of
lines costs a handful of repaints a second, never one per line (k9s pushes log lines to its
view the same way, every 50 ms).

Lines arrive inert: the engine neutralised them once as it decoded the host's bytes
(``matui.engine.text.decode_lines``), so no escape sequence reaches the terminal; the pane only
expands tabs.

Width: every cell count (the horizontal scroll range, the column a search jumps to, a row's
crop) comes from :func:`line_cells`, which measures as Rich renders (``rich.cells.cell_len``, on
the tab-expanded text), so emoji sequences, flags and variation selectors land where Rich puts
them. The engine measures nothing: it must not import Rich.

A typed pattern is never matched on the UI thread: ``/``, ``n``, ``N``, the match count and
the highlights of visible matches search a :class:`~matui.engine.logstore.LogSnapshot` in thread
workers, the newest superseding the one before. A search stops after :data:`SEARCH_SECONDS` with
a message (:class:`LogPane.SearchDone`) and no highlights left behind. The engine matches with
the ``regex`` package, which releases the GIL while matching; the thread would not help with
``re``, which holds it for a whole call. A jump brings the highlights of the rows around its
match with it; rows scrolled into view later are drawn plain until their worker (a few
milliseconds) hands their matches over.

Long lines: unwrapped, a row shows the line from the horizontal scroll position on, and an
arrow in the last cell (``→``) says the line goes on past the edge. Wrapped
(:meth:`LogPane.set_wrap`), each line takes as many rows as it needs: a :class:`_WrapLayout`
maps lines to rows (the first row of each line, in an ``array``), laid out once per width and
then only for the lines each flush adds, so a million-line log is not laid out again on every
flush; unwrapped, no layout is kept at all. Rows are cut from the same styled line as unwrapped
rows, so search highlights and the error highlight wrap with the text.

Attempts: a retried job's log holds every attempt, each after the first opened by the engine's
marker line (``@@matui attempt 2: retry on host emu-1``, :mod:`matui.engine.build.retry`), live
or read back from a stored log. The pane draws a marker line as a separator
(``── attempt 2: retry on host emu-1 ──``, reversed), and ``e`` looks for the first error after
the last one: the current attempt's.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate
from typing import ClassVar, NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events, on
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import Worker, WorkerState, get_current_worker

from matui.engine.build.retry import ATTEMPT_MARKER
from matui.engine.logstore import (
    CHUNK_LINES,
    Hit,
    LogSnapshot,
    LogStore,
    SearchTimeout,
)
from matui.ui.clipboard import copy_text

__all__ = [
    "FLUSH_INTERVAL",
    "HIGHLIGHT_SECONDS",
    "MAX_WIDTH",
    "SEARCH_SECONDS",
    "LogPane",
    "line_cells",
]

FLUSH_INTERVAL = 0.05
"""Seconds between flushes of newly added lines to the screen."""

MAX_WIDTH = 2000
"""Horizontal scrolling stops here: the virtual width is the widest line, capped."""

_RENDER_CHARS = 4 * MAX_WIDTH
"""Characters of a line considered when rendering (a 10 MB line renders in bounded time)."""

_H_STEP = 4

_MARKER_PREFIX = ATTEMPT_MARKER.removesuffix("attempt ")
"""What a separator drops of an attempt marker line (``@@matui ``)."""
"""Columns per left/right key press."""

_TAB = 8

SEARCH_SECONDS = 2.0
"""A search (``/``, ``n``, ``N``, the match count) stops after this long: the pattern
backtracks too much to be worth waiting for."""

_COUNT_SLICE = 16 * CHUNK_LINES
"""Lines one match-count worker counts (~65 k: a tenth of a second for a simple pattern)."""

HIGHLIGHT_SECONDS = 0.5
"""Finding the matches on a screenful of rows (in a worker) may take this long; a pattern that
needs more is left unhighlighted, with a message."""


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _expand_tabs(text: str, spans: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """Expand tabs to 8-cell stops as Rich's ``Text.expand_tabs`` does, moving highlight spans
    (character offsets) with the text.

    Each tab becomes a space, measured with the text before it back to the previous tab
    (``cell_len``, so a grapheme such as 👩‍👩‍👧, 🇫🇷 or ❤️ counts as Rich counts it, and a
    trailing zero-width joiner swallows that space as it does in Rich), then as many more
    spaces as reach the next stop. The pieces so measured add up to ``cell_len`` of the
    expanded line: what Rich renders.
    """
    pieces = text.split("\t")
    out: list[str] = []
    tabs: list[int] = []  # character offset of each tab
    extra = [0]  # extra[k]: characters the first k tabs added
    col = pos = 0
    for piece in pieces[:-1]:
        col += _cells(piece + " ")
        pad = -col % _TAB
        col += pad
        out += (piece, " " * (1 + pad))
        pos += len(piece)
        tabs.append(pos)
        pos += 1
        extra.append(extra[-1] + pad)
    out.append(pieces[-1])

    def moved(i: int) -> int:
        return i + extra[bisect_left(tabs, i)]

    return "".join(out), [(moved(s), moved(e)) for s, e in spans]


def line_cells(text: str) -> int:
    """Terminal cells ``text`` takes in the pane: tabs expanded to 8-cell stops, the rest
    measured by Rich (``rich.cells.cell_len``), so it is the width Rich renders. The one width
    measure of the pane."""
    if "\t" in text:
        text = _expand_tabs(text, [])[0]
    return _cells(text)


class _SearchKey(NamedTuple):
    pattern: str
    regex: bool
    ignore_case: bool


class _Found(NamedTuple):
    """A search worker's result."""

    key: _SearchKey
    hit: Hit | None
    dropped: int  # the snapshot's: maps its line indices to the store's now
    spans_from: int  # the first line of ``spans``
    spans: list[list[tuple[int, int]]] | None  # matches of the rows around the hit; None: too slow


class _Spans(NamedTuple):
    """A highlight worker's result."""

    key: _SearchKey
    dropped: int
    start: int
    spans: list[list[tuple[int, int]]]


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
    final: bool = True  # False: drawn before its matches were worked out (not cached)


class _WrapLayout:
    """Where each line starts when lines wrap at ``width`` cells: ``starts[i] - base`` is the
    first row of line ``i``. Lines are laid out as they come (:meth:`extend` only looks at
    lines it has not seen); dropping old lines moves ``base`` instead of rewriting every
    start."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.starts: array[int] = array("q")
        self.end = 0  # rows laid out, counted from the first line ever laid out
        self.base = 0

    @property
    def rows(self) -> int:
        return self.end - self.base

    def extend(self, store: LogStore) -> None:
        starts, width, end = self.starts, self.width, self.end
        short = width // _TAB  # a character takes at most a tab's 8 cells
        for first in range(len(starts), len(store), CHUNK_LINES):
            texts = store.lines(first, min(len(store), first + CHUNK_LINES))
            # Most lines need no measuring (list comprehension: this runs a million times).
            rows = [
                1 if len(text) <= short else max(1, -(-line_cells(text[:_RENDER_CHARS]) // width))
                for text in texts
            ]
            starts.extend(accumulate(rows[:-1], initial=end))
            end += sum(rows)
        self.end = end

    def drop(self, count: int) -> int:
        """Forget the first ``count`` lines; returns the rows they took."""
        if count >= len(self.starts):
            gone = self.rows
            self.starts = array("q")
            self.base = self.end
            return gone
        gone = self.starts[count] - self.base
        del self.starts[:count]
        self.base = self.starts[0]
        return gone

    def row_of(self, index: int) -> int:
        if index >= len(self.starts):
            return self.rows
        return self.starts[max(0, index)] - self.base

    def line_at(self, row: int) -> tuple[int, int]:
        """(line, row within it) shown on ``row``."""
        if not self.starts:
            return 0, 0
        i = max(0, bisect_right(self.starts, row + self.base) - 1)
        return i, row + self.base - self.starts[i]


_NEAR_LINES = 2048
"""``n``, ``N`` and a new search first look this many lines from where they start on the UI
thread (well under a millisecond for a sane pattern); only past them does a worker search, whose
answer waits behind a flood's line events in the app's queue (~200 ms p99 measured)."""

_NEAR_SECONDS = 0.005


def _find_near(
    snapshot: LogSnapshot,
    key: _SearchKey,
    start: int,
    backwards: bool,
    rows: int,
    highlight: bool,
) -> _Found | None:
    """The match a worker's ``find`` would give when it lies within :data:`_NEAR_LINES` of
    ``start`` (no wrapping), with the highlights of the rows a jump brings into view; None when
    there is none that near, or the pattern is invalid or slow (the worker says so)."""
    n = len(snapshot)
    if n == 0:
        return None
    start %= n
    if backwards:
        lo, hi = max(0, start - _NEAR_LINES + 1), start + 1
    else:
        lo, hi = start, min(n, start + _NEAR_LINES)
    pattern, regex, case = key.pattern, key.regex, key.ignore_case
    limit = _NEAR_SECONDS
    try:
        lines = snapshot.find_all(
            pattern, regex=regex, ignore_case=case, start=lo, stop=hi, timeout=limit
        )
        if not lines:
            return None
        line = lines[-1] if backwards else lines[0]
        first = snapshot.spans(
            pattern, regex=regex, ignore_case=case, start=line, stop=line + 1, timeout=limit
        )
        hit = Hit(line, *(first[0][0] if first and first[0] else (0, 0)))
        if not highlight:
            return _Found(key, hit, snapshot.dropped, 0, [])
        spans_from = max(0, line - rows)
        spans = snapshot.spans(
            pattern,
            regex=regex,
            ignore_case=case,
            start=spans_from,
            stop=line + rows,
            max_chars=_RENDER_CHARS,
            timeout=limit,
        )
    except (SearchTimeout, ValueError):
        return None
    return _Found(key, hit, snapshot.dropped, spans_from, spans)


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
        # Half the pane's width at a time: an 800-column compiler line is a few presses away.
        Binding(
            "shift+left",
            "scroll_left(True)",
            "Left half a pane",
            show=False,
            tooltip="Scroll left by half the pane's width",
            id="log.half_left",
        ),
        Binding(
            "shift+right",
            "scroll_right(True)",
            "Right half a pane",
            show=False,
            tooltip="Scroll right by half the pane's width",
            id="log.half_right",
        ),
        # What less, vim, k9s and lazydocker users reach for first.
        Binding("j", "scroll_down", "Down", show=False, tooltip="Line down", id="log.j"),
        Binding("k", "scroll_up", "Up", show=False, tooltip="Line up", id="log.k"),
        Binding("g", "scroll_home", "Top", show=False, tooltip="Top of the log", id="log.g"),
        Binding(
            "G",
            "scroll_end",
            "Bottom",
            show=False,
            tooltip="Bottom of the log, following it",
            id="log.G",
        ),
        Binding(
            "ctrl+d",
            "half_page_down",
            "Half page down",
            show=False,
            tooltip="Half a page down",
            id="log.half_down",
        ),
        Binding(
            "ctrl+u",
            "half_page_up",
            "Half page up",
            show=False,
            tooltip="Half a page up",
            id="log.half_up",
        ),
        Binding(
            "y",
            "copy_line",
            "Copy line",
            show=False,
            tooltip="Copy the selected line: the match, else the error line, else the top one",
            id="log.copy",
        ),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-pane--match",
        "log-pane--current-match",
        "log-pane--highlight",
        "log-pane--marker",
        "log-pane--continued",
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
    LogPane > .log-pane--continued {
        color: $accent;
        text-style: bold;
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

    class ViewChanged(Message):
        """Wrapping was turned on or off, or the view scrolled sideways: the frame around the
        pane says so."""

        def __init__(self, pane: LogPane) -> None:
            super().__init__()
            self.pane = pane

        @property
        def control(self) -> LogPane:
            return self.pane

    class SearchDone(Message):
        """A search (``/``, ``n``, ``N``) ended, or its highlighting gave up. ``line``: the
        match shown (None: no match); ``error``: a one-line reason it failed (an invalid
        pattern, the time limit), for the operator."""

        def __init__(
            self, pane: LogPane, pattern: str, line: int | None, error: str | None = None
        ) -> None:
            super().__init__()
            self.pane = pane
            self.pattern = pattern
            self.line = line
            self.error = error

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
        self._widest = 0  # cells of the widest line (line_cells), up to MAX_WIDTH
        self._measure(self.store)
        # Search state: the search shown, the one running in a worker, the count.
        self._search: _SearchKey | None = None
        self._match_line: int | None = None
        # Highlights: the matches of lines (store indices) worked out so far for the search,
        # lines drawn without theirs yet, and whether the pattern is quick enough to try.
        self._spans: dict[int, list[tuple[int, int]]] = {}
        self._want: set[int] = set()
        self._highlighting = False
        self._highlight_worker: Worker[_Spans] | None = None
        self._pending: _SearchKey | None = None
        self._search_worker: Worker[_Found] | None = None
        self._count_worker: Worker[list[int]] | None = None
        self._count_key: tuple[_SearchKey, int] | None = None
        self._counting_to = 0  # the running count worker counts lines up to this one
        self._count_target = 0  # lines held when the count was asked for
        self._counted = 0
        self._count: int | None = 0
        self._highlight_line: int | None = None
        # Rendering.
        self._lines: LRUCache[int, _StyledLine] = LRUCache(512)
        self._part_styles: dict[str, Style] = {}
        self._frame: _Frame | None = None
        # Long lines: wrapped (a layout per width, the current one first) or cut at the edge.
        self.wrap = False
        self._layouts: dict[int, _WrapLayout] = {}
        self._layout: _WrapLayout | None = None
        # Attempt marker lines (absolute indices: dropped + index), the current attempt's.
        self._separators: set[int] = set()
        self._attempt_from = 0
        for start in range(0, len(self.store), CHUNK_LINES):  # a store passed in
            chunk = self.store.lines(start, start + CHUNK_LINES)
            self._note_markers(chunk, self.store.dropped + start)

    # -- ingest ----------------------------------------------------------------------------

    def add_lines(self, lines: list[str]) -> None:
        """Append decoded lines; they reach the screen on the next flush (call from the app's
        event loop)."""
        if not lines:
            return
        self._note_markers(lines, self.store.dropped + len(self.store))
        self.store.append(lines)
        self._note_widths(lines)
        if not self.follow:
            self._unseen += len(lines)
        self._dirty = True

    def _note_markers(self, lines: list[str], at: int) -> None:
        """Attempt markers among ``lines``, the first of which is absolute line ``at``."""
        for i, line in enumerate(lines):
            if line.startswith(ATTEMPT_MARKER):
                self._separators.add(at + i)
                self._attempt_from = at + i

    def _measure(self, store: LogStore) -> None:
        """Note the widths of lines already in a store passed in."""
        for start in range(0, len(store), CHUNK_LINES):
            if self._widest >= MAX_WIDTH:
                break
            self._note_widths(store.lines(start, start + CHUNK_LINES))

    def _note_widths(self, lines: list[str]) -> None:
        widest = self._widest
        if widest >= MAX_WIDTH:
            return  # the scroll range stops there anyway
        longest = max(map(len, lines))
        if longest * _TAB <= widest:
            return  # no line can be wider: a character is at most a tab's 8 cells
        joined = "".join(lines)
        if joined.isascii() and "\t" not in joined:
            self._widest = max(widest, longest)
            return
        for line in lines:
            if len(line) * _TAB > widest and (
                len(line) > widest or "\t" in line or not line.isascii()
            ):
                widest = max(widest, line_cells(line[:_RENDER_CHARS]))
                if widest >= MAX_WIDTH:
                    break
        self._widest = widest

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
        size = self._content_size()
        if size != self.virtual_size:
            self._grow(size)
        else:
            self.refresh()
        if self.follow:
            self._scroll_to_end()

    def _grow(self, size: Size) -> None:
        """The virtual size after new lines, without a layout of the whole screen.

        ``virtual_size`` is a layout reactive: set as usual, every flush of every pane would
        reflow and repaint the whole dashboard (the title, the side panel, the footer, the
        other panes) several times a second during a flood. A ScrollView's place on the screen
        does not depend on its virtual size (``ScrollView._size_updated`` reads its own), only
        its scrollbars do: update them and repaint the pane. A scrollbar appearing or going
        changes the pane's content region, and ``show_vertical_scrollbar`` /
        ``show_horizontal_scrollbar`` are layout reactives themselves: that case still lays
        out. Before the first layout (no container size yet) the size is set as usual."""
        if not self.container_size:
            self.virtual_size = size
            return
        self.set_reactive(ScrollView.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def _content_size(self) -> Size:
        """The virtual size: the widest line by the lines, or the wrap width by the rows."""
        layout = self._layout
        if layout is None:
            return Size(min(self._widest, MAX_WIDTH), len(self.store))
        layout.extend(self.store)  # only lines added since the last flush
        return Size(layout.width, layout.rows)

    def _lines_dropped(self, count: int) -> None:
        """The store dropped ``count`` old lines: every index moved down by that many."""
        rows = count
        if self._layout is not None:
            rows = self._layout.drop(count)
        for width in [w for w in self._layouts if self._layouts[w] is not self._layout]:
            del self._layouts[width]  # laid out against indices that moved

        def shift(index: int | None) -> int | None:
            return None if index is None or index < count else index - count

        self._match_line = shift(self._match_line)
        self._highlight_line = shift(self._highlight_line)
        self._spans.clear()  # by index: worked out again as rows are drawn
        self._want.clear()
        self._lines.clear()
        if not self.follow:
            self._scroll_quietly(y=max(0, self.scroll_offset.y - rows))

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
        if self.wrap and self._wrap_width() != (self._layout and self._layout.width):
            self._relayout()
        if self.follow:
            self.call_after_refresh(self._follow_end)

    def _follow_end(self) -> None:
        # Asked for while following; a search result may have stopped following since (the
        # search box closing resizes the pane before its search worker answers).
        if self.follow:
            self._scroll_to_end()

    # -- long lines ------------------------------------------------------------------------

    def _wrap_width(self) -> int:
        # As if the vertical scrollbar were shown: it appearing must not lay the log out again
        # (a line wraps two cells early when there is none).
        return max(8, self.content_region.width - self.styles.scrollbar_size_vertical)

    def set_wrap(self, wrap: bool) -> None:
        """Wrap long lines (True) or cut them at the pane's edge and scroll sideways; the line
        at the top of the view stays there."""
        if wrap == self.wrap:
            return
        top = self._line_at_row(self.scroll_offset.y)
        self.wrap = wrap
        if not wrap:
            self._layout = None
        self._relayout(top)
        self.post_message(self.ViewChanged(self))

    def _relayout(self, top: int | None = None) -> None:
        """Lay out at the current width (a width seen before keeps its layout) and keep line
        ``top`` at the top of the view (unless following)."""
        if top is None:
            top = self._line_at_row(self.scroll_offset.y)
        if self.wrap:
            width = self._wrap_width()
            layout = self._layouts.get(width)
            if layout is None:
                if len(self._layouts) >= 3:
                    self._layouts.clear()
                layout = self._layouts[width] = _WrapLayout(width)
            self._layout = layout
        self.virtual_size = self._content_size()
        if self.follow:
            self._scroll_to_end()
        else:
            self._scroll_quietly(0, self._row_of_line(top))

    def _line_at_row(self, row: int) -> int:
        """The line shown on virtual row ``row``."""
        if self._layout is None:
            return row
        return self._layout.line_at(row)[0]

    def _row_of_line(self, index: int) -> int:
        """The first virtual row of line ``index``."""
        if self._layout is None:
            return index
        return self._layout.row_of(index)

    @property
    def scroll_column(self) -> int:
        """The first cell shown of each line (0 when wrapping)."""
        return 0 if self.wrap else round(self.scroll_offset.x)

    def watch_scroll_x(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_x(old_value, new_value)
        if round(old_value) != round(new_value):
            self.post_message(self.ViewChanged(self))

    @property
    def attempt_start(self) -> int:
        """Index of the current attempt's first line (its marker; 0 for the first)."""
        return max(0, self._attempt_from - self.store.dropped)

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

    def _h_step(self, half: bool) -> int:
        return max(_H_STEP, self.scrollable_content_region.width // 2) if half else _H_STEP

    def action_scroll_left(self, half: bool = False) -> None:
        x = self.scroll_offset.x - self._h_step(half)
        self.scroll_to(x=x, animate=False, immediate=True)

    def action_scroll_right(self, half: bool = False) -> None:
        x = self.scroll_offset.x + self._h_step(half)
        self.scroll_to(x=x, animate=False, immediate=True)

    @property
    def _half_page(self) -> int:
        return max(1, self.scrollable_content_region.height // 2)

    def action_half_page_up(self) -> None:
        self.follow = False
        self.scroll_to(y=self.scroll_offset.y - self._half_page, animate=False, immediate=True)

    def action_half_page_down(self) -> None:
        self.scroll_to(y=self.scroll_offset.y + self._half_page, animate=False, immediate=True)
        if self.scroll_offset.y >= self.max_scroll_y:
            self.follow = True

    @property
    def selected_line(self) -> int | None:
        """The line ``y`` copies. The pane has no cursor of its own, and needs none: the
        selected line is the current search match (``/``, ``n``, ``N``) when there is one,
        else the line ``e`` jumped to, else the line at the top of the view. None: no lines."""
        if not len(self.store):
            return None
        for line in (self._match_line, self._highlight_line):
            if line is not None and line < len(self.store):
                return line
        return min(self._line_at_row(self.scroll_offset.y), len(self.store) - 1)

    def action_copy_line(self) -> None:
        """Copy the selected line (:attr:`selected_line`) to the terminal's clipboard."""
        index = self.selected_line
        if index is None:
            self.app.bell()
            return
        copy_text(self.app, self.store.line(index), f"line {index + 1:,}")

    @property
    def unseen_lines(self) -> int:
        """New lines below the view while not following (what the marker row shows)."""
        if self.follow or not self._unseen:
            return 0
        last = self._line_at_row(self.scroll_offset.y + self.scrollable_content_region.height - 1)
        below = len(self.store) - 1 - last
        return max(0, min(self._unseen, below))

    def _show_line(self, index: int, column: int = 0) -> None:
        """Bring line ``index`` (and cell ``column`` of it) into view; stops following."""
        if self._dirty:
            # Lines not flushed yet are outside the scroll range: a jump to one of them (e,
            # a search, in the first tick of a flood) would be clamped short of it.
            self._flush()
        self.follow = False
        height = self.scrollable_content_region.height
        width = self.scrollable_content_region.width
        x, y = self.scroll_offset
        row = index
        if self._layout is not None:  # wrapped: the row that holds the column
            row = self._layout.row_of(index) + column // self._layout.width
            column = x = 0
        new_y: int | None = None
        # The last row may hold the "new lines" marker: keep the line above it.
        if not y <= row < y + max(1, height - 1):
            new_y = max(0, row - height // 3)
        new_x: int | None = None
        if not x <= column < x + width:
            new_x = max(0, column - width // 4)
        self._scroll_quietly(new_x, new_y)

    # -- search ----------------------------------------------------------------------------

    @property
    def search_pattern(self) -> str | None:
        """The remembered search pattern, if any."""
        return None if self._search is None else self._search.pattern

    @property
    def match_line(self) -> int | None:
        """Index of the current search match."""
        return self._match_line

    @property
    def highlight_line(self) -> int | None:
        """Index of the line highlighted by :meth:`action_first_error`."""
        return self._highlight_line

    @property
    def searching(self) -> bool:
        """A search (``/``, ``n``, ``N``), a match count or a highlight worker is running."""
        return (
            self._search_worker is not None
            or self._count_worker is not None
            or self._highlight_worker is not None
        )

    def search(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        backwards: bool = False,
    ) -> None:
        """Search for ``pattern`` in a worker thread and jump to its first match from the top of
        the view (the last one from the bottom of the view, ``backwards``), wrapping; matches
        on visible rows are highlighted. An empty pattern clears the search.

        Returns at once; :class:`SearchDone` says how it ended. An invalid pattern leaves the
        old search in place; one that runs past :data:`SEARCH_SECONDS` clears the search.
        """
        if not pattern:
            self.clear_search()
            return
        self._start_search(_SearchKey(pattern, regex, ignore_case), backwards)

    def clear_search(self) -> None:
        if self._search_worker is not None:
            self._search_worker.cancel()
            self._search_worker = None
        self._pending = None
        self._forget_search()

    def _forget_search(self) -> None:
        for worker in (self._count_worker, self._highlight_worker):
            if worker is not None:
                worker.cancel()
        self._count_worker = self._highlight_worker = None
        self._search = None
        self._highlighting = False
        self._spans.clear()
        self._want.clear()
        self._match_line = None
        self._count_key = None
        self._lines.clear()
        self.refresh()

    def action_next_match(self) -> None:
        if self._search is not None:
            self._start_search(self._search, backwards=False)

    def action_previous_match(self) -> None:
        if self._search is not None:
            self._start_search(self._search, backwards=True)

    def _start_search(self, key: _SearchKey, backwards: bool) -> None:
        """Search from the current match when it is in view, else from the view's edge, in a
        worker that supersedes (cancels) the one before."""
        top = self._line_at_row(self.scroll_offset.y)
        bottom = self._line_at_row(self.scroll_offset.y + self.scrollable_content_region.height - 1)
        current = self._match_line if key == self._search else None
        if current is not None and top <= current <= bottom:
            start = current - 1 if backwards else current + 1
        else:
            start = bottom if backwards else top
        snapshot = self.store.snapshot()
        rows = max(1, self.scrollable_content_region.height)
        highlight = self._highlighting or key != self._search

        def find() -> _Found:
            worker = get_current_worker()
            started = time.monotonic()
            hit = snapshot.find(
                key.pattern,
                regex=key.regex,
                ignore_case=key.ignore_case,
                start=start,
                backwards=backwards,
                timeout=SEARCH_SECONDS,
                cancelled=lambda: worker.is_cancelled,
            )
            if hit is None or not highlight:
                return _Found(key, hit, snapshot.dropped, 0, [])
            # The rows the jump can bring into view, highlighted before they are drawn.
            first = max(0, hit.line - rows)
            left = SEARCH_SECONDS - (time.monotonic() - started)
            try:
                spans: list[list[tuple[int, int]]] | None = snapshot.spans(
                    key.pattern,
                    regex=key.regex,
                    ignore_case=key.ignore_case,
                    start=first,
                    stop=hit.line + rows,
                    max_chars=_RENDER_CHARS,
                    timeout=max(0.01, min(HIGHLIGHT_SECONDS, left - 0.1)),
                    cancelled=lambda: worker.is_cancelled,
                )
            except SearchTimeout:
                spans = None
            return _Found(key, hit, snapshot.dropped, first, spans)

        near = _find_near(snapshot, key, start, backwards, rows, highlight)
        if near is not None:
            # Found on the UI thread: no worker's answer queued behind a flood's events.
            if self._search_worker is not None:
                self._search_worker.cancel()
                self._search_worker = None
            self._found(near)
            return
        self._pending = key
        worker = self._search_worker = self.run_worker(
            find,
            name="log-search",
            group="log-search",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )
        # The engine stops itself at the limit, but the regex package's own timeout can run
        # late (up to twice over, measured here): the operator hears at the limit regardless.
        self.set_timer(SEARCH_SECONDS, lambda: self._overdue(worker), name="log-search-limit")

    def _overdue(self, worker: Worker[_Found]) -> None:
        if worker is self._search_worker and self._pending is not None:
            worker.cancel()
            self._search_worker = None
            self._search_failed(self._pending, SearchTimeout(SEARCH_SECONDS))

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker is self._highlight_worker:
            if event.state == WorkerState.SUCCESS:
                self._highlight_worker = None
                self._highlighted(worker.result)
            elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
                self._highlight_worker = None
                if event.state == WorkerState.ERROR:
                    self._highlighting_stopped()
        elif worker is self._search_worker:
            if event.state == WorkerState.SUCCESS:
                self._search_worker = None
                self._found(worker.result)
            elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
                self._search_worker = None
                if event.state == WorkerState.ERROR and self._pending is not None:
                    self._search_failed(self._pending, worker.error)
        elif worker is self._count_worker:
            if event.state == WorkerState.SUCCESS:
                self._count_worker = None
                self._counted_more(worker.result)
            elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
                self._count_worker = None
                if event.state == WorkerState.ERROR:
                    self._count = None  # ran out of time (or failed): unknown

    def _found(self, found: _Found | None) -> None:
        assert found is not None
        self._pending = None
        if found.key != self._search:
            self._count_key = None
            if self._highlight_worker is not None:
                self._highlight_worker.cancel()
                self._highlight_worker = None
            self._spans.clear()
            self._highlighting = True
        self._search = found.key
        self._want.clear()
        # Old lines may have been dropped while the worker searched.
        shift = found.dropped - self.store.dropped
        line = None
        if found.hit is not None:
            line = found.hit.line + shift
            if line < 0:
                line = None
        self._match_line = line
        if found.spans is None:
            if self._highlighting:
                self._highlighting_stopped()
        elif self._highlighting:
            for i, spans in enumerate(found.spans, found.spans_from + shift):
                if i >= 0:
                    self._spans[i] = spans
        self._lines.clear()
        if line is not None and found.hit is not None:
            prefix = self.store.line(line)[: min(found.hit.start, _RENDER_CHARS)]
            self._show_line(line, line_cells(prefix))
        self.refresh()
        self.post_message(self.SearchDone(self, found.key.pattern, line))
        self._count_matches()

    def _search_failed(self, key: _SearchKey, error: BaseException | None) -> None:
        self._pending = None
        if isinstance(error, SearchTimeout):
            self._forget_search()  # no highlights of a search that did not finish
            reason = str(error)
        elif isinstance(error, ValueError):
            reason = str(error)  # an invalid pattern: the old search stays
        else:
            reason = f"search failed: {error}"
        self.post_message(self.SearchDone(self, key.pattern, None, reason))

    @property
    def match_count(self) -> int | None:
        """Lines matching the current search (0 without one), counted by workers after each
        search, ``n`` and ``N`` up to the lines held then, only over lines not counted before:
        it grows as the slices finish (:attr:`searching` is true until then). None when a slice
        ran past :data:`SEARCH_SECONDS` (the pattern is too slow to count with)."""
        return 0 if self._search is None else self._count

    def _count_matches(self) -> None:
        """Count the current search's matches up to the last line held now."""
        key = self._search
        if key is None:
            return
        count_key = (key, self.store.dropped)
        if count_key != self._count_key:
            # Another search, or lines dropped (every index moved): count afresh.
            if self._count_worker is not None:
                self._count_worker.cancel()
                self._count_worker = None
            self._count_key, self._counted, self._count = count_key, 0, 0
        self._count_target = len(self.store)
        self._count_slice()

    def _count_slice(self) -> None:
        """Count the next :data:`_COUNT_SLICE` lines in a worker: a slice takes a fraction of
        :data:`SEARCH_SECONDS` for any sane pattern, so running out of time says the pattern
        backtracks, not that the log is big."""
        if self._count_worker is not None or self._count is None or self._count_key is None:
            return
        key, dropped = self._count_key
        if dropped != self.store.dropped:
            self._count_matches()
            return
        start = self._counted
        stop = min(start + _COUNT_SLICE, self._count_target, len(self.store))
        if start >= stop:
            return
        snapshot = self.store.snapshot()

        def count() -> list[int]:
            worker = get_current_worker()
            return snapshot.find_all(
                key.pattern,
                regex=key.regex,
                ignore_case=key.ignore_case,
                start=start,
                stop=stop,
                timeout=SEARCH_SECONDS,
                cancelled=lambda: worker.is_cancelled,
            )

        self._counting_to = stop
        self._count_worker = self.run_worker(
            count,
            name="log-count",
            group="log-count",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _counted_more(self, found: list[int] | None) -> None:
        if found is None or self._count is None or self._count_key is None:
            return
        if self._count_key != (self._search, self.store.dropped):
            self._count_matches()  # counted lines that have moved: start again
            return
        self._count += len(found)
        self._counted = self._counting_to
        self._count_slice()

    def _highlight_wanted(self) -> None:
        """Work out, in a worker, the matches of rows drawn without theirs."""
        key = self._search
        if self._highlight_worker is not None or not self._want or key is None:
            return
        top = self._line_at_row(self.scroll_offset.y)
        last = self._line_at_row(self.scroll_offset.y + self.scrollable_content_region.height - 1)
        bottom = min(last + 1, len(self.store))
        wanted = [i for i in self._want if top <= i < bottom and i not in self._spans]
        self._want.clear()
        if not wanted or not self._highlighting:
            return
        start, stop = min(wanted), max(wanted) + 1
        snapshot = self.store.snapshot()

        def find_spans() -> _Spans:
            worker = get_current_worker()
            spans = snapshot.spans(
                key.pattern,
                regex=key.regex,
                ignore_case=key.ignore_case,
                start=start,
                stop=stop,
                max_chars=_RENDER_CHARS,
                timeout=HIGHLIGHT_SECONDS,
                cancelled=lambda: worker.is_cancelled,
            )
            return _Spans(key, snapshot.dropped, start, spans)

        self._highlight_worker = self.run_worker(
            find_spans,
            name="log-highlight",
            group="log-highlight",
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _highlighted(self, found: _Spans | None) -> None:
        current = found is not None and found.key == self._search and self._highlighting
        if found is not None and current and found.dropped == self.store.dropped:
            for i, spans in enumerate(found.spans, found.start):
                self._spans[i] = spans
                self._lines.discard(i)
            self.refresh()
        self._highlight_wanted()  # rows drawn while the worker ran

    def _highlighting_stopped(self) -> None:
        """The pattern is too slow to highlight with: draw rows plain, and say so."""
        self._highlighting = False
        self._spans.clear()
        self._want.clear()
        self._lines.clear()
        self.refresh()
        if self._search is not None:
            self.post_message(
                self.SearchDone(
                    self,
                    self._search.pattern,
                    self._match_line,
                    "matches are not highlighted: the pattern backtracks too much on these "
                    "lines; simplify it",
                )
            )

    def action_first_error(self) -> None:
        """Jump to the first line that looks like a build error in the current attempt and
        highlight it."""
        index = self.store.first_error(self.attempt_start)
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
        layout = self._layout
        if layout is None:
            index = frame.scroll_y + y
            x0 = frame.scroll_x
            x1 = x0 + width
        else:  # wrapped: a slice of the layout's width of one line
            if frame.scroll_y + y >= layout.rows:
                return Strip.blank(width, base)
            index, part = layout.line_at(frame.scroll_y + y)
            x0 = part * layout.width
            x1 = x0 + min(width, layout.width)
        if index >= len(self.store):
            return Strip.blank(width, base)
        line = self._lines.get(index)
        if line is None:
            line = self._styled_line(index, base)
            if line.final:
                self._lines[index] = line
        if layout is None and width > 1 and line.cells > x1:
            # Unwrapped and cut: an arrow in the last cell says the line goes on.
            strip = self._row(line, x0, x1 - 1, width - 1, base)
            style = base + self._component("log-pane--continued")
            return Strip([*strip, Segment("→", style)], width)
        return self._row(line, x0, x1, width, base)

    def _row(self, line: _StyledLine, x0: int, x1: int, width: int, base: Style) -> Strip:
        """Cells ``x0`` to ``x1`` of ``line``, padded to ``width``."""
        if not line.ascii:
            segments = [Segment(text, style) for text, style in line.runs]
            return (
                Strip(segments, line.cells)
                .crop_extend(x0, x1, base)
                .extend_cell_length(width, base)
            )
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
        elif self._separators and index + self.store.dropped in self._separators:
            # Shorter than the marker it stands for: the measured width still holds.
            text = f"── {text.removeprefix(_MARKER_PREFIX)} ──"
            line_style = base + self._component("log-pane--marker")
        spans: list[tuple[int, int]] = []
        final = True
        if self._search is not None and self._highlighting:
            known = self._spans.get(index)
            if known is None:
                final = False
                if not self._want:
                    self.call_later(self._highlight_wanted)
                self._want.add(index)
            else:
                spans = known
        if "\t" in text:
            text, spans = _expand_tabs(text, spans)
        ascii = text.isascii()  # neutralised and tab-expanded: one cell per character
        cells = _cells(text)  # = line_cells of the line (tabs expanded just above)
        if not spans:
            return _StyledLine([(text, line_style)] if text else [], ascii, cells, final)
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
