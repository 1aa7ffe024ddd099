"""Reading ``docker buildx build --progress=plain`` logs: steps, the current step, a failing
step, notes and arch-mismatch evidence.

The parser reads lines as :func:`matui.engine.text.decode_lines` makes them (the runner's one
decoder): inert already, so the names, errors and evidence it keeps are too, with no second pass.

Plain progress (buildx prints it on stderr; read it merged with stdout) is line based. Every line
BuildKit's printer writes starts with ``#N`` (the step, a vertex index in order of first print):

* ``#N [stage i/n] RUN ...`` names a step. The printer writes a blank line and then the name each
  time it switches to a step, so a name line is the first ``#N`` line after a blank line. A step
  is named again when the printer comes back to it.
* ``#N 0.243 text`` is the step's output (seconds since the step started, then one output line).
  This is almost every line of a real log, and it produces no event.
* ``#N resolve ... done``, ``#N transferring context: 59B done``, ``#N WARN: ...`` are status lines.
* ``#N DONE 1.2s``, ``#N CACHED``, ``#N ERROR: <error>``, ``#N CANCELED`` end a step.
* ``#N ...`` means the printer switched away from a still-running step.

Lines without ``#N`` come from buildx itself: the framed tail of a failed step (``------`` /
`` > [3/4] RUN ...:`` / its last output lines / ``------``), newer buildx's ``Dockerfile:3`` excerpt
and warning summary, and the final ``ERROR: failed to solve: ...``.

Observed with buildx 0.13.1 on Docker 20.10 (BuildKit 0.8): steps are numbered in print order,
not Dockerfile order (``[2/5] COPY`` can be ``#5`` and ``[1/5] FROM`` ``#6``); some steps never get
a ``DONE`` line (a ``FROM`` step interrupted by ``#6 ...``, an ``[internal] load metadata`` step
re-named after the export finished); a failed ``RUN`` reads ``executor failed running
[/bin/sh -c exit 3]: exit code: 3`` (newer BuildKit: ``process "/bin/sh -c exit 3" did not complete
successfully: exit code: 3``); the docker driver pushes in a separate ``pushing ... with docker``
step after ``exporting to image``.

This module is part of the headless engine: standard library only.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum

from matui.engine.refs import DIGEST_RE
from matui.engine.text import neutralise

__all__ = [
    "CLIP_NOTE",
    "STATUS_LOST_NOTE",
    "ProgressParser",
    "StepEvent",
    "StepState",
    "parse_metadata",
    "step_of",
]

CLIP_NOTE = (
    "build output was clipped by BuildKit's per-step log limit; set BUILDKIT_STEP_LOG_MAX_SIZE and "
    "BUILDKIT_STEP_LOG_MAX_SPEED in the builder host's dockerd environment to lift it"
)
STATUS_LOST_NOTE = (
    "buildx lost BuildKit's status stream (failed to receive status); with the log limits lifted, "
    "buildx 0.13.1 does this on bursts of ~100k output lines in one step: pace the step's output"
)

_MAX_EVIDENCE = 50


class StepState(StrEnum):
    STARTED = "started"
    DONE = "done"
    CACHED = "cached"
    ERROR = "error"
    CANCELED = "canceled"


@dataclass(frozen=True)
class StepEvent:
    step: int
    """The ``#N`` number."""
    state: StepState
    name: str | None
    """The step's name line, e.g. ``[2/4] RUN make``; None if it was never seen."""
    seconds: float | None
    """From ``#N DONE 1.2s``; None for other states or when BuildKit printed no time."""
    message: str | None
    """For ERROR: the text after ``ERROR: ``."""


def _float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _looks_like_output(rest: str) -> bool:
    """``0.243 text``: a step output line (a non-negative number, then a space or the end)."""
    head = rest.partition(" ")[0]
    return head[:1].isdigit() and _float_or_none(head) is not None


