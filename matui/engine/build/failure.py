"""Why a job failed, in one record: the failing step, its own exit code and output, a cause,
advice, and whether a plain retry is worth it.

An on-call engineer looking at a failed arch needs the step that failed (not buildx's exit
status, which is 1 whatever the step returned), the last lines of *that* step (in a parallel
build the end of the log belongs to other steps), and a verdict: retry, or fix something. Both
front ends show the same :class:`FailureRecord`, computed once here.

The record reuses :class:`~matui.engine.build.progress.ProgressParser` for everything it
already knows (the failing step's number, name and error, buildx's final verdict, the clip
notice) and :func:`~matui.engine.build.progress.step_of` for a line's step. This module only
picks that step's own lines out of the log, reads the exit code out of the step's error, and
finds buildx's ``Dockerfile:N`` excerpt (newer buildx prints it; buildx 0.13.1 on BuildKit 0.8
does not, and the record then has no line).

Causes are found in the failing step's output and error and in the job's facts (state, host
arch, emulation), in this order: the user's ``[[failure_signatures]]`` from the config, then
matui's own (:data:`CAUSES` lists them). User patterns run through the ``regex`` package with a
time limit per line, so a pattern that backtracks cannot hang a run.

This module is part of the headless engine: it imports nothing from the front ends.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex as regex_lib  # type: ignore[import-untyped]  # the package ships no type hints

from matui.engine.build.progress import ProgressParser, step_of
from matui.engine.build.retry import HostMove, moves_host
from matui.engine.config import FailureSignature
from matui.engine.config.checker import SIGNATURE_FLAGS
from matui.engine.plan import BuildJob
from matui.engine.probe import HostProbe
from matui.engine.text import decode_lines, neutralise

__all__ = [
    "CAUSES",
    "FAILURE_LINES",
    "SIGNATURE_TIMEOUT",
    "Cause",
    "FailureRecord",
    "HostFacts",
    "JobFacts",
    "classify",
    "failure_record",
    "log_lines",
    "stage_of",
]

FAILURE_LINES = 20
"""Lines of the failing step's own output a record keeps (its last ones)."""

SIGNATURE_TIMEOUT = 0.05
"""Seconds one user pattern may spend on one line before it counts as not matching."""

_MAX_LINE = 2000
"""Characters of a line a cause is looked for in (a minified-JS line can be megabytes)."""


@dataclass(frozen=True)
class Cause:
    """A kind of failure: its name, what to do about it, and whether a plain retry may pass."""

    name: str
    advice: str
    retry: bool


