""".dockerignore semantics, matching the Docker CLI / BuildKit byte for byte where it matters.

Reference behaviour is ``github.com/moby/patternmatcher`` (``ignorefile.ReadAll`` to read the
file, ``New`` to compile, ``MatchesUsingParentResults`` to match, as the BuildKit file walker
does) on Linux:

* Reading: a UTF-8 BOM is dropped; lines are split on ``\\n`` (a trailing ``\\r`` is dropped);
  a line whose *first* character is ``#`` is a comment (``  # x`` is a pattern); surrounding
  whitespace is trimmed; blank lines are ignored; ``!`` marks an exception (whitespace after it
  is trimmed too); the pattern is cleaned like Go's ``filepath.Clean`` (``a//b/./c/../d`` ->
  ``a/b/d``, trailing ``/`` dropped) and one leading ``/`` is stripped.
* Syntax: ``*`` is any run of non-``/``, ``?`` one non-``/`` character, ``[...]`` a character
  class (``[^...]`` negated), ``\\`` escapes the next character, ``**`` any number of
  directories (``**/x``, ``x/**``, ``a/**/b``). Malformed patterns (``[``, ``[]a]``, ``[-x]``,
  a trailing ``\\``, a lone ``!``) are refused with :class:`DockerIgnoreError`, as Docker
  refuses them.
* Matching: patterns apply in order and the last one that matches wins; a pattern that matches
  a directory matches everything below it. The quirks of Docker's matcher are kept on purpose:
  ``**foo`` is a plain suffix test (it matches ``barfoo``), ``foo**`` a plain prefix test, and
  an exception evaluated only against the entry itself when an earlier directory skipped it
  (``D/x`` then ``!D`` leaves ``D/x`` excluded, exactly as ``docker build`` does).

Known deviations (all exotic): Go regexp escapes with no Python equivalent (``\\pL``, ``\\z``,
``\\Q...\\E``, octal) and POSIX classes (``[[:alpha:]]``) are refused or read literally.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeAlias

__all__ = ["DockerIgnore", "DockerIgnoreError", "go_clean"]

IGNORE_FILE = ".dockerignore"

# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip also strips \x1c-\x1f).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
# Characters patternmatcher escapes because they are regexp syntax but not glob syntax.
_REGEX_ONLY = frozenset(".+()|{}$")
# Go regexp escapes of letters that mean the same to Python's re (with re.ASCII).
_SAME_ESCAPES = frozenset("dDsSwWbBAafnrtvx")


class DockerIgnoreError(ValueError):
    """A .dockerignore pattern Docker itself would refuse."""


def go_clean(path: str) -> str:
    """Go's ``path.Clean``: the shortest lexically equivalent slash-separated path."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
        else:
            parts.append(seg)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def _trim(text: str) -> str:
    return text.strip(_GO_SPACE)


