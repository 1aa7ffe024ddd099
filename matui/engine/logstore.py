"""An append-only, memory-lean store of one build job's log lines, with fast search.

Lines are neutralised once, on the way in (:func:`matui.engine.text.neutralise`), so nothing a
remote build prints can reach the operator's terminal as an escape sequence.

Layout: lines are kept in *chunks*. A sealed chunk is one ``str`` holding up to
:data:`CHUNK_LINES` lines joined by ``"\\n"`` plus an ``array('I')`` of line start offsets, instead
of one Python ``str`` object (49+ bytes of header each) per line. An 80-character ASCII line then
costs about 85 bytes (80 text, 1 separator, 4 offset). Only the newest, unsealed chunk (the
*tail*, fewer than :data:`CHUNK_LINES` lines) is a plain list of strings. One non-ASCII character
makes CPython store its whole chunk at 2 or 4 bytes per character; that is bounded by the chunk.

Memory stays bounded: once more than ``memory_limit`` characters of sealed chunks are held, the
oldest are written to an anonymous temporary file (UTF-8, in ``spill_dir`` or the system's
temporary directory) and read back on demand, a few kept decoded. Only a chunk's file position
and line count stay in memory (its line offsets are recomputed on reading).

Search runs one compiled regex over a joined chunk (a C loop over megabytes) rather than a Python
loop over lines. Patterns are matched per line: ``re.MULTILINE`` is set, so ``^`` and ``$`` anchor
at line boundaries, and a match that runs across a line break is checked again against its first
line alone, so no result depends on a neighbouring line.

Standard library only (engine code).
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
import unicodedata
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any

from matui.engine.text import neutralise

__all__ = ["CHUNK_LINES", "ERROR_RE", "LogStore", "compile_pattern", "display_width"]

CHUNK_LINES = 4096
"""Lines per sealed chunk."""

_CHUNK_CHARS = 1 << 20
"""A chunk is sealed early once it holds this many characters, so one chunk stays small and its
offsets fit ``array('I')`` whatever the line lengths."""

_BACKWARD_WINDOW = 256

MEMORY_LIMIT = 128 << 20
"""Characters of sealed chunks a store keeps in memory by default (~1.6 M 80-byte lines); older
chunks go to an anonymous spill file, so a gigabyte of log costs about this much RAM."""

_LOADED_CHUNKS = 8
"""Spilled chunks kept decoded after a read (rendering reads the same few chunks again)."""
"""Backward search looks for the last match in windows of this many lines."""

ERROR_RE = re.compile(
    # After an optional ``#N `` step prefix and an optional ``12.34 `` output timestamp, the line
    # starts with ``ERROR`` (buildx ``#N ERROR: ...`` and the final ``ERROR: failed to solve``)
    # or a compiler-style ``error:`` / ``Error:`` / ``fatal error:`` / ``error[E0425]:``, or
    # gcc/clang's ``file.c:3:5: error:``.
    r"^(?:#\d+ )?(?:\d+(?:\.\d+)? )?"
    r"(?:ERROR\b|(?:fatal )?[Ee]rror(?:\[\w+\])?:|\S+:\d+(?::\d+)?: (?:fatal )?error:)"
    # Anywhere in a line: a binary for another architecture.
    r"|exec format error",
    re.MULTILINE,
)
"""What :meth:`LogStore.first_error` treats as a build error line."""

_ERROR_LITERALS = (re.compile("rror"), re.compile("RROR"))


@lru_cache(maxsize=64)
def compile_pattern(pattern: str, regex: bool = True, ignore_case: bool = True) -> re.Pattern[str]:
    """Compile a search pattern (``regex=False``: a literal string).

    ``re.MULTILINE`` is always set: the store searches joined chunks, one line per text line.
    ``ignore_case`` is dropped for a pattern without cased characters (``#12``, ``[0-9]+``):
    the result is the same and the search much faster. Raises ValueError for an invalid
    regular expression.
    """
    flags = re.MULTILINE
    if ignore_case and pattern.lower() != pattern.upper():
        flags |= re.IGNORECASE
    try:
        return re.compile(pattern if regex else re.escape(pattern), flags)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class _Matcher:
    rx: re.Pattern[str]
    """Searched in the stored text."""
    lower_rx: re.Pattern[str] | None
    """For a case-blind ASCII pattern: an equivalent case-sensitive pattern, searched in
    ``text.lower()`` of ASCII chunks instead. Python's ``re.IGNORECASE`` gives up the fast
    literal scans; lowering a chunk and searching it case-sensitively is five to ten times
    faster."""


@lru_cache(maxsize=64)
def _matcher(pattern: str, regex: bool, ignore_case: bool) -> _Matcher:
    rx = compile_pattern(pattern, regex, ignore_case)
    lower_rx = None
    if rx.flags & re.IGNORECASE and pattern.isascii():
        if not regex:
            lower_rx = re.compile(re.escape(pattern.lower()), re.MULTILINE)
        else:
            lower_rx = _lowered_pattern(pattern)
    return _Matcher(rx, lower_rx)


def _lowered_pattern(pattern: str) -> re.Pattern[str] | None:
    """``pattern`` (ASCII) rewritten so that, searched case-sensitively in lowercased ASCII
    text, it matches exactly where ``pattern`` with IGNORECASE matches the original text: every
    ASCII capital in a literal or a set becomes (or gains) its small letter.

    Uses the ``re`` module's own parser; None (search with IGNORECASE as before) for anything
    it does not handle, e.g. a ``(?-i:...)`` group, or a ``re`` internals change.
    """
    try:
        # re's parser and compiler: private, but shipped with every CPython 3.11+.
        _parser = importlib.import_module("re._parser")
        _compiler = importlib.import_module("re._compiler")
        sre = importlib.import_module("re._constants")

        def lower(c: int) -> int:
            return c + 32 if 65 <= c <= 90 else c

        def walk(items: Any) -> None:
            for i, (op, av) in enumerate(items):
                if op in (sre.LITERAL, sre.NOT_LITERAL):
                    items[i] = (op, lower(av))
                elif op is sre.IN:
                    extra = []
                    for k, (item_op, item_av) in enumerate(av):
                        if item_op is sre.LITERAL:
                            av[k] = (item_op, lower(item_av))
                        elif item_op is sre.RANGE:
                            lo, hi = max(item_av[0], 65), min(item_av[1], 90)
                            if lo <= hi:
                                extra.append((sre.RANGE, (lo + 32, hi + 32)))
                        elif item_op not in (sre.NEGATE, sre.CATEGORY):
                            raise ValueError(item_op)
                    av.extend(extra)
                elif op is sre.SUBPATTERN:
                    group, add_flags, del_flags, sub = av
                    if del_flags & re.IGNORECASE:
                        raise ValueError("case-sensitive group")
                    items[i] = (op, (group, add_flags & ~re.IGNORECASE, del_flags, sub))
                    walk(sub)
                elif op is sre.BRANCH:
                    for sub in av[1]:
                        walk(sub)
                elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
                    walk(av[2])
                elif op in (sre.ASSERT, sre.ASSERT_NOT):
                    walk(av[1])
                elif op is sre.ATOMIC_GROUP:
                    walk(av)
                elif op is sre.GROUPREF_EXISTS:
                    walk(av[1])
                    if av[2] is not None:
                        walk(av[2])
                elif op not in (sre.ANY, sre.AT, sre.CATEGORY, sre.GROUPREF):
                    raise ValueError(op)

        parsed = _parser.parse(pattern, re.IGNORECASE | re.MULTILINE)
        walk(parsed.data)
        parsed.state.flags &= ~re.IGNORECASE
        compiled: re.Pattern[str] = _compiler.compile(parsed, re.MULTILINE)
        return compiled
    except Exception:  # any surprise: keep the plain IGNORECASE search
        return None


def _scan(
    rx: re.Pattern[str],
    text: str,
    offsets: array[int] | None,
    k0: int,
    k1: int,
    limit: int,
    verify: re.Pattern[str] | None = None,
) -> list[int]:
    """Chunk lines in [k0, k1) where ``rx`` (and ``verify``, if given) match, in order, at most
    ``limit`` of them. ``text`` is the chunk's lines joined by "\n"; ``offsets`` their starts
    (None: the whole chunk, offsets not computed yet; computed only if ``rx`` matches)."""
    found: list[int] = []
    if offsets is None:
        if rx.search(text) is None:
            return found
        offsets = _text_offsets(text)
    pos, end = offsets[k0], offsets[k1] - 1
    search = rx.search
    while pos <= end:
        m = search(text, pos, end)
        if m is None:
            break
        k = bisect_right(offsets, m.start(), k0, k1) - 1
        start, line_end = offsets[k], offsets[k + 1] - 1
        # A match running past its line's end (``\s`` on the "\n", ``a\nb``) must be
        # checked against the line alone.
        if (m.end() <= line_end or search(text, start, line_end) is not None) and (
            verify is None or verify.search(text, start, line_end) is not None
        ):
            found.append(k)
            if len(found) >= limit:
                break
        pos = line_end + 1
    return found


def _scan_matcher(
    matcher: _Matcher, text: str, offsets: array[int] | None, k0: int, k1: int, limit: int
) -> list[int]:
    if matcher.lower_rx is not None and text.isascii():
        # ASCII lowercasing keeps every offset.
        return _scan(matcher.lower_rx, text.lower(), offsets, k0, k1, limit)
    return _scan(matcher.rx, text, offsets, k0, k1, limit)


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))
_ONE_MORE = (1).__add__


def _printable(text: str) -> bool:
    """``text.isprintable()``, three times faster for ASCII text (the usual case)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return text.isprintable()


def _line_offsets(lines: list[str]) -> array[int]:
    """Start offsets of ``lines`` joined by "\n", plus ``len(joined) + 1``."""
    return array("I", accumulate(map(_ONE_MORE, map(len, lines)), initial=0))


def _text_offsets(text: str) -> array[int]:
    """Start offsets of the lines of ``text`` (lines joined by "\n"), plus ``len(text) + 1``."""
    return _line_offsets(text.split("\n"))


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(line: str) -> int:
    """Terminal cells a line takes: tabs expanded to 8-column stops, East Asian wide characters
    counted twice, combining and format characters not at all."""
    if line.isascii():
        return len(line.expandtabs()) if "\t" in line else len(line)
    width = 0
    for ch in line:
        if ch == "\t":
            width += 8 - width % 8
        else:
            width += _char_width(ch)
    return width


@dataclass(frozen=True)
class _OnDisk:
    """Where a spilled chunk's UTF-8 text lies in the spill file."""

    position: int
    size: int


class LogStore:
    """Append-only lines of one job's log.

    Indices count retained lines from 0. With ``max_lines`` the oldest lines are dropped a whole
    sealed chunk at a time once more than ``max_lines`` are held (so at least ``max_lines`` are
    always kept); :attr:`dropped` says how many went, and every index shifts down by that many.
    ``memory_limit`` (characters; None: no limit) bounds the sealed text held in memory: older
    chunks move to a spill file and stay readable and searchable.
    """

    def __init__(
        self,
        *,
        max_lines: int | None = None,
        memory_limit: int | None = MEMORY_LIMIT,
        spill_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_lines is not None and max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.max_lines = max_lines
        self.memory_limit = memory_limit
        self.spill_dir = spill_dir
        # Sealed chunks: joined text (or where it was spilled), start offsets (one more than
        # lines: the last is len(text) + 1; None once spilled), line count, and the absolute
        # index of the chunk's first line. Spilled chunks are always the oldest.
        self._texts: list[str | _OnDisk] = []
        self._offsets: list[array[int] | None] = []
        self._sizes: list[int] = []
        self._starts: list[int] = []
        self._memory_chars = 0  # characters of sealed chunks held in memory
        self._spilled = 0  # the first this many sealed chunks are on disk
        self._spill: Any = None  # the spill file (unbuffered binary), once needed
        self._spill_end = 0
        self._loaded: OrderedDict[int, tuple[str, array[int]]] = OrderedDict()
        self._tail: list[str] = []
        self._tail_chars = 0
        self._tail_start = 0  # absolute index of the tail's first line
        self._tail_joined: tuple[str, array[int]] | None = None
        self._dropped = 0
        self._max_width = 0
        self._error_scanned = 0  # absolute: lines [dropped, scanned) hold no error line
        self._first_error: int | None = None  # absolute

    # -- size ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._tail_start + len(self._tail) - self._dropped

    @property
    def dropped(self) -> int:
        """Lines dropped from the front because of ``max_lines``."""
        return self._dropped

    @property
    def max_width(self) -> int:
        """Display width (:func:`display_width`) of the widest line ever appended."""
        return self._max_width

    # -- writing ---------------------------------------------------------------------------

    def append(self, lines: list[str]) -> None:
        """Append decoded lines (without line endings), neutralising each once.

        A line that still holds a ``"\\n"`` keeps its text but loses the break (neutralise drops
        every control character but TAB).
        """
        if not lines:
            return
        joined = "".join(lines)
        if not _printable(joined):
            # neutralise() returns a printable line as is: only the others need the call.
            lines = [line if line.isprintable() else neutralise(line) for line in lines]
            joined = "".join(lines)
        self._note_width(lines, joined)

        pos, count = 0, len(lines)
        while pos < count:
            part = lines[pos : pos + CHUNK_LINES - len(self._tail)]
            pos += len(part)
            self._tail.extend(part)
            self._tail_chars += len(joined) if len(part) == count else sum(map(len, part))
            if len(self._tail) >= CHUNK_LINES or self._tail_chars >= _CHUNK_CHARS:
                self._seal()
        self._tail_joined = None
        if self.max_lines is not None:
            self._drop_old()

    def _note_width(self, lines: list[str], joined: str) -> None:
        if joined.isascii() and "\t" not in joined:
            self._max_width = max(self._max_width, max(map(len, lines)))
            return
        widest = self._max_width
        for line in lines:
            # A line's width is at most 8 cells per character (a tab); skip the exact count
            # for lines that cannot beat the widest so far.
            if len(line) * 8 > widest and (
                len(line) > widest or "\t" in line or not line.isascii()
            ):
                widest = max(widest, display_width(line))
        self._max_width = widest

    def _seal(self) -> None:
        tail = self._tail
        text = "\n".join(tail)
        # offsets[k] = characters before line k = sum of earlier lengths + one "\n" each.
        offsets = _line_offsets(tail)
        self._texts.append(text)
        self._offsets.append(offsets)
        self._sizes.append(len(tail))
        self._starts.append(self._tail_start)
        self._tail_start += len(tail)
        self._tail = []
        self._tail_chars = 0
        self._memory_chars += len(text)
        if self.memory_limit is not None and self._memory_chars > self.memory_limit:
            self._spill_old(self.memory_limit * 3 // 4)

    def _spill_old(self, keep: int) -> None:
        """Move the oldest in-memory chunks to the spill file until ``keep`` characters are
        left in memory (the newest chunk always stays)."""
        try:
            if self._spill is None:
                # Lives as long as the store; deleted from the start (no name to clean up).
                self._spill = tempfile.TemporaryFile(  # noqa: SIM115
                    prefix="matui-log-", dir=self.spill_dir, buffering=0
                )
            while self._memory_chars > keep and self._spilled < len(self._texts) - 1:
                c = self._spilled
                text = self._texts[c]
                assert isinstance(text, str)
                data = text.encode("utf-8", "surrogatepass")
                self._spill.write(data)
                self._texts[c] = _OnDisk(self._spill_end, len(data))
                self._offsets[c] = None
                self._spill_end += len(data)
                self._memory_chars -= len(text)
                self._spilled += 1
        except OSError:
            # No room for a spill file: keep lines in memory rather than lose them.
            self.memory_limit = None

    def _chunk(self, c: int) -> tuple[str, array[int]]:
        """Sealed chunk ``c``'s text and line offsets, read back if it was spilled."""
        text = self._texts[c]
        if isinstance(text, str):
            offsets = self._offsets[c]
            assert offsets is not None
            return text, offsets
        start = self._starts[c]
        loaded = self._loaded.get(start)
        if loaded is not None:
            self._loaded.move_to_end(start)
            return loaded
        data = os.pread(self._spill.fileno(), text.size, text.position)
        decoded = data.decode("utf-8", "surrogatepass")
        loaded = (decoded, _text_offsets(decoded))
        self._loaded[start] = loaded
        if len(self._loaded) > _LOADED_CHUNKS:
            self._loaded.popitem(last=False)
        return loaded

    def _drop_old(self) -> None:
        assert self.max_lines is not None
        while self._texts and len(self) - self._sizes[0] >= self.max_lines:
            self._dropped += self._sizes[0]
            text = self._texts[0]
            if isinstance(text, str):
                self._memory_chars -= len(text)
            else:
                self._spilled -= 1
                self._loaded.pop(self._starts[0], None)
            del self._texts[0], self._offsets[0], self._sizes[0], self._starts[0]
        if self._first_error is not None and self._first_error < self._dropped:
            self._first_error = None
            self._error_scanned = self._dropped

    # -- reading ---------------------------------------------------------------------------

    def _absolute(self, i: int) -> int:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"line {i} out of range (0..{n - 1})")
        return i + self._dropped

    def line(self, i: int) -> str:
        """Line ``i`` (negative counts from the end)."""
        a = self._absolute(i)
        if a >= self._tail_start:
            return self._tail[a - self._tail_start]
        c = bisect_right(self._starts, a) - 1
        text, offsets = self._chunk(c)
        k = a - self._starts[c]
        return text[offsets[k] : offsets[k + 1] - 1]

    def lines(self, start: int, stop: int) -> list[str]:
        """Lines ``start`` to ``stop`` (slice semantics: clamped, empty when stop <= start)."""
        start, stop, _ = slice(start, stop).indices(len(self))
        out: list[str] = []
        for text, offsets, k0, k1, _base in self._segments(
            start + self._dropped, stop + self._dropped
        ):
            out.extend(text[offsets[k0] : offsets[k1] - 1].split("\n"))
        return out

    def _tail_segment(self) -> tuple[str, array[int]]:
        if self._tail_joined is None:
            self._tail_joined = ("\n".join(self._tail), _line_offsets(self._tail))
        return self._tail_joined

    def _segments(
        self, a0: int, a1: int, *, reverse: bool = False
    ) -> Iterator[tuple[str, array[int], int, int, int]]:
        """``(text, offsets, k0, k1, base)`` for each chunk overlapping absolute lines [a0, a1):
        lines k0..k1-1 of the chunk, whose line 0 is absolute line ``base``. Lazily: a spilled
        chunk is read only when its turn comes."""
        for text, offsets, k0, k1, base in self._scan_segments(a0, a1, reverse=reverse):
            yield text, offsets if offsets is not None else _text_offsets(text), k0, k1, base

    def _scan_segments(
        self, a0: int, a1: int, *, reverse: bool = False
    ) -> Iterator[tuple[str, array[int] | None, int, int, int]]:
        """:meth:`_segments` for scans: a whole spilled chunk comes with offsets None (see
        :func:`_scan`), read but not kept, so a scan through a gigabyte stays cheap."""
        if a0 >= a1:
            return
        if reverse and a1 > self._tail_start and self._tail:
            yield from self._tail_part(a0, a1)
        first = max(bisect_right(self._starts, a0) - 1, 0)
        last = bisect_right(self._starts, a1 - 1)  # chunks [first, last) may overlap
        for c in reversed(range(first, last)) if reverse else range(first, last):
            base = self._starts[c]
            size = self._sizes[c]
            k0, k1 = max(a0 - base, 0), min(a1 - base, size)
            if k0 >= k1:
                continue
            where = self._texts[c]
            if isinstance(where, _OnDisk) and k1 - k0 == size and base not in self._loaded:
                yield self._read_spilled(where), None, k0, k1, base
            else:
                text, offsets = self._chunk(c)
                yield text, offsets, k0, k1, base
        if not reverse and a1 > self._tail_start and self._tail:
            yield from self._tail_part(a0, a1)

    def _tail_part(
        self, a0: int, a1: int
    ) -> Iterator[tuple[str, array[int] | None, int, int, int]]:
        text, offsets = self._tail_segment()
        k0 = max(a0 - self._tail_start, 0)
        k1 = min(a1 - self._tail_start, len(self._tail))
        if k0 < k1:
            yield text, offsets, k0, k1, self._tail_start

    # -- searching -------------------------------------------------------------------------

    def _first_abs(self, matcher: _Matcher, a0: int, a1: int) -> int | None:
        for text, offsets, k0, k1, base in self._scan_segments(a0, a1):
            hit = _scan_matcher(matcher, text, offsets, k0, k1, 1)
            if hit:
                return base + hit[0]
        return None

    def _last_abs(self, matcher: _Matcher, a0: int, a1: int) -> int | None:
        for text, offsets, k0, k1, base in self._scan_segments(a0, a1, reverse=True):
            if matcher.lower_rx is not None and text.isascii():
                text = text.lower()  # once per chunk, not per window
                rx = matcher.lower_rx
            else:
                rx = matcher.rx
            if offsets is None:
                if rx.search(text) is None:
                    continue
                offsets = _text_offsets(text)
            # Regexes only search forwards: take the last hit of ever earlier windows, so a
            # pattern matching every line costs one window, not one chunk, of Python work.
            w1 = k1
            while w1 > k0:
                w0 = max(k0, w1 - _BACKWARD_WINDOW)
                hits = _scan(rx, text, offsets, w0, w1, _BACKWARD_WINDOW)
                if hits:
                    return base + hits[-1]
                w1 = w0
        return None

    def search(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        start: int = 0,
        backwards: bool = False,
    ) -> int | None:
        """Index of the first line matching ``pattern`` at or after ``start`` (at or before it
        with ``backwards``), wrapping around the ends; None when no line matches.

        ``start`` is taken modulo the line count, so ``len(store)`` means 0 and ``-1`` the last
        line. Raises ValueError for an invalid regular expression.
        """
        matcher = _matcher(pattern, regex, ignore_case)
        n = len(self)
        if n == 0:
            return None
        d = self._dropped
        a = start % n + d
        if backwards:
            hit = self._last_abs(matcher, d, a + 1)
            if hit is None:
                hit = self._last_abs(matcher, a + 1, n + d)
        else:
            hit = self._first_abs(matcher, a, n + d)
            if hit is None:
                hit = self._first_abs(matcher, d, a)
        return None if hit is None else hit - d

    def find_all(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        start: int = 0,
        stop: int | None = None,
    ) -> list[int]:
        """Indices of every matching line in [start, stop) (slice semantics), in order."""
        matcher = _matcher(pattern, regex, ignore_case)
        start, stop, _ = slice(start, stop).indices(len(self))
        d = self._dropped
        out: list[int] = []
        for text, offsets, k0, k1, base in self._scan_segments(start + d, stop + d):
            out.extend(base - d + k for k in _scan_matcher(matcher, text, offsets, k0, k1, k1))
        return out

    def first_error(self) -> int | None:
        """Index of the first line that looks like a build error, or None.

        The rule (:data:`ERROR_RE`): after an optional ``#N`` step prefix and output timestamp
        the line starts with ``ERROR`` (buildx's ``#N ERROR: ...`` and ``ERROR: failed to
        solve: ...``), ``error:``, ``Error:``, ``fatal error:``, ``error[E...]:`` or
        ``file:line[:col]: error:``; or it contains ``exec format error`` anywhere. Lines
        already scanned are not scanned again.
        """
        if self._first_error is None:
            end = len(self) + self._dropped
            start = max(self._error_scanned, self._dropped)
            self._first_error = self._first_error_abs(start, end)
            self._error_scanned = end
        return None if self._first_error is None else self._first_error - self._dropped

    def _first_error_abs(self, a0: int, a1: int) -> int | None:
        # Every error line holds "rror" or "RROR": scan for those literals (fast) and check
        # only the lines they hit against ERROR_RE, whose optional prefixes make a direct scan
        # some thirty times slower.
        for text, offsets, k0, k1, base in self._scan_segments(a0, a1):
            if offsets is None:
                if "rror" not in text and "RROR" not in text:
                    continue
                offsets = _text_offsets(text)
            best = None
            for literal in _ERROR_LITERALS:
                hits = _scan(literal, text, offsets, k0, k1 if best is None else best, 1, ERROR_RE)
                if hits:
                    best = hits[0]
            if best is not None:
                return base + best
        return None

    # -- saving ----------------------------------------------------------------------------

    def _read_spilled(self, where: _OnDisk) -> str:
        data = os.pread(self._spill.fileno(), where.size, where.position)
        return data.decode("utf-8", "surrogatepass")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write every retained line, each ending in ``"\\n"``, as UTF-8 (replaced via a
        temporary file, so a failed save leaves no half-written file)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8", errors="replace", newline="\n") as f:
                for text in self._texts:
                    f.write(text if isinstance(text, str) else self._read_spilled(text))
                    f.write("\n")
                if self._tail:
                    f.write("\n".join(self._tail))
                    f.write("\n")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