WRONG_ARCH = Cause(
    "wrong-arch-binary",
    "a binary for another CPU architecture ran in this build (a download or COPY of the wrong "
    "arch, or a base image of another platform): fetch the binary for $TARGETARCH, or pin the "
    "base image to this platform; a retry fails the same way",
    False,
)
BASE_LACKS_PLATFORM = Cause(
    "base-image-lacks-platform",
    "a FROM image has no manifest for this platform: pick a base image (or tag) published for "
    "it, or drop the platform from the image's platforms; a retry fails the same way",
    False,
)
OUT_OF_MEMORY = Cause(
    "killed-out-of-memory",
    "the step was killed (SIGKILL, exit 137: usually the kernel's OOM killer): build with less "
    "parallelism (make -j, cargo -j, NODE_OPTIONS=--max-old-space-size) or give the builder "
    "host more memory; a plain retry helps only if other work on the host was eating memory",
    False,
)
DISK_FULL = Cause(
    "disk-full",
    "the builder host ran out of disk: free space there (docker builder prune, docker image "
    "prune, matui gc), then retry",
    False,
)
PUSH_REJECTED = Cause(
    "registry-push-failed",
    "the image was built but the registry rejected or dropped the push (blob unknown, digest "
    "invalid, rate limit, a 5xx, a reset connection): usually transient, retry; if it keeps "
    "failing, check the registry's health, quota and credentials",
    True,
)
NETWORK = Cause(
    "network-failure",
    "a fetch failed on the network (DNS, refused or reset connection, timeout): often "
    "transient, retry; if it repeats, check the builder host's DNS and proxy settings and that "
    "the address is right",
    True,
)
HOST_LOST = Cause(
    "host-or-engine-lost",
    "matui lost the builder host or its docker engine during the build (connection dropped, "
    "engine stopped or restarted): the code may be fine; check the host is up, then retry",
    True,
)
QEMU_CRASH = Cause(
    "qemu-crash",
    "the step crashed under QEMU emulation (segmentation fault or illegal instruction): QEMU "
    "does not run every program correctly; build this arch on a native host, or update the "
    "host's qemu-user-static; a plain retry rarely helps",
    False,
)
LOG_CLIPPED = Cause(
    "log-clipped",
    "BuildKit clipped this step's log (per-step log limit), so the reason may be missing from "
    "it: set BUILDKIT_STEP_LOG_MAX_SIZE and BUILDKIT_STEP_LOG_MAX_SPEED in the builder host's "
    "dockerd environment, then rebuild to see the whole output",
    False,
)
BUILD_ERROR = Cause(
    "build-error",
    "the step's command failed: read its output below and fix the code or the Dockerfile; a "
    "retry fails the same way",
    False,
)
BUILDX_DIED = Cause(
    "buildx-died",
    "buildx stopped without naming a failing step (it crashed or lost BuildKit's status "
    "stream): read the end of the log; a retry may pass",
    True,
)

CACHE_CORRUPT = Cause(
    "cache-corrupt",
    "BuildKit's cache on the builder host is damaged (a snapshot or blob it expected is "
    "missing): retry without the cache (matui retry --no-cache); if it repeats, prune the "
    "host's build cache (docker builder prune)",
    False,
)

CAUSES: tuple[Cause, ...] = (
    HOST_LOST,
    WRONG_ARCH,
    BASE_LACKS_PLATFORM,
    QEMU_CRASH,
    OUT_OF_MEMORY,
    DISK_FULL,
    CACHE_CORRUPT,
    PUSH_REJECTED,
    NETWORK,
    LOG_CLIPPED,
    BUILD_ERROR,
    BUILDX_DIED,
)
"""matui's own causes, in the order they are tried."""


@dataclass(frozen=True)
class JobFacts:
    """What matui knows about a failed job besides its log."""

    state: str = "failed"
    """The job's final state (``failed``, ``lost``, ``cancelled``: a JobState value)."""
    declared_arch: str | None = None
    """The arch the host is configured as."""
    native_arch: str | None = None
    """The arch the host really is (its own ``uname -m``), when probed."""
    emulated: bool = False
    """The build ran under QEMU (its platform is not the host's own)."""
    engine_gone: bool = False
    """The host's docker engine went away during the build."""