_OUTPUT_LINE_RE = re.compile(r"#[0-9]+ [0-9]")
"""Where ``feed`` takes its hot path (given the parser is not fresh and nothing may matter)."""
_NEXT_NOT_OUTPUT_RE = re.compile(r"\n(?!#[0-9]+ [0-9])")
"""The line break before the next line that is not step output."""


def step_of(line: str) -> int | None:
    """The step ``N`` a line of plain progress belongs to (its ``#N `` prefix, as
    :meth:`ProgressParser.feed` reads it), or None for buildx's own lines (no prefix).

    Also reads a recorded failing step (``#7 [2/3] RUN ...``) back to its number.
    """
    if line[:1] != "#":
        return None
    sp = line.find(" ", 2)
    end = sp if sp > 1 else len(line)
    num = line[1:end]
    return int(num) if num.isdigit() and num.isascii() else None


def _may_matter(text: str) -> bool:
    """Cheap test for lines ``ProgressParser._scan`` must look at."""
    return "exec format error" in text or "output clipped" in text or "pulled with platform" in text


def _evidence_text(text: str) -> str:
    """One piece of arch-mismatch evidence, without step, timestamp and list/level prefixes."""
    text = text.strip()
    if text.startswith("#"):
        text = text.partition(" ")[2].lstrip()
    if _looks_like_output(text):
        text = text.partition(" ")[2].lstrip()
    for prefix in ("- ", "WARN: ", "WARNING: "):
        if text.startswith(prefix):
            text = text[len(prefix) :].lstrip()
    return text