class _Kind(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEX = "regex"


def _bad(pattern: str, why: str) -> DockerIgnoreError:
    return DockerIgnoreError(f"invalid .dockerignore pattern {pattern!r}: {why}")


def _check_glob_syntax(pattern: str) -> None:
    """Refuse what Go's ``filepath.Match`` calls ``ErrBadPattern`` (patternmatcher checks it)."""
    n = len(pattern)

    def get_esc(i: int) -> int:
        if i >= n:
            raise _bad(pattern, "unterminated character class")
        if pattern[i] in "-]":
            raise _bad(pattern, "a literal '-' or ']' in a character class needs a backslash")
        if pattern[i] == "\\":
            i += 1
            if i >= n:
                raise _bad(pattern, "trailing backslash in character class")
        i += 1
        if i >= n:
            raise _bad(pattern, "unterminated character class")
        return i

    i = 0
    while i < n:
        ch = pattern[i]
        if ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = get_esc(i)
                if pattern[i] == "-":
                    i = get_esc(i + 1)
                ranges += 1
        elif ch == "\\":
            i += 2
            if i > n:
                raise _bad(pattern, "trailing backslash")
        else:
            i += 1


def _escape(pattern: str, ch: str) -> str:
    """The regexp for ``\\`` + ``ch``: Go treats escaped ASCII punctuation as literal."""
    if ch.isascii() and not ch.isalnum():
        return re.escape(ch)
    if ch in _SAME_ESCAPES:
        return "\\" + ch
    raise _bad(pattern, f"unsupported escape \\{ch} (escape only punctuation, e.g. \\! or \\*)")


@dataclass(frozen=True)
class _Pattern:
    text: str  # cleaned, without the leading "!"
    exclusion: bool  # an exception ("!pattern"): re-includes what it matches
    kind: _Kind
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, text: str, exclusion: bool) -> _Pattern:
        """patternmatcher's ``Pattern.compile``, step for step (it decides the match kind)."""
        _check_glob_syntax(text)
        out: list[str] = []
        kind = _Kind.EXACT
        pos, n, step = 0, len(text), 0
        while pos < n:
            ch = text[pos]
            pos += 1
            if ch == "*":
                if pos < n and text[pos] == "*":
                    pos += 1
                    if pos < n and text[pos] == "/":
                        pos += 1
                    if pos >= n:
                        if kind is _Kind.EXACT:
                            kind = _Kind.PREFIX
                        else:
                            out.append(".*")
                            kind = _Kind.REGEX
                    else:
                        out.append("(?:.*/)?")
                        kind = _Kind.REGEX
                    if step == 0:
                        kind = _Kind.SUFFIX
                else:
                    out.append("[^/]*")
                    kind = _Kind.REGEX
            elif ch == "?":
                out.append("[^/]")
                kind = _Kind.REGEX
            elif ch in _REGEX_ONLY:
                out.append("\\" + ch)
            elif ch == "\\":
                # _check_glob_syntax guarantees a following character.
                out.append(_escape(text, text[pos]))
                pos += 1
                kind = _Kind.REGEX
            elif ch in "[]":
                out.append(ch)
                kind = _Kind.REGEX
            else:
                out.append(ch)
            step += 1
        regex: re.Pattern[str] | None = None
        if kind is _Kind.REGEX:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # "possible nested set"
                    regex = re.compile("".join(out), re.ASCII)
            except re.error as exc:
                raise _bad(text, str(exc)) from None
        return cls(text, exclusion, kind, regex)

    def match(self, path: str) -> bool:
        if self.kind is _Kind.EXACT:
            return path == self.text
        if self.kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None

    def could_match_below(self, directory: str) -> bool:
        """False only if no path strictly below ``directory`` can match (conservative)."""
        below = directory + "/"
        if self.kind is _Kind.EXACT:
            return self.text.startswith(below)
        if self.kind is _Kind.SUFFIX:
            return True
        if self.kind is _Kind.PREFIX:
            literal = self.text[:-2]
        else:
            literal = re.split(r"[*?\[\\]", self.text, maxsplit=1)[0]
        if not (literal.startswith(below) or below.startswith(literal)):
            return False
        if self.kind is _Kind.PREFIX or "[" in self.text or "\\" in self.text:
            return True  # a class like [^a] can match "/", so segment counting is unsafe
        segments = self.text.split("/")
        dir_segments = directory.split("/")
        for i, name in enumerate(dir_segments):
            if i >= len(segments):
                return False
            if "**" in segments[i]:
                return True
            if _segment_regex(segments[i]).fullmatch(name) is None:
                return False
        return len(segments) > len(dir_segments)