@dataclass(frozen=True)
class HostFacts:
    """The host a job ran on, as the run's pre-flight probe found it: what an on-call engineer
    asks first about a failed arch (right arch? emulated? which docker? disk left?). Kept per
    job in the run record when the run starts, so a card read the next morning still has it."""

    host: str
    declared_arch: str | None = None
    """The arch the config declares for the host."""
    native_arch: str | None = None
    """The host's own arch (its ``uname -m``), when probed."""
    emulated: bool = False
    """The job's platform is not the host's own: it builds under QEMU."""
    docker_version: str | None = None
    buildx_version: str | None = None
    free_bytes: int | None = None
    """Free disk where docker keeps its data, at the probe."""

    @classmethod
    def of(
        cls, job: BuildJob, probe: HostProbe | None, declared_arch: str | None = None
    ) -> HostFacts:
        """The facts of ``job``'s host from its probe (None: not probed; the declared arch
        then comes from ``declared_arch``, the config's)."""
        if probe is None:
            return cls(job.host, declared_arch, emulated=job.emulated)
        return cls(
            job.host,
            probe.arch or declared_arch,
            probe.native_arch,
            job.emulated,
            probe.docker_version,
            probe.buildx_version,
            probe.free_bytes,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "declared_arch": self.declared_arch,
            "native_arch": self.native_arch,
            "emulated": self.emulated,
            "docker_version": self.docker_version,
            "buildx_version": self.buildx_version,
            "free_bytes": self.free_bytes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostFacts:
        """The facts as :meth:`to_json` wrote them; a record is host text, made inert again
        (an older or hand-edited record may hold it raw)."""

        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else neutralise(str(value))

        free = data.get("free_bytes")
        return cls(
            host=text("host") or "?",
            declared_arch=text("declared_arch"),
            native_arch=text("native_arch"),
            emulated=bool(data.get("emulated")),
            docker_version=text("docker_version"),
            buildx_version=text("buildx_version"),
            free_bytes=free if isinstance(free, int) and not isinstance(free, bool) else None,
        )

    def line(self) -> str:
        """One line: ``emu-1: declared amd64, native amd64, emulated · docker 20.10.24 ·
        buildx 0.13.1 · 12.3 GiB free``."""
        native = self.native_arch or "not probed"
        how = "emulated (QEMU)" if self.emulated else "native"
        return (
            f"{self.host}: declared {self.declared_arch or '?'}, native {native}, {how}"
            f" · docker {self.docker_version or '?'} · buildx {self.buildx_version or '?'}"
            f" · {_size(self.free_bytes)} free"
        )


def _inert_move(move: HostMove) -> HostMove:
    """A move read back from a record, its text made inert."""
    return HostMove(
        neutralise(move.source),
        neutralise(move.target),
        neutralise(move.cause),
        move.emulated,
        neutralise(move.reason),
        neutralise(move.detail),
    )


def _elsewhere(seconds: Mapping[str, float]) -> str:
    """The same step's seconds on the arches that passed, as ``amd64 4.2 s, s390x 9.0 s``."""
    return ", ".join(f"{arch} {took:.1f} s" for arch, took in seconds.items())


def _elsewhere_seconds(value: object) -> dict[str, float]:
    """A saved ``elsewhere`` read back: arch names (made inert) to seconds; junk left out."""
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for arch, seconds in value.items():
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            out[neutralise(str(arch))] = float(seconds)
    return out


def _size(n: int | None) -> str:
    if n is None:
        return "? disk"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@dataclass(frozen=True)
class FailureRecord:
    """One failed job, explained."""

    step: str | None
    """The failing step's name as buildx prints it (``[3/4] RUN make``), or None."""
    step_number: int | None
    """Its ``#N``."""
    stage: str | None
    """The Dockerfile stage (``builder`` in ``[builder 3/4] RUN ...``); None for the last,
    unnamed stage and for steps outside any stage."""
    dockerfile: str | None
    """The Dockerfile buildx named in its excerpt (``Dockerfile``), when it printed one."""
    dockerfile_line: int | None
    exit_code: int | None
    """The step's own exit code (``... exit code: 3``), not buildx's."""
    error: str | None
    """The step's error as BuildKit printed it, else buildx's final error."""
    cause: str
    advice: str
    retry: bool
    lines: tuple[str, ...] = field(default_factory=tuple)
    """The last lines of the failing step's own output (without ``#N`` and timestamp)."""
    clipped: bool = False
    """BuildKit clipped a step's log: the lines may not hold the reason."""
    elsewhere: dict[str, float] = field(default_factory=dict)
    """Seconds the same step took on each arch that passed (filled when the run ends)."""
    host: HostFacts | None = None
    """The host it ran on, as probed when the run started (None: not known)."""
    buildx_exit: int | None = None
    """buildx's own exit status (1 whatever the step returned), apart from the step's."""
    moves: tuple[HostMove, ...] = ()
    """The job's moves to another host after infrastructure failures before this one."""
    tried_hosts: tuple[str, ...] = ()
    """Every host the job was sent to, in order (this failure's last); empty: not known."""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "step_number": self.step_number,
            "stage": self.stage,
            "dockerfile": self.dockerfile,
            "dockerfile_line": self.dockerfile_line,
            "exit_code": self.exit_code,
            "error": self.error,
            "cause": self.cause,
            "advice": self.advice,
            "retry": self.retry,
            "lines": list(self.lines),
            "clipped": self.clipped,
            "elsewhere": dict(self.elsewhere),
            "host": None if self.host is None else self.host.to_json(),
            "buildx_exit": self.buildx_exit,
            "moves": [move.to_json() for move in self.moves],
            "tried_hosts": list(self.tried_hosts),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FailureRecord:
        """The record as :meth:`to_json` saved it in the run record (a resumed run shows it
        again); its text is made inert again, as everything read back from a record."""

        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else neutralise(str(value))

        def number(name: str) -> int | None:
            value = data.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        host = data.get("host")
        return cls(
            step=text("step"),
            step_number=number("step_number"),
            stage=text("stage"),
            dockerfile=text("dockerfile"),
            dockerfile_line=number("dockerfile_line"),
            exit_code=number("exit_code"),
            error=text("error"),
            cause=text("cause") or BUILDX_DIED.name,
            advice=text("advice") or "",
            retry=bool(data.get("retry")),
            lines=tuple(neutralise(str(line)) for line in data.get("lines") or ()),
            clipped=bool(data.get("clipped")),
            elsewhere=_elsewhere_seconds(data.get("elsewhere")),
            host=HostFacts.from_json(host) if isinstance(host, Mapping) else None,
            buildx_exit=number("buildx_exit"),
            moves=tuple(
                _inert_move(HostMove.from_json(m))
                for m in data.get("moves") or ()
                if isinstance(m, Mapping)
            ),
            tried_hosts=tuple(neutralise(str(h)) for h in data.get("tried_hosts") or ()),
        )

    # -- what both front ends show ------------------------------------------------------------

    def headline(self, width: int = 60, detail: str = "") -> str:
        """The failure in one line of at most ``width`` characters, for a pane's subtitle and a
        table: ``exit 3 at [3/4] RUN make … · build-error``. The step's name gives way first;
        without an exit code or a step, ``detail`` (the job's error) says what happened."""
        tail = f" · {self.cause}"
        head = f"exit {self.exit_code}" if self.exit_code is not None else ""
        if self.step:
            head = f"{head} at " if head else "at "
            room = width - len(head) - len(tail)
            step = self.step if len(self.step) <= room else self.step[: max(room - 1, 0)] + "…"
            line = head + step + tail
        elif head:
            line = head + tail
        else:
            room = width - len(tail)
            short = detail if len(detail) <= room else detail[: max(room - 1, 0)] + "…"
            line = (short + tail) if short else self.cause
        return line if len(line) <= width else line[: width - 1] + "…"

    def card(self) -> list[tuple[str, str]]:
        """The card's fields in order, as (label, value): what the dashboard's card and the
        CLI's summary both show (the step's own lines come apart, from :attr:`lines`)."""
        fields_: list[tuple[str, str]] = []
        step = self.step or "(buildx named no failing step)"
        if self.step_number is not None:
            step = f"#{self.step_number} {step}"
        fields_.append(("step", step))
        if self.stage:
            fields_.append(("stage", self.stage))
        if self.dockerfile_line is not None:
            fields_.append(
                ("dockerfile", f"{self.dockerfile or 'Dockerfile'}:{self.dockerfile_line}")
            )
        code = "not given" if self.exit_code is None else str(self.exit_code)
        if self.buildx_exit is not None:
            code += f" (the step's own; buildx exited {self.buildx_exit})"
        fields_.append(("exit code", code))
        fields_.append(("cause", self.cause))
        fields_.append(("advice", self.advice))
        fields_.append(("retry worth it", "yes" if self.retry else "no"))
        if self.host is not None:
            fields_.append(("host", self.host.line()))
        for move in self.moves:
            fields_.append(("moved", move.words()))
        if self.tried_hosts and (moves_host(self.cause) or len(self.tried_hosts) > 1):
            tried = ", ".join(self.tried_hosts)
            if moves_host(self.cause):
                tried += " (no other healthy host that may build this platform is left to move to)"
            fields_.append(("hosts tried", tried))
        if self.elsewhere:
            fields_.append(("same step elsewhere", _elsewhere(self.elsewhere)))
        if self.error and self.exit_code is None:
            fields_.append(("error", self.error))
        if self.clipped:
            fields_.append(("log", "clipped by BuildKit: the lines may not hold the reason"))
        return fields_

    def summary_lines(self, arch: str, *, lines: int = 5) -> list[str]:
        """The card as plain text lines (the CLI's end-of-build summary): a heading, the
        fields, then the step's last ``lines`` lines."""
        out = [f"{arch} failed:"]
        width = max(len(label) for label, _ in self.card())
        out += [f"  {label:<{width}}  {value}" for label, value in self.card()]
        if self.lines and lines > 0:
            shown = self.lines[-lines:]
            out.append(f"  last {len(shown)} of the step's lines:")
            out += [f"    | {line}" for line in shown]
        return out


# -- reading the log ---------------------------------------------------------------------------

_EXIT_CODE_RE = re.compile(r"(?:exit code|exit status): ?(-?[0-9]+)\s*$")
_DOCKERFILE_RE = re.compile(r"(\S+):([0-9]{1,7})")
_EXCERPT_RULE = "--------------------"
_STAGE_RE = re.compile(r"\[([^\]]*)\]")


def _output_text(rest: str) -> str | None:
    """The text of a step output line (``0.243 text`` after ``#N ``), else None."""
    head, _, text = rest.partition(" ")
    if head[:1].isdigit() and head.replace(".", "", 1).isdigit():
        return text
    return None


def _stage(name: str | None) -> str | None:
    """``builder`` of ``[builder 3/4] RUN ...`` (or ``[linux/arm64 builder 3/4] ...``)."""
    if name is None:
        return None
    found = _STAGE_RE.match(name)
    if found is None:
        return None
    words = found.group(1).split()
    if not words or words == ["internal"]:
        return None
    if re.fullmatch(r"[0-9]+/[0-9]+", words[-1]):
        words = words[:-1]
    if words and re.fullmatch(r"[a-z0-9]+/[a-z0-9]+(?:/[a-z0-9]+)?", words[0]):
        words = words[1:]  # the platform prefix of a multi-platform build
    return " ".join(words) or None


stage_of = _stage
"""The Dockerfile stage of a step's name (``builder`` in ``[builder 3/4] RUN ...``), or None."""


def _exit_code(*texts: str | None) -> int | None:
    for text in texts:
        if text:
            found = _EXIT_CODE_RE.search(text)
            if found is not None:
                return int(found.group(1))
    return None


class _Collector:
    """One pass over the log: feeds the parser and keeps what the parser does not — each
    step's last output lines, and buildx's ``Dockerfile:N`` excerpt head."""

    def __init__(self, parser: ProgressParser | None) -> None:
        self.parser = parser
        self.lines: dict[int, deque[str]] = {}
        self.dockerfile: tuple[str, int] | None = None
        self._candidate: tuple[str, int] | None = None

    def add(self, line: str) -> None:
        step = step_of(line)
        if step == 0 and line.startswith("#0 building with "):
            # buildx's banner: a new attempt starts (a retried job's log holds every attempt,
            # and step numbers repeat), so only the last attempt's steps count.
            self.lines.clear()
            self.dockerfile = self._candidate = None
            if self.parser is not None:
                self.parser = ProgressParser()
        if self.parser is not None:
            self.parser.feed(line)
        if step is not None:
            self._candidate = None
            text = _output_text(line.partition(" ")[2])
            if text is not None:
                kept = self.lines.get(step)
                if kept is None:
                    kept = self.lines[step] = deque(maxlen=FAILURE_LINES)
                kept.append(text)
            return
        if line == _EXCERPT_RULE and self._candidate is not None:
            self.dockerfile = self._candidate  # the last excerpt is the failing step's
            self._candidate = None
            return
        found = _DOCKERFILE_RE.fullmatch(line)
        self._candidate = (found.group(1), int(found.group(2))) if found else None


# -- classifying -------------------------------------------------------------------------------

_PATTERNS: dict[str, re.Pattern[str]] = {
    WRONG_ARCH.name: re.compile(r"exec format error|Invalid ELF image", re.I),
    BASE_LACKS_PLATFORM.name: re.compile(
        r"no match for platform in manifest|no matching manifest for|"
        r"does not provide the specified platform|InvalidBaseImagePlatform",
        re.I,
    ),
    QEMU_CRASH.name: re.compile(
        r"segmentation fault|illegal instruction|uncaught target signal|core dumped", re.I
    ),
    OUT_OF_MEMORY.name: re.compile(
        r"^Killed$|out of memory|Cannot allocate memory|oom-kill|signal: killed", re.I
    ),
    DISK_FULL.name: re.compile(r"no space left on device|disk quota exceeded", re.I),
    CACHE_CORRUPT.name: re.compile(
        r"(?:parent )?snapshot \S+ does not exist|failed to get blob|"
        r"content digest sha256:[0-9a-f]+ not found|layer does not exist|"
        r"unexpected commit digest|failed to prepare extraction snapshot",
        re.I,
    ),
    PUSH_REJECTED.name: re.compile(
        r"blob unknown|digest invalid|manifest invalid|429 Too Many Requests|toomanyrequests|"
        r"\b5[0-9][0-9] (?:Internal Server Error|Bad Gateway|Service Unavailable|"
        r"Gateway Timeout)|status(?: code)?:? 5[0-9][0-9]\b|unexpected status.* 5[0-9][0-9]|"
        r"connection reset|connection refused|broken pipe|i/o timeout|EOF$",
        re.I,
    ),
    NETWORK.name: re.compile(
        r"bad address|could not resolve|couldn't resolve|temporary failure in name resolution|"
        r"name or service not known|no such host|server misbehaving|network is unreachable|"
        r"no route to host|connection refused|connection reset|connection timed out|"
        r"i/o timeout|TLS handshake timeout|Could not connect to|Failed to fetch|"
        r"unable to connect|ETIMEDOUT|ECONNRESET|ECONNREFUSED|EAI_AGAIN|ENOTFOUND",
        re.I,
    ),
}


def _is_push(step_name: str | None, error: str | None) -> bool:
    """The failing step pushed (the docker driver's ``pushing ... with docker``, the exporter
    of other drivers), or its error says it was pushing."""
    if step_name is not None and step_name.startswith(("pushing ", "exporting to image")):
        return True
    return error is not None and "push" in error.lower()


def _user_match(signature: FailureSignature, texts: Sequence[str]) -> bool:
    try:
        compiled = regex_lib.compile(signature.pattern, SIGNATURE_FLAGS)
    except (regex_lib.error, OverflowError, RecursionError):
        return False  # the config checker refuses these; a record never fails on one
    for text in texts:
        try:
            if compiled.search(text[:_MAX_LINE], timeout=SIGNATURE_TIMEOUT) is not None:
                return True
        except TimeoutError:
            continue
    return False


def classify(
    texts: Sequence[str],
    facts: JobFacts,
    *,
    step_name: str | None = None,
    error: str | None = None,
    exit_code: int | None = None,
    failing_step: bool = True,
    clipped: bool = False,
    signatures: Iterable[FailureSignature] = (),
) -> Cause:
    """The cause of a failure from the failing step's output and error (``texts``) and the
    job's facts. ``step_name`` and ``error`` are the failing step's name and error (they tell a
    push from a fetch); ``failing_step`` says whether buildx named a failing step at all."""
    for signature in signatures:
        if _user_match(signature, texts):
            return Cause(signature.cause, signature.advice, signature.retry)
    if facts.state == "lost" or facts.engine_gone:
        return HOST_LOST
    clipped_texts = [text[:_MAX_LINE] for text in texts]

    def seen(cause: Cause) -> bool:
        pattern = _PATTERNS[cause.name]
        return any(pattern.search(text) for text in clipped_texts)

    if seen(WRONG_ARCH):
        return WRONG_ARCH
    if seen(BASE_LACKS_PLATFORM):
        return BASE_LACKS_PLATFORM
    if facts.emulated and (seen(QEMU_CRASH) or exit_code in (132, 139)):
        return QEMU_CRASH
    if exit_code == 137 or seen(OUT_OF_MEMORY):
        return OUT_OF_MEMORY
    if seen(DISK_FULL):
        return DISK_FULL
    if seen(CACHE_CORRUPT):
        return CACHE_CORRUPT
    if _is_push(step_name, error) and seen(PUSH_REJECTED):
        return PUSH_REJECTED
    if seen(NETWORK):
        return NETWORK
    if clipped:
        return LOG_CLIPPED
    if failing_step:
        return BUILD_ERROR
    return BUILDX_DIED


def failure_record(
    lines: Iterable[str],
    facts: JobFacts,
    *,
    parser: ProgressParser | None = None,
    signatures: Iterable[FailureSignature] = (),
) -> FailureRecord:
    """The record of a failed job from its log ``lines`` (as
    :func:`~matui.engine.text.decode_lines` makes them: inert, one a line).

    ``parser`` is a :class:`ProgressParser` that has already read these lines (the runner's
    own, at the end of a job): it is asked, not fed again. Without one, a fresh parser reads the
    lines in the same pass that collects each step's output.
    """
    collector = _Collector(ProgressParser() if parser is None else None)
    for line in lines:
        collector.add(line)
    source = parser if parser is not None else collector.parser
    assert source is not None
    failing = source.failing_step
    step_number: int | None = None
    name: str | None = None
    message: str | None = None
    if failing is not None:
        step_number, name, message = failing
    solve_error = source.solve_error
    error = message or solve_error
    exit_code = _exit_code(message, solve_error)
    step_lines = tuple(collector.lines.get(step_number, ())) if step_number is not None else ()
    texts = [*step_lines, *(t for t in (message, solve_error) if t)]
    cause = classify(
        texts,
        facts,
        step_name=name,
        error=error,
        exit_code=exit_code,
        failing_step=failing is not None,
        clipped=source.clipped,
        signatures=signatures,
    )
    dockerfile, dockerfile_line = (
        (None, None) if collector.dockerfile is None else collector.dockerfile
    )
    return FailureRecord(
        step=name,
        step_number=step_number,
        stage=_stage(name),
        dockerfile=dockerfile,
        dockerfile_line=dockerfile_line,
        exit_code=exit_code,
        error=error,
        cause=cause.name,
        advice=cause.advice,
        retry=cause.retry,
        lines=step_lines,
        clipped=source.clipped,
    )


_BLOCK = 1 << 20


def log_lines(path: Path) -> Iterator[str]:
    """The lines of a job's local log copy as the runner decodes them, read in blocks (a log can
    be far larger than memory should hold); nothing when the file cannot be opened."""
    try:
        file = path.open("rb")
    except OSError:  # no copy (a job lost before its first byte): the record has no lines
        return
    with file:
        rest = b""
        while block := file.read(_BLOCK):
            data = rest + block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1 :]
            yield from decode_lines(data[:cut])
        if rest:
            yield from decode_lines(rest)
