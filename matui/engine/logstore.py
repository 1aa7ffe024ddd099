"""An append-only, memory-lean store of one build job's log lines, with fast search.

Lines arrive inert: the engine neutralised them once, as it decoded the host's bytes
(:func:`matui.engine.text.decode_lines`), so nothing a remote build prints can reach the
operator's terminal as an escape sequence; the store keeps them as they come.

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
loop over lines. Patterns are matched per line: ``MULTILINE`` is set, so ``^`` and ``$`` anchor
at line boundaries, and a match that runs across a line break is checked again against its first
line alone, so no result depends on a neighbouring line.

A pattern an operator types can backtrack for seconds on one line (``(a|a)+$``, or with ``re``
``(a+)+$`` and ``(\\w+\\s?)+$``). So searches take a ``timeout`` (:class:`SearchTimeout` when it
runs out) and a ``cancelled`` callback, and a :class:`LogSnapshot` can be searched from a worker
thread while the store keeps taking lines. Typed patterns are matched with the ``regex`` package,
not ``re``: its matching methods take a time limit and release the GIL, whereas one ``re`` call
holds the GIL to its end, so even in a worker thread it would freeze the UI thread.

Standard library and ``regex`` only (engine code: no Rich, no Textual).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Protocol, cast

import regex as regex_lib  # type: ignore[import-untyped]  # the package ships no type hints

__all__ = [
    "CHUNK_LINES",
    "ERROR_RE",
    "Hit",
    "LogSnapshot",
    "LogStore",
    "Match",
    "Pattern",
    "SearchCancelled",
    "SearchTimeout",
    "compile_pattern",
]

CHUNK_LINES = 4096
"""Lines per sealed chunk."""

_CHUNK_CHARS = 1 << 20
"""A chunk is sealed early once it holds this many characters, so one chunk stays small and its
offsets fit ``array('I')`` whatever the line lengths."""

_BACKWARD_WINDOW = 256
"""Backward search looks for the last match in windows of this many lines."""

MEMORY_LIMIT = 128 << 20
"""Characters of sealed chunks a store keeps in memory by default (~1.6 M 80-byte lines); older
chunks go to an anonymous spill file, so a gigabyte of log costs about this much RAM."""

_LOADED_CHUNKS = 8
"""Spilled chunks kept decoded after a read (rendering reads the same few chunks again)."""

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


class Match(Protocol):
    """A match: what :class:`Pattern` finds (``re`` matches fit too)."""

    def start(self) -> int: ...

    def end(self) -> int: ...

    def span(self) -> tuple[int, int]: ...


class Pattern(Protocol):
    """A compiled search pattern (a ``regex`` package pattern): ``timeout`` is in seconds of
    process CPU time (all threads), and running out of it raises :class:`TimeoutError`."""

    @property
    def pattern(self) -> str: ...

    @property
    def flags(self) -> int: ...

    def search(
        self, string: str, pos: int = ..., endpos: int = ..., *, timeout: float | None = ...
    ) -> Match | None: ...

    def finditer(
        self, string: str, pos: int = ..., endpos: int = ..., *, timeout: float | None = ...
    ) -> Iterator[Match]: ...


_Search = Callable[[str, int, int], Match | None]
"""``search(text, pos, endpos)``: a pattern's search, perhaps bounded in time."""

_FindIter = Callable[[str, int, int], Iterator[Match]]
"""``finditer(text, pos, endpos)``: a pattern's finditer, perhaps bounded in time."""


