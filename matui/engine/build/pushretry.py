"""Pushing a built image again when the registry, not the build, failed.

A registry can reject or drop a push the build itself did right: two arches uploading the same
layer at once made the rig's registry answer ``blob unknown`` / ``digest invalid`` (field notes),
and real registries answer 429s and 5xx. With the docker driver the image is in the host's engine
under its tag by then (buildx's ``exporting to image`` step wrote and named it, the separate
``pushing REF with docker`` step failed), so ``docker push REF`` sends it again: no rebuild.

This module decides which failures get such a push retry (:func:`push_target`), how long to wait
before each (:func:`push_delay`), and reads an attempt's outcome out of the lines it appended to
the job's log (:func:`attempt_outcome`). The runner (:mod:`matui.engine.build.run`) launches each
attempt (:func:`matui.engine.shell.push_script`), follows it like the build, and reports success
only once the registry serves, under the arch tag, the digest ``docker push`` printed.

Part of the headless engine: no front end is imported here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from matui.engine.build.failure import PUSH_REJECTED, FailureRecord

__all__ = [
    "PUSH_DELAY",
    "PUSH_DELAY_CAP",
    "PUSH_RETRIES",
    "PushAttempt",
    "PushTarget",
    "attempt_outcome",
    "push_delay",
    "push_target",
]

PUSH_RETRIES = 3
"""Push-only retries of one built image before its job ends failed."""

PUSH_DELAY = 2.0
"""Seconds before the first retry; each further one waits twice as long (jittered)."""

PUSH_DELAY_CAP = 30.0
"""The longest wait before one retry."""

_BANNER = "#0 building with "
# ``#7 writing image sha256:... done``, ``#7 naming to REF 0.0s done`` (the time, now and then).
_WRITING_RE = re.compile(r"#[0-9]+ writing image (sha256:[0-9a-f]{64})(?: [0-9.]+s)?(?: done)?")
_NAMING_RE = re.compile(r"#[0-9]+ naming to (\S+)(?: [0-9.]+s)?(?: done)?")
# `docker push` ends a successful push with "TAG: digest: sha256:... size: N".
_PUSHED_RE = re.compile(r"(?:^|\s)digest: (sha256:[0-9a-f]{64}) size: [0-9]+\s*$")


@dataclass(frozen=True)
class PushTarget:
    """A failed job's image, built and in its host's engine, that a push alone may deliver."""

    ref: str
    """The per-arch tag the build named and failed to push."""
    image_id: str
    """The image the build wrote (``writing image sha256:...``): the push retry checks the tag
    still names it on the host, so a later build's image is never pushed in its stead."""


def push_target(failure: FailureRecord | None, lines: Iterable[str], ref: str) -> PushTarget | None:
    """The image to push again, or None when a push retry does not fit the failure.

    It fits only when the cause is the registry rejecting or dropping the push and the failing
    step is the docker driver's own push (``pushing REF with docker``), after the last attempt's
    log shows the image written and named ``ref``. A build error, a wrong-arch binary, a base
    image without the platform, a fetch failure, or a push that failed before the image existed
    (another driver's ``exporting to image``) never gets one: those need a fix or a rebuild.
    ``lines`` are the job's log lines as the runner decodes them.
    """
    if failure is None or failure.cause != PUSH_REJECTED.name:
        return None
    if failure.step != f"pushing {ref} with docker":
        return None
    image_id: str | None = None
    named = False
    for line in lines:
        if line.startswith(_BANNER):  # a retried job's log holds every attempt: the last counts
            image_id, named = None, False
        elif " writing image " in line and (found := _WRITING_RE.fullmatch(line)):
            image_id = found.group(1)
        elif " naming to " in line and (found := _NAMING_RE.fullmatch(line)):
            named = named or found.group(1) == ref
    if image_id is None or not named:
        return None
    return PushTarget(ref, image_id)


def push_delay(attempt: int, *, base: float = PUSH_DELAY, cap: float = PUSH_DELAY_CAP) -> float:
    """Seconds to wait before push retry ``attempt`` (1-based): doubling from ``base``, at most
    ``cap``, jittered by ±20 % so arches that failed together do not push together again."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return float(round(delay * random.uniform(0.8, 1.2), 1))


@dataclass
class PushAttempt:
    """One push retry of a job, as the run record keeps it."""

    attempt: int
    of: int
    delay: float
    """Seconds waited before it."""
    ref: str
    image_id: str
    offset: int
    """Where its output starts in the job's log (bytes): what it printed is read from there."""
    pid: int | None = None
    exit_code: int | None = None
    """``docker push``'s exit status; None while it runs (or when it never started)."""
    digest: str | None = None
    """The digest ``docker push`` printed."""
    registry_digest: str | None = None
    """What the registry serves under the arch tag afterwards, read back."""
    error: str | None = None
    """Why it did not deliver the image (inert: host text)."""

    @property
    def open(self) -> bool:
        """Started on its host and not ended as far as the runner knows."""
        return self.pid is not None and self.exit_code is None and self.error is None

    @property
    def ok(self) -> bool:
        return (
            self.exit_code == 0
            and self.digest is not None
            and (self.registry_digest == self.digest)
        )

    @property
    def target(self) -> PushTarget:
        return PushTarget(self.ref, self.image_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "of": self.of,
            "delay": self.delay,
            "ref": self.ref,
            "image_id": self.image_id,
            "offset": self.offset,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "digest": self.digest,
            "registry_digest": self.registry_digest,
            "error": self.error,
            "ok": self.ok,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PushAttempt:
        def number(name: str) -> int | None:
            value = data.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        delay = data.get("delay")
        return cls(
            attempt=number("attempt") or 0,
            of=number("of") or 0,
            delay=float(delay) if isinstance(delay, int | float) else 0.0,
            ref=text("ref") or "",
            image_id=text("image_id") or "",
            offset=number("offset") or 0,
            pid=number("pid"),
            exit_code=number("exit_code"),
            digest=text("digest"),
            registry_digest=text("registry_digest"),
            error=text("error"),
        )


def marker(attempt: int, of: int, delay: float) -> str:
    """The line a push retry starts with in the job's log (and so in the pane)."""
    return f"@@matui push retry {attempt}/{of} after {delay:g} s"


def attempt_outcome(lines: Iterable[str]) -> tuple[str | None, str | None]:
    """``(digest, error)`` of one attempt from the lines it appended to the log: the digest
    ``docker push`` printed, and the reason it failed (the script's ``ERROR: push retry ...``
    line, which quotes docker's last line; else its last line, when no digest was printed)."""
    digest: str | None = None
    error: str | None = None
    last: str | None = None
    for line in lines:
        if found := _PUSHED_RE.search(line):
            digest = found.group(1)
        if line.startswith("ERROR: push retry "):
            error = line.partition(": ")[2].partition(": ")[2] or line[len("ERROR: ") :]
        elif line.strip() and not line.startswith("@@matui push retry"):
            last = line.strip()
    return digest, error or (None if digest else last)