class ProgressParser:
    """Turns plain-progress lines into step events; one parser per build log.

    ``feed`` takes one line as :func:`~matui.engine.text.decode_lines` made it (inert, without
    its newline). Step output lines (the hot path) cost a
    few string checks and produce no event.
    """

    def __init__(self) -> None:
        self._fresh = True  # the next #N line is a name line (start of log, or after a blank line)
        self._names: dict[int, str] = {}
        self._running: dict[int, None] = {}  # ordered: most recently started/resumed last
        self._suspended: set[int] = set()
        self._finished: set[int] = set()
        self._floor = -1  # steps below the export step are over, printed DONE or not
        self._failing: tuple[int, str | None, str] | None = None
        self._clipped = False
        self._notes: list[str] = []
        self._solve_error: str | None = None
        self._solve_error_final = False
        self._evidence: list[str] = []

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, line: str) -> list[StepEvent]:
        if not line:
            self._fresh = True
            return []
        if line[0] == "#":
            sp = line.find(" ", 2)
            if sp > 1:
                num = line[1:sp]
                if num.isdigit() and num.isascii():
                    if not self._fresh and "0" <= line[sp + 1 : sp + 2] <= "9":
                        # Step output (``#N 0.243 text``): the hot path.
                        if (  # _may_matter, inlined
                            "exec format error" in line
                            or "output clipped" in line
                            or "pulled with platform" in line
                        ):
                            self._scan(line)
                        return []
                    return self._step_line(int(num), line[sp + 1 :])
        self._fresh = False
        self._top_level(line)
        return []

    def feed_lines(self, lines: list[str]) -> list[StepEvent]:
        """``feed`` every line in order: the same events and state, only faster (see
        :meth:`feed_text`)."""
        if not lines:
            return []
        text = "\n".join(lines)
        if text.count("\n") != len(lines) - 1:
            # A "\n" inside a line (never from the runner, which splits on it).
            return [event for line in lines for event in self.feed(line)]
        return self.feed_text(text)

    def feed_text(self, text: str) -> list[StepEvent]:
        """``feed`` each line of ``text`` (lines joined by "\n", no final line break).

        Same events and state as feeding the lines one by one, but step output lines
        (``#N 0.243 text``: the hot path, which changes nothing) are skipped by a regex in C
        rather than by a Python call each. About five times faster on real logs.
        """
        if _may_matter(text):
            return [event for line in text.split("\n") for event in self.feed(line)]
        events: list[StepEvent] = []
        end = len(text)
        pos = 0  # start of the next line not yet fed or skipped
        while pos <= end:
            if self._fresh or not _OUTPUT_LINE_RE.match(text, pos):
                stop = text.find("\n", pos)
                if stop < 0:
                    stop = end
                events += self.feed(text[pos:stop])
                pos = stop + 1
                continue
            found = _NEXT_NOT_OUTPUT_RE.search(text, pos)
            if found is None:
                break
            pos = found.start() + 1
        return events

    def _step_line(self, step: int, rest: str) -> list[StepEvent]:
        fresh = self._fresh
        self._fresh = False
        if not rest:
            return []
        if rest == "...":
            if step in self._running:
                self._suspended.add(step)
            return []
        if rest.startswith("DONE"):
            seconds = None
            if rest.startswith("DONE ") and rest.endswith("s"):
                seconds = _float_or_none(rest[5:-1])
            return self._end(step, StepState.DONE, seconds, None)
        if rest == "CACHED":
            return self._end(step, StepState.CACHED, None, None)
        if rest == "CANCELED":
            return self._end(step, StepState.CANCELED, None, None)
        if rest.startswith("ERROR:") or rest == "ERROR":
            message = rest[6:].strip()
            if self._failing is None:
                self._failing = (step, self._names.get(step), message)
            return self._end(step, StepState.ERROR, None, message)
        if fresh or step not in self._names:
            if _looks_like_output(rest):
                # Output of a step whose name we never saw (a log read from the middle).
                self._scan(rest)
                return []
            return self._name_line(step, rest)
        # A status line (``resolve ... done``, ``WARN: ...``) of a known step.
        if _may_matter(rest):
            self._scan(rest)
        return []

    def _name_line(self, step: int, rest: str) -> list[StepEvent]:
        if step == 0 and rest.startswith("building with "):
            return []  # buildx's own banner, not a BuildKit step
        if step in self._names:
            # The printer came back to this step: it is the active one again.
            if step not in self._finished and step >= self._floor:
                self._running.pop(step, None)
                self._running[step] = None
                self._suspended.discard(step)
            return []
        name = rest
        self._names[step] = name
        if name.startswith("exporting "):
            # The exporter runs once the whole solve is done: earlier steps are over even when
            # the plain printer never wrote their DONE.
            self._floor = step
            for old in [s for s in self._running if s < step]:
                del self._running[old]
                self._suspended.discard(old)
        self._running[step] = None
        self._suspended.discard(step)
        return [StepEvent(step, StepState.STARTED, name, None, None)]

    def _end(
        self, step: int, state: StepState, seconds: float | None, message: str | None
    ) -> list[StepEvent]:
        self._running.pop(step, None)
        self._suspended.discard(step)
        self._finished.add(step)
        return [StepEvent(step, state, self._names.get(step), seconds, message)]

    def _top_level(self, line: str) -> None:
        if line.startswith("ERROR: "):
            text = line[7:].strip()
            final = text.startswith(("failed to solve", "failed to build"))
            if self._solve_error is None or (final and not self._solve_error_final):
                self._solve_error = text
                self._solve_error_final = final
            # buildx printed its verdict: nothing is running any more.
            self._running.clear()
            self._suspended.clear()
            if "failed to receive status" in line and STATUS_LOST_NOTE not in self._notes:
                self._notes.append(STATUS_LOST_NOTE)
        if _may_matter(line):
            self._scan(line)

    def _scan(self, text: str) -> None:
        """The rare path: a line that may carry a clip notice or arch-mismatch evidence."""
        if "[output clipped, log limit " in text and " reached]" in text:
            self._clipped = True
            if CLIP_NOTE not in self._notes:
                self._notes.append(CLIP_NOTE)
        if "exec format error" in text or (
            "pulled with platform" in text
            and ("expected" in text or "InvalidBaseImagePlatform" in text)
        ):
            evidence = _evidence_text(text)
            if evidence not in self._evidence and len(self._evidence) < _MAX_EVIDENCE:
                self._evidence.append(evidence)

    # -- state -----------------------------------------------------------------------------

    @property
    def current_step(self) -> str | None:
        """Name of the most recently started (or resumed) step that is still running.

        Steps the printer switched away from (``#N ...``) count only when no other step runs.
        """
        fallback: int | None = None
        for step in reversed(self._running):
            if step not in self._suspended:
                return self._names.get(step)
            if fallback is None:
                fallback = step
        return None if fallback is None else self._names.get(fallback)

    @property
    def failing_step(self) -> tuple[int, str | None, str] | None:
        """``(step, name, error)`` of the first step that ended with ERROR."""
        return self._failing

    @property
    def clipped(self) -> bool:
        """BuildKit's ``[output clipped, log limit ... reached]`` notice was seen."""
        return self._clipped

    @property
    def notes(self) -> list[str]:
        """Human notes about the log (e.g. the clip notice explained)."""
        return list(self._notes)

    @property
    def solve_error(self) -> str | None:
        """The final ``ERROR: failed to solve: ...`` text (after ``ERROR: ``), if seen.

        Another top-level ``ERROR:`` line from buildx (e.g. ``Multi-platform build is not
        supported for the docker driver.``) is kept when no failed-to-solve line follows.
        """
        return self._solve_error

    @property
    def arch_evidence(self) -> list[str]:
        """Arch-mismatch evidence: ``exec format error`` lines and BuildKit's
        InvalidBaseImagePlatform warning, without step/timestamp prefixes, each once."""
        return list(self._evidence)