class SearchTimeout(Exception):
    """A search ran out of time: the pattern backtracks too much on some line."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"search stopped after {seconds:g} s: the pattern backtracks too much; simplify it "
            "(nested repeats such as (a+)+ or (\\w+\\s?)+ are the usual cause)"
        )
        self.seconds = seconds


class SearchCancelled(Exception):
    """A search stopped because its ``cancelled`` callback said so."""


@lru_cache(maxsize=64)
def compile_pattern(pattern: str, regex: bool = True, ignore_case: bool = True) -> Pattern:
    """Compile a search pattern (``regex=False``: a literal string) with the ``regex`` package
    (``re``-compatible syntax, its version 0).

    ``MULTILINE`` is always set: the store searches joined chunks, one line per text line.
    ``ignore_case`` is dropped for a pattern without cased characters (``#12``, ``[0-9]+``):
    the result is the same. Raises ValueError for an invalid regular expression.
    """
    flags = regex_lib.MULTILINE | regex_lib.VERSION0
    if ignore_case and pattern.lower() != pattern.upper():
        flags |= regex_lib.IGNORECASE
    try:
        compiled = regex_lib.compile(pattern if regex else regex_lib.escape(pattern), flags)
    except (regex_lib.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return cast(Pattern, compiled)


class _Limit:
    """One search's time limit and cancellation, checked before every regex call and passed to
    it as its ``timeout``, so no single call runs past the limit either.

    The regex package counts that timeout in process CPU time: on a machine short of CPU a
    call can run past the wall-clock limit (to twice it, measured on a loaded 2-core machine).
    A caller that must answer on time keeps its own clock too (the log pane does).
    """

    __slots__ = ("cancelled", "deadline", "seconds")

    def __init__(self, seconds: float | None, cancelled: Callable[[], bool] | None) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.cancelled = cancelled

    def left(self) -> float | None:
        """Seconds left (None: no limit); raises when none are left or the caller cancelled."""
        if self.cancelled is not None and self.cancelled():
            raise SearchCancelled
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> SearchTimeout:
        return SearchTimeout(self.seconds or 0.0)

    def bound(self, rx: Pattern) -> _Search:
        """``rx.search`` under this limit."""
        if self.deadline is None and self.cancelled is None:
            return rx.search
        search = rx.search

        def bounded(text: str, pos: int, endpos: int) -> Match | None:
            left = self.left()
            if left is None:
                return search(text, pos, endpos)
            try:
                return search(text, pos, endpos, timeout=left)
            except TimeoutError:
                raise self.expired() from None

        return bounded

    def bound_iter(self, rx: Pattern) -> _FindIter:
        """``rx.finditer`` under this limit: one timeout for the whole iteration (a regex call
        with a timeout costs a few microseconds more than one without, so scanning many lines
        with one iterator instead of one search each pays that once)."""
        finditer = rx.finditer

        def bounded(text: str, pos: int, endpos: int) -> Iterator[Match]:
            left = self.left()
            if left is None:
                yield from finditer(text, pos, endpos)
                return
            try:
                yield from finditer(text, pos, endpos, timeout=left)
            except TimeoutError:
                raise self.expired() from None

        return bounded


def _scan(
    search: _Search,
    text: str,
    offsets: array[int] | None,
    k0: int,
    k1: int,
    limit: int,
    verify: _Search | None = None,
    finditer: _FindIter | None = None,
) -> list[int]:
    """Chunk lines in [k0, k1) where ``search`` (and ``verify``, if given) match, in order, at
    most ``limit`` of them. ``text`` is the chunk's lines joined by "\n"; ``offsets`` their
    starts (None: the whole chunk, offsets not computed yet; computed only if it matches).

    With ``finditer`` (the same pattern's), one iterator walks the chunk while matches are
    sparse, one a line or fewer; once a line shows several, a pattern matching densely costs
    less with one ``search`` a line, skipping each found line's other matches.
    """
    found: list[int] = []
    if offsets is None:
        if search(text, 0, len(text)) is None:
            return found
        offsets = _text_offsets(text)
    pos, end = offsets[k0], offsets[k1] - 1

    def accept(m: Match) -> int:
        """Note ``m``'s line if it matches there; where to search next."""
        k = bisect_right(offsets, m.start(), k0, k1) - 1
        start, line_end = offsets[k], offsets[k + 1] - 1
        # A match running past its line's end (``\s`` on the "\n", ``a\nb``) must be
        # checked against the line alone.
        if (m.end() <= line_end or search(text, start, line_end) is not None) and (
            verify is None or verify(text, start, line_end) is not None
        ):
            found.append(k)
        return line_end + 1

    while pos <= end and len(found) < limit:
        if finditer is None:
            m = search(text, pos, end)
            if m is None:
                break
            pos = accept(m)
            continue
        next_line = pos  # matches before this are in a line already taken
        again = 0
        for m in finditer(text, pos, end):
            if m.end() >= next_line > m.start():
                break  # ran past a taken line's end: the iterator skipped text; resume there
            if m.start() < next_line:
                again += 1
                if again > 2:
                    finditer = None  # dense: one search a line from here
                    break
                continue
            next_line = accept(m)
            again = 0
            if len(found) >= limit or m.end() >= next_line:
                break  # enough; or the match ran into the next line: resume from it
        else:
            break  # no more matches
        pos = next_line
    return found


_ONE_MORE = (1).__add__


def _line_offsets(lines: list[str]) -> array[int]:
    """Start offsets of ``lines`` joined by "\n", plus ``len(joined) + 1``."""
    return array("I", accumulate(map(_ONE_MORE, map(len, lines)), initial=0))


def _text_offsets(text: str) -> array[int]:
    """Start offsets of the lines of ``text`` (lines joined by "\n"), plus ``len(text) + 1``."""
    return _line_offsets(text.split("\n"))


@dataclass(frozen=True)
class _OnDisk:
    """Where a spilled chunk's UTF-8 text lies in the spill file."""

    position: int
    size: int


def _read_spilled(spill: Any, where: _OnDisk) -> str:
    # pread: no shared file position, so a search thread and the store's own reads (or two
    # searches) never disturb each other.
    data = os.pread(spill.fileno(), where.size, where.position)
    return data.decode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Hit:
    """Where a search matched: line ``line`` (an index as the searched store counted them
    then), whose first match spans characters [start, end)."""

    line: int
    start: int
    end: int


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
        self._error_scanned = 0  # absolute: lines [dropped, scanned) hold no error line
        self._first_error: int | None = None  # absolute

    # -- size ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._tail_start + len(self._tail) - self._dropped

    @property
    def dropped(self) -> int:
        """Lines dropped from the front because of ``max_lines``."""
        return self._dropped

    # -- writing ---------------------------------------------------------------------------

    def append(self, lines: list[str]) -> None:
        """Append lines (without line endings) as the engine made them: inert already
        (:func:`matui.engine.text.decode_lines`), so the store does not neutralise again."""
        if not lines:
            return
        joined = "".join(lines)
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
        decoded = _read_spilled(self._spill, text)
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

    def _segments(self, a0: int, a1: int) -> Iterator[tuple[str, array[int], int, int, int]]:
        """``(text, offsets, k0, k1, base)`` for each chunk overlapping absolute lines [a0, a1):
        lines k0..k1-1 of the chunk, whose line 0 is absolute line ``base``. Lazily: a spilled
        chunk is read only when its turn comes."""
        if a0 >= a1:
            return
        first = max(bisect_right(self._starts, a0) - 1, 0)
        last = bisect_right(self._starts, a1 - 1)  # chunks [first, last) may overlap
        for c in range(first, last):
            base = self._starts[c]
            k0, k1 = max(a0 - base, 0), min(a1 - base, self._sizes[c])
            if k0 < k1:
                text, offsets = self._chunk(c)
                yield text, offsets, k0, k1, base
        if a1 > self._tail_start and self._tail:
            text, offsets = self._tail_segment()
            k0 = max(a0 - self._tail_start, 0)
            k1 = min(a1 - self._tail_start, len(self._tail))
            if k0 < k1:
                yield text, offsets, k0, k1, self._tail_start

    # -- searching -------------------------------------------------------------------------

    def snapshot(self) -> LogSnapshot:
        """The lines held now, searchable from any thread while this store goes on (call this
        from the thread that appends). Cheap: it copies chunk references, not text."""
        return LogSnapshot(self)

    def search(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        start: int = 0,
        backwards: bool = False,
        timeout: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int | None:
        """:meth:`LogSnapshot.search` over the lines held now."""
        return self.snapshot().search(
            pattern,
            regex=regex,
            ignore_case=ignore_case,
            start=start,
            backwards=backwards,
            timeout=timeout,
            cancelled=cancelled,
        )

    def find_all(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        start: int = 0,
        stop: int | None = None,
        timeout: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[int]:
        """:meth:`LogSnapshot.find_all` over the lines held now."""
        return self.snapshot().find_all(
            pattern,
            regex=regex,
            ignore_case=ignore_case,
            start=start,
            stop=stop,
            timeout=timeout,
            cancelled=cancelled,
        )

    def first_error(self, start: int = 0) -> int | None:
        """Index of the first line from ``start`` on that looks like a build error, or None.

        The rule (:data:`ERROR_RE`): after an optional ``#N`` step prefix and output timestamp
        the line starts with ``ERROR`` (buildx's ``#N ERROR: ...`` and ``ERROR: failed to
        solve: ...``), ``error:``, ``Error:``, ``fatal error:``, ``error[E...]:`` or
        ``file:line[:col]: error:``; or it contains ``exec format error`` anywhere. Lines
        already scanned are not scanned again (from line 0; a later ``start`` — a retried
        job's current attempt — scans from there, ending at the first error it meets).
        """
        if start > 0:
            first = self.first_error()
            if first is None or first >= start:
                return first
            end = len(self) + self._dropped
            found = self.snapshot()._first_error_abs(start + self._dropped, end)
            return None if found is None else found - self._dropped
        if self._first_error is None:
            end = len(self) + self._dropped
            start = max(self._error_scanned, self._dropped)
            self._first_error = self.snapshot()._first_error_abs(start, end)
            self._error_scanned = end
        return None if self._first_error is None else self._first_error - self._dropped

    # -- saving ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write every retained line, each ending in ``"\\n"``, as UTF-8 (replaced via a
        temporary file, so a failed save leaves no half-written file)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8", errors="replace", newline="\n") as f:
                for text in self._texts:
                    f.write(text if isinstance(text, str) else _read_spilled(self._spill, text))
                    f.write("\n")
                if self._tail:
                    f.write("\n".join(self._tail))
                    f.write("\n")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class LogSnapshot:
    """The lines a :class:`LogStore` held when :meth:`LogStore.snapshot` was called, searchable
    from another thread while the store takes more lines, drops old ones or spills them.

    It shares the store's text instead of copying it: sealed chunks never change once sealed (a
    dropped or spilled chunk's ``str`` lives on here while the snapshot does), spilled chunks
    are read back from the spill file (append-only, read with ``pread``), and the tail is the
    joined copy the store made for it. Indices are the store's at snapshot time; add
    :attr:`dropped` and subtract the store's current ``dropped`` to map them to the store now.
    """

    def __init__(self, store: LogStore) -> None:
        self.dropped = store.dropped
        """The store's :attr:`LogStore.dropped` at snapshot time."""
        self._length = len(store)
        self._texts = store._texts.copy()
        self._offsets = store._offsets.copy()
        self._sizes = store._sizes.copy()
        self._starts = store._starts.copy()
        self._spill = store._spill
        self._loaded = dict(store._loaded)
        self._read: dict[int, tuple[str, array[int]]] = {}
        self._tail_start = store._tail_start
        self._tail_size = len(store._tail)
        self._tail = store._tail_segment() if store._tail else None

    def __len__(self) -> int:
        return self._length

    def line(self, i: int) -> str:
        """Line ``i`` (negative counts from the end)."""
        n = self._length
        if not -n <= i < n:
            raise IndexError(f"line {i} out of range (0..{n - 1})")
        a = i % n + self.dropped
        if a >= self._tail_start:
            assert self._tail is not None
            text, offsets = self._tail
            k = a - self._tail_start
        else:
            c = bisect_right(self._starts, a) - 1
            text, offsets = self._chunk(c)
            k = a - self._starts[c]
        return text[offsets[k] : offsets[k + 1] - 1]

    def _chunk(self, c: int) -> tuple[str, array[int]]:
        text = self._texts[c]
        if isinstance(text, str):
            offsets = self._offsets[c]
            assert offsets is not None
            return text, offsets
        start = self._starts[c]
        loaded = self._loaded.get(start) or self._read.get(start)
        if loaded is None:
            decoded = _read_spilled(self._spill, text)
            loaded = self._read[start] = (decoded, _text_offsets(decoded))
        return loaded

    def _scan_segments(
        self, a0: int, a1: int, *, reverse: bool = False
    ) -> Iterator[tuple[str, array[int] | None, int, int, int]]:
        """``(text, offsets, k0, k1, base)`` for each chunk overlapping absolute lines [a0, a1):
        lines k0..k1-1 of the chunk, whose line 0 is absolute line ``base``. Lazily, and a whole
        spilled chunk comes with offsets None (see :func:`_scan`), read but not kept, so a scan
        through a gigabyte stays cheap."""
        if a0 >= a1:
            return
        if reverse:
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
            if (
                isinstance(where, _OnDisk)
                and k1 - k0 == size
                and base not in self._loaded
                and base not in self._read
            ):
                yield _read_spilled(self._spill, where), None, k0, k1, base
            else:
                text, offsets = self._chunk(c)
                yield text, offsets, k0, k1, base
        if not reverse:
            yield from self._tail_part(a0, a1)

    def _tail_part(
        self, a0: int, a1: int
    ) -> Iterator[tuple[str, array[int] | None, int, int, int]]:
        if self._tail is None or a1 <= self._tail_start:
            return
        text, offsets = self._tail
        k0 = max(a0 - self._tail_start, 0)
        k1 = min(a1 - self._tail_start, self._tail_size)
        if k0 < k1:
            yield text, offsets, k0, k1, self._tail_start

    def _first_abs(self, search: _Search, a0: int, a1: int) -> int | None:
        for text, offsets, k0, k1, base in self._scan_segments(a0, a1):
            hit = _scan(search, text, offsets, k0, k1, 1)
            if hit:
                return base + hit[0]
        return None

    def _last_abs(self, search: _Search, a0: int, a1: int) -> int | None:
        for text, offsets, k0, k1, base in self._scan_segments(a0, a1, reverse=True):
            if offsets is None:
                if search(text, 0, len(text)) is None:
                    continue
                offsets = _text_offsets(text)
            # Regexes only search forwards: take the last hit of ever earlier windows, so a
            # pattern matching every line costs one window, not one chunk, of Python work.
            w1 = k1
            while w1 > k0:
                w0 = max(k0, w1 - _BACKWARD_WINDOW)
                hits = _scan(search, text, offsets, w0, w1, _BACKWARD_WINDOW)
                if hits:
                    return base + hits[-1]
                w1 = w0
        return None

    def find(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        start: int = 0,
        backwards: bool = False,
        timeout: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Hit | None:
        """The first line matching ``pattern`` at or after ``start`` (at or before it with
        ``backwards``), wrapping around the ends, and where in it the first match lies; None
        when no line matches.

        ``start`` is taken modulo the line count, so ``len(snapshot)`` means 0 and ``-1`` the
        last line. ``timeout`` (seconds, None: none) bounds the whole search, compiling
        included: :class:`SearchTimeout` when it runs out. ``cancelled`` is asked between regex
        calls: :class:`SearchCancelled` once it says True. Raises ValueError for an invalid
        regular expression.
        """
        limit = _Limit(timeout, cancelled)
        rx = compile_pattern(pattern, regex, ignore_case)
        search = limit.bound(rx)
        n = self._length
        if n == 0:
            return None
        d = self.dropped
        a = start % n + d
        if backwards:
            hit = self._last_abs(search, d, a + 1)
            if hit is None:
                hit = self._last_abs(search, a + 1, n + d)
        else:
            hit = self._first_abs(search, a, n + d)
            if hit is None:
                hit = self._first_abs(search, d, a)
        if hit is None:
            return None
        text = self.line(hit - d)
        m = search(text, 0, len(text))
        span = (0, 0) if m is None else m.span()
        return Hit(hit - d, *span)

    def search(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        start: int = 0,
        backwards: bool = False,
        timeout: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> int | None:
        """Index of the line :meth:`find` finds, or None."""
        hit = self.find(
            pattern,
            regex=regex,
            ignore_case=ignore_case,
            start=start,
            backwards=backwards,
            timeout=timeout,
            cancelled=cancelled,
        )
        return None if hit is None else hit.line

    def find_all(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        start: int = 0,
        stop: int | None = None,
        timeout: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[int]:
        """Indices of every matching line in [start, stop) (slice semantics), in order;
        ``timeout`` and ``cancelled`` as for :meth:`find`."""
        limit = _Limit(timeout, cancelled)
        rx = compile_pattern(pattern, regex, ignore_case)
        search, finditer = limit.bound(rx), limit.bound_iter(rx)
        start, stop, _ = slice(start, stop).indices(self._length)
        d = self.dropped
        out: list[int] = []
        for text, offsets, k0, k1, base in self._scan_segments(start + d, stop + d):
            found = _scan(search, text, offsets, k0, k1, k1, finditer=finditer)
            out.extend(base - d + k for k in found)
        return out

    def spans(
        self,
        pattern: str,
        *,
        regex: bool = True,
        ignore_case: bool = True,
        start: int = 0,
        stop: int | None = None,
        max_chars: int | None = None,
        timeout: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[list[tuple[int, int]]]:
        """For each line in [start, stop) (slice semantics), the character spans of its
        non-empty matches, each line searched alone (its first ``max_chars`` characters, if
        given): what a view highlights. ``timeout`` and ``cancelled`` as for :meth:`find`."""
        limit = _Limit(timeout, cancelled)
        finditer = limit.bound_iter(compile_pattern(pattern, regex, ignore_case))
        start, stop, _ = slice(start, stop).indices(self._length)
        out: list[list[tuple[int, int]]] = []
        for i in range(start, stop):
            text = self.line(i)[:max_chars]
            out.append([m.span() for m in finditer(text, 0, len(text)) if m.end() > m.start()])
        return out

    def _first_error_abs(self, a0: int, a1: int) -> int | None:
        # Every error line holds "rror" or "RROR": scan for those literals (fast) and check
        # only the lines they hit against ERROR_RE, whose optional prefixes make a direct scan
        # some thirty times slower. Fixed patterns: ``re``, no time limit needed.
        for text, offsets, k0, k1, base in self._scan_segments(a0, a1):
            if offsets is None:
                if "rror" not in text and "RROR" not in text:
                    continue
                offsets = _text_offsets(text)
            best = None
            for literal in _ERROR_LITERALS:
                hits = _scan(
                    literal.search,
                    text,
                    offsets,
                    k0,
                    k1 if best is None else best,
                    1,
                    ERROR_RE.search,
                )
                if hits:
                    best = hits[0]
            if best is not None:
                return base + best
        return None