def _segment_regex(segment: str) -> re.Pattern[str]:
    """One path segment of a pattern with only ``*`` and ``?`` wildcards."""
    parts = {"*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(parts.get(ch, re.escape(ch)) for ch in segment))


def _read_lines(lines: Iterable[str]) -> list[str]:
    """patternmatcher's ``ignorefile.ReadAll``, on already split lines."""
    out: list[str] = []
    for raw in lines:
        if raw.startswith("#"):
            continue
        pattern = _trim(raw)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = _trim(pattern[1:])
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _compile_all(patterns: Iterable[str]) -> list[_Pattern]:
    """patternmatcher's ``New``."""
    compiled: list[_Pattern] = []
    for raw in patterns:
        pattern = _trim(raw)
        if not pattern:
            continue
        pattern = go_clean(pattern)
        exclusion = pattern.startswith("!")
        if exclusion:
            if len(pattern) == 1:
                raise _bad(raw, 'a lone "!" excludes nothing; remove the line')
            pattern = pattern[1:]
        compiled.append(_Pattern.compile(pattern, exclusion))
    return compiled


MatchInfo: TypeAlias = tuple[bool, ...]


class DockerIgnore:
    """A compiled .dockerignore: which context entries are not sent to the builder."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        """``patterns`` are as ``ignorefile.ReadAll`` returns them; see :meth:`from_lines`."""
        self._patterns = _compile_all(patterns)
        self._exceptions = [p for p in self._patterns if p.exclusion]

    @classmethod
    def load(cls, context: Path) -> DockerIgnore:
        """The ``.dockerignore`` at the root of ``context``; no file means nothing is ignored."""
        try:
            data = (context / IGNORE_FILE).read_bytes()
        except FileNotFoundError:
            return cls()
        text = data.decode("utf-8", "surrogateescape")  # like os.fsdecode, so names compare
        text = text.removeprefix("\ufeff")
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        return cls.from_lines(lines)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> DockerIgnore:
        """The lines of a .dockerignore file (comments and blank lines allowed)."""
        return cls(_read_lines(lines))

    @property
    def patterns(self) -> list[str]:
        """The effective patterns, cleaned, exceptions prefixed with ``!``."""
        return [("!" if p.exclusion else "") + p.text for p in self._patterns]

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def _match(self, path: str, parent: MatchInfo) -> tuple[bool, MatchInfo]:
        """patternmatcher's ``MatchesUsingParentResults``: parent holds the parent dir's info."""
        matched = False
        info: list[bool] = []
        for i, pattern in enumerate(self._patterns):
            hit = parent[i] if parent else False
            if not hit:
                if pattern.exclusion != matched:
                    info.append(False)
                    continue
                hit = pattern.match(path)
                if not hit and not parent:
                    parts = path.split("/")[:-1]
                    hit = any(pattern.match("/".join(parts[: j + 1])) for j in range(len(parts)))
            info.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(info)

    def excluded(self, relpath: str, is_dir: bool = False) -> bool:
        """Whether ``relpath`` (relative to the context, ``/``-separated) is not sent.

        Directories and files are matched alike (Docker patterns cannot tell them apart);
        ``is_dir`` is accepted for callers' convenience and does not change the answer. A
        directory that is excluded may still have re-included entries below it; :meth:`walk`
        handles that.
        """
        del is_dir
        path = go_clean(relpath).lstrip("/")
        if path in ("", ".") or not self._patterns:
            return False
        info: MatchInfo = ()
        parts = path.split("/")
        matched = False
        for j in range(len(parts)):
            matched, info = self._match("/".join(parts[: j + 1]), info)
        return matched

    def _may_reinclude_below(self, directory: str) -> bool:
        return any(p.could_match_below(directory) for p in self._exceptions)

    def walk(self, context: Path, always_include: Iterable[str] = ()) -> Iterator[tuple[str, Path]]:
        """Every entry of ``context`` to send, as ``(relpath, abspath)``.

        Depth first, each directory's entries sorted by name, a directory before its contents.
        Symlinks are entries, never followed. An excluded directory is skipped without reading
        it unless an exception (or an ``always_include`` path) could re-include something below
        it; then it is read, and sent only if something inside it is sent. ``always_include``
        paths (relative to the context) are sent even when excluded.
        """
        always: set[str] = set()
        force_dirs: set[str] = set()
        for raw in always_include:
            rel = go_clean(raw.replace(os.sep, "/"))
            if rel.startswith("/") or rel == ".." or rel.startswith("../"):
                raise ValueError(f"{raw!r} is not a path inside the build context")
            if rel == ".":
                continue
            always.add(rel)
            parts = rel.split("/")
            force_dirs.update("/".join(parts[:j]) for j in range(1, len(parts)))
        pending: list[tuple[str, Path]] = []  # excluded ancestors, sent once something inside is
        yield from self._walk(Path(context), "", (), always, force_dirs, pending)

    def _walk(
        self,
        directory: Path,
        prefix: str,
        parent: MatchInfo,
        always: set[str],
        force_dirs: set[str],
        pending: list[tuple[str, Path]],
    ) -> Iterator[tuple[str, Path]]:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            path = directory / entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            excluded, info = self._match(rel, parent)
            if not excluded or rel in always:
                yield from pending
                pending.clear()
                yield rel, path
                if is_dir:
                    yield from self._walk(path, rel + "/", info, always, force_dirs, pending)
            elif is_dir and (rel in force_dirs or self._may_reinclude_below(rel)):
                pending.append((rel, path))
                yield from self._walk(path, rel + "/", info, always, force_dirs, pending)
                if pending and pending[-1][0] == rel:
                    pending.pop()