# -- metadata file ---------------------------------------------------------------------------

_MEDIA_TYPE_RE = re.compile(
    r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}", re.ASCII
)


def _check_digest(value: object, key: str) -> str:
    if not isinstance(value, str) or not DIGEST_RE.fullmatch(value):
        raise ValueError(
            f"buildx metadata: {key} is {value!r}, not a sha256 digest "
            "(sha256: followed by 64 lowercase hex digits)"
        )
    return value


def parse_metadata(text: str) -> dict[str, str]:
    """Read a buildx ``--metadata-file`` JSON document.

    Returns ``digest`` (``containerimage.digest``, always), and when present ``media_type``
    (``containerimage.descriptor.mediaType``), ``config_digest`` (``containerimage.config.digest``)
    and ``image_name`` (``image.name``). Raises ValueError when the document is not a JSON object,
    the digest is missing or malformed, or the descriptor contradicts it.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"buildx metadata is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("buildx metadata is not a JSON object")
    if "containerimage.digest" not in data:
        raise ValueError(
            "buildx metadata has no containerimage.digest (was the image exported or pushed?)"
        )
    out = {"digest": _check_digest(data["containerimage.digest"], "containerimage.digest")}

    descriptor = data.get("containerimage.descriptor")
    if descriptor is not None:
        if not isinstance(descriptor, dict):
            raise ValueError("buildx metadata: containerimage.descriptor is not an object")
        if "digest" in descriptor:
            desc_digest = _check_digest(descriptor["digest"], "containerimage.descriptor.digest")
            if desc_digest != out["digest"]:
                raise ValueError(
                    f"buildx metadata: containerimage.descriptor.digest {desc_digest} does not "
                    f"match containerimage.digest {out['digest']}"
                )
        media_type = descriptor.get("mediaType")
        if media_type is not None:
            if not isinstance(media_type, str) or not _MEDIA_TYPE_RE.fullmatch(media_type):
                raise ValueError(f"buildx metadata: bad descriptor mediaType {media_type!r}")
            out["media_type"] = media_type

    if "containerimage.config.digest" in data:
        out["config_digest"] = _check_digest(
            data["containerimage.config.digest"], "containerimage.config.digest"
        )
    name = data.get("image.name")
    if isinstance(name, str) and name:
        out["image_name"] = neutralise(name)
    return out
