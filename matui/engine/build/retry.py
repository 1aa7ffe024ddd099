"""Retries that fit the cause: what one retry of a failed arch changes (its host, ``--no-cache``,
``--pull``), which other hosts could take the arch, which retry fits a failure's cause, and the
marker line that separates a job's attempts in its log.

An on-call engineer retrying a failed arch has four choices (the same host, another host of that
arch, without the build cache, with a freshly pulled base) and one question: which of them can
pass? A plain retry of a build error fails the same way; a full disk wants another host; a
corrupt cache wants ``--no-cache``. The answer depends only on the failure's cause, so it is a
pure function here (:func:`suggest_retry`), and both front ends show the same choices
(:func:`retry_choices`), the suggested one first.

A failure of the host itself (unreachable, engine gone, disk full, lost) is not the code's: the
job moves, by itself, to another healthy host that may build its platform, at most once per
host (:func:`move_target` picks it, from the run's probes, by the planner's rules: natively,
or under QEMU only for a job the plan put under QEMU, never as a fallback for a native one); a
build error never moves.

Each new attempt of a job starts with one line in the job's log (:func:`attempt_marker`,
written on the host where buildx appends its output, so it travels the one data path to the
local copy, the panes, ``matui logs`` and the bundle): ``@@matui attempt 2: retry --no-cache on
host arm-2``. :func:`parse_attempt_marker` reads it back.

This module is part of the headless engine: it imports nothing from the front ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.plan import BuildJob
    from matui.engine.probe import HostProbe

__all__ = [
    "ATTEMPT_MARKER",
    "MOVING_CAUSES",
    "HostMove",
    "RetryChoice",
    "RetryError",
    "RetryHost",
    "RetryKind",
    "RetryOptions",
    "RetrySuggestion",
    "attempt_marker",
    "check_retry_host",
    "move_target",
    "moves_host",
    "parse_attempt_marker",
    "retry_choices",
    "retry_hosts",
    "suggest_retry",
]


class RetryError(ValueError):
    """A retry that cannot be done as asked; the message names the field and the fix."""


class RetryKind(StrEnum):
    SAME_HOST = "same-host"
    OTHER_HOST = "other-host"
    NO_CACHE = "no-cache"
    PULL = "pull"


@dataclass(frozen=True)
class RetryOptions:
    """What one retry changes; the default is a plain retry on the job's host, same flags."""

    no_cache: bool = False
    """Build without BuildKit's cache (buildx ``--no-cache``)."""
    pull: bool = False
    """Pull the base images afresh (buildx ``--pull``)."""
    host: str | None = None
    """Move the job to this configured host of the same platform (None: stay)."""

    def words(self) -> list[str]:
        """The options as the CLI spells them (``--no-cache --host arm-2``)."""
        words = []
        if self.no_cache:
            words.append("--no-cache")
        if self.pull:
            words.append("--pull")
        if self.host is not None:
            words += ["--host", self.host]
        return words

    def to_json(self) -> dict[str, Any]:
        return {"no_cache": self.no_cache, "pull": self.pull, "host": self.host}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RetryOptions:
        if not data:
            return cls()
        host = data.get("host")
        return cls(
            bool(data.get("no_cache")), bool(data.get("pull")), None if host is None else str(host)
        )


# -- the attempt marker ------------------------------------------------------------------------

ATTEMPT_MARKER = "@@matui attempt "
"""How the line that opens a job's second (third, ...) attempt in its log begins."""

_MARKER_RE = re.compile(r"@@matui attempt ([0-9]{1,6}): (.*)")


def attempt_marker(attempt: int, options: RetryOptions, host: str) -> str:
    """The log line that opens ``attempt`` (2, 3, ...): ``@@matui attempt 2: retry --no-cache
    on host arm-2``. Host names are checked config names (no spaces, no control characters)."""
    flags = [word for word in options.words() if word not in ("--host", options.host)]
    return f"{ATTEMPT_MARKER}{int(attempt)}: " + " ".join(["retry", *flags, "on host", host])


def parse_attempt_marker(line: str) -> tuple[int, str] | None:
    """``(attempt, what)`` of a marker line (``(2, "retry --no-cache on host arm-2")``), else
    None."""
    found = _MARKER_RE.fullmatch(line)
    if found is None:
        return None
    return int(found.group(1)), found.group(2)


# -- hosts a job can move to -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryHost:
    """A configured host that could build the job instead of its own."""

    name: str
    emulated: bool
    """It is declared another arch and would build this one under QEMU (allow_emulation)."""


def retry_hosts(hosts: Sequence[HostConfig], job: BuildJob) -> list[RetryHost]:
    """The other configured hosts that can build ``job``'s platform: hosts declared its arch
    first, then hosts that emulate (``allow_emulation = true``), in config order."""
    native = [RetryHost(h.name, False) for h in hosts if h.name != job.host and h.arch == job.arch]
    emulating = [
        RetryHost(h.name, True)
        for h in hosts
        if h.name != job.host and h.arch != job.arch and h.allow_emulation
    ]
    return native + emulating


def check_retry_host(hosts: Sequence[HostConfig], job: BuildJob, name: str) -> RetryHost:
    """The host ``name`` to move ``job`` to, or :class:`RetryError` saying why not and what to
    do: it must be configured, not the job's own host, and able to build the job's platform."""
    names = [h.name for h in hosts]
    candidates = retry_hosts(hosts, job)
    others = ", ".join(c.name for c in candidates) or "none"
    if name not in names:
        raise RetryError(
            f"--host {name}: no host of that name is configured (configured: "
            f"{', '.join(names) or 'none'}); pick one of them, or add it with `matui host add`"
        )
    if name == job.host:
        raise RetryError(
            f"--host {name}: {job.arch} already built there; leave out --host to retry on the "
            f"same host (other hosts for {job.platform}: {others})"
        )
    for candidate in candidates:
        if candidate.name == name:
            return candidate
    declared = next(h.arch for h in hosts if h.name == name)
    raise RetryError(
        f"--host {name}: it is declared {declared} and does not allow emulation, so it cannot "
        f"build {job.platform} (hosts that can: {others}); pick one of those, or add a "
        f"{job.arch} host with `matui host add NAME --arch {job.arch} --ssh USER@HOST`"
    )


# -- which retry fits a cause ------------------------------------------------------------------


@dataclass(frozen=True)
class RetrySuggestion:
    """The retry that fits a failure (None: none does, fix something first) and why."""

    kind: RetryKind | None
    advice: str
    host: str | None = None
    """For :attr:`RetryKind.OTHER_HOST`: the host suggested."""


_FITS: dict[str, tuple[RetryKind | None, str]] = {
    "base-image-lacks-platform": (
        None,
        "no retry fits: fix the FROM (use a base image published for this platform)",
    ),
    "wrong-arch-binary": (
        None,
        "no retry fits: fetch the binary (or pin the base image) for this arch",
    ),
    "build-error": (
        None,
        "a plain retry fails the same way: fix the code or the Dockerfile first",
    ),
    "disk-full": (
        RetryKind.OTHER_HOST,
        "retry on another host of this arch, or free disk on this one first (matui gc, "
        "docker builder prune)",
    ),
    "host-or-engine-lost": (
        RetryKind.OTHER_HOST,
        "retry on another host of this arch, or on this one once it answers again",
    ),
    "killed-out-of-memory": (
        RetryKind.OTHER_HOST,
        "retry on another host with more memory, or lower the build's parallelism",
    ),
    "qemu-crash": (
        RetryKind.OTHER_HOST,
        "retry on a native host of this arch: QEMU does not run every program correctly",
    ),
    "registry-push-failed": (
        RetryKind.SAME_HOST,
        "retry: the registry's refusal is usually transient",
    ),
    "network-failure": (RetryKind.SAME_HOST, "retry: network failures are often transient"),
    "buildx-died": (RetryKind.SAME_HOST, "retry: buildx died without a failing step"),
    "log-clipped": (
        RetryKind.SAME_HOST,
        "retry after raising BuildKit's step log limit, to see the whole output",
    ),
    "stale-base": (RetryKind.PULL, "retry with a fresh base image (--pull)"),
    "cache-corrupt": (RetryKind.NO_CACHE, "retry without the build cache (--no-cache)"),
}
"""Cause name (matui's own, see :data:`~matui.engine.build.failure.CAUSES`, plus the names a
user signature can give: ``stale-base``, ``cache-corrupt``) -> the retry that fits."""

_NO_OTHER_HOST: dict[str, tuple[RetryKind | None, str]] = {
    "disk-full": (
        RetryKind.SAME_HOST,
        "no other host of this arch is configured: free disk on this one (matui gc, docker "
        "builder prune), then retry here",
    ),
    "host-or-engine-lost": (
        RetryKind.SAME_HOST,
        "no other host of this arch is configured: retry here once the host answers again",
    ),
    "killed-out-of-memory": (
        None,
        "no other host of this arch is configured: lower the build's parallelism first",
    ),
    "qemu-crash": (None, "no retry fits: build this arch on a native host (`matui host add`)"),
}
"""What fits instead when the cause wants another host and none is configured."""


def suggest_retry(
    cause: str | None,
    *,
    retry_worth: bool = True,
    other_hosts: Sequence[RetryHost] = (),
) -> RetrySuggestion:
    """The retry that fits a failure's ``cause`` (None: the job has no failure record, e.g. it
    was cancelled). ``retry_worth`` is the failure record's own verdict, used for causes this
    table does not know (a user signature's). Another host is suggested only when one is
    configured (for a QEMU crash, only a native one); otherwise the fallback says so."""
    if cause is None:
        return RetrySuggestion(RetryKind.SAME_HOST, "retry it as it was")
    fit = _FITS.get(cause)
    if fit is None:
        if retry_worth:
            return RetrySuggestion(RetryKind.SAME_HOST, f"retry: {cause} may pass on a retry")
        return RetrySuggestion(None, f"no retry fits {cause}: fix its cause first")
    kind, advice = fit
    if kind is RetryKind.OTHER_HOST:
        usable = [h for h in other_hosts if not (cause == "qemu-crash" and h.emulated)]
        if not usable:
            kind, advice = _NO_OTHER_HOST[cause]
            return RetrySuggestion(kind, advice)
        return RetrySuggestion(kind, advice, usable[0].name)
    return RetrySuggestion(kind, advice)


@dataclass(frozen=True)
class RetryChoice:
    """One way to retry, as a front end offers it."""

    kind: RetryKind
    options: RetryOptions
    label: str
    suggested: bool = False


def retry_choices(
    job: BuildJob,
    cause: str | None,
    *,
    retry_worth: bool = True,
    other_hosts: Sequence[RetryHost] = (),
) -> tuple[RetrySuggestion, list[RetryChoice]]:
    """The suggestion for ``cause`` and every choice: the same host, each other host that can
    build the arch, without cache, with a fresh base; the suggested one first and marked."""
    suggestion = suggest_retry(cause, retry_worth=retry_worth, other_hosts=other_hosts)
    choices = [RetryChoice(RetryKind.SAME_HOST, RetryOptions(), f"same host ({job.host})")]
    for host in other_hosts:
        how = " (emulated)" if host.emulated else ""
        choices.append(
            RetryChoice(
                RetryKind.OTHER_HOST,
                RetryOptions(host=host.name),
                f"another host: {host.name}{how}",
            )
        )
    choices.append(
        RetryChoice(RetryKind.NO_CACHE, RetryOptions(no_cache=True), "without cache (--no-cache)")
    )
    choices.append(
        RetryChoice(RetryKind.PULL, RetryOptions(pull=True), "with a fresh base (--pull)")
    )
    if suggestion.kind is None:
        return suggestion, choices
    pick = next(
        c
        for c in choices
        if c.kind is suggestion.kind
        and (suggestion.host is None or c.options.host == suggestion.host)
    )
    marked = RetryChoice(pick.kind, pick.options, pick.label, suggested=True)
    return suggestion, [marked, *(c for c in choices if c is not pick)]


# -- moving a job off a failed host ------------------------------------------------------------

MOVING_CAUSES: dict[str, str] = {
    "host-or-engine-lost": "host or engine lost",
    "disk-full": "disk full",
}
"""The causes that are the host's, not the build's (cause name -> words for a note): a job that
fails with one of them moves to another host. A build error, a wrong-arch binary, an OOM kill
(the build's own appetite), a network or registry failure (not the host's), a QEMU crash and a
user signature's cause never move."""


def moves_host(cause: str | None) -> bool:
    """Whether a failure of this cause moves the job to another host."""
    return cause in MOVING_CAUSES


@dataclass(frozen=True)
class HostMove:
    """A job moved from one host to another after an infrastructure failure."""

    source: str
    """The host that failed."""
    target: str
    """The host the job moves to."""
    cause: str
    """The failure's cause name (one of :data:`MOVING_CAUSES`)."""
    emulated: bool = False
    """The job builds under QEMU on the target (only ever for a job planned emulated)."""
    reason: str = ""
    """Why this target: ``least busy: 0 matui jobs, load 0.30``."""
    detail: str = ""
    """What failed, in words (``engine gone``, ``unreachable``, ``host lost``, ``disk full``)
    and the error, shortened: ``engine gone (the docker engine on amd64-1 went away ...)``."""

    def words(self) -> str:
        """``from amd64-1 to amd64-2: engine gone (...)``."""
        how = " (emulated)" if self.emulated else ""
        what = self.detail or MOVING_CAUSES.get(self.cause, self.cause)
        return f"from {self.source} to {self.target}{how}: {what}"

    def line(self, platform: str) -> str:
        """``moved linux/amd64 from amd64-1 to amd64-2: engine gone (...)``."""
        return f"moved {platform} {self.words()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "cause": self.cause,
            "emulated": self.emulated,
            "reason": self.reason,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostMove:
        return cls(
            str(data.get("from") or "?"),
            str(data.get("to") or "?"),
            str(data.get("cause") or "?"),
            bool(data.get("emulated")),
            str(data.get("reason") or ""),
            str(data.get("detail") or ""),
        )


def _load_rank(probe: HostProbe) -> float:
    """Load per CPU, to a tenth (as the planner ranks it)."""
    if probe.load is None:
        return 0.0
    return round(probe.load / max(probe.cpus or 1, 1), 1)


def move_target(
    cause: str | None,
    job: BuildJob,
    hosts: Sequence[HostConfig],
    probes: Sequence[HostProbe],
    tried_hosts: Sequence[str],
    *,
    running: Mapping[str, int] | None = None,
) -> HostMove | None:
    """Where ``job`` moves after failing with ``cause`` on its host, or None: it stays failed.

    Only a cause of :data:`MOVING_CAUSES` moves. A target is a configured host that is not
    ``job.host`` nor in ``tried_hosts`` (once per host: a job never moves back), whose probe
    (``probes``: the run's pre-flight) found it usable, not below its ``min_free_disk``, not at
    its ``max_jobs``, and able to build the platform by the planner's rules: natively (its
    probed arch), or, for a job the plan put under QEMU (``job.emulated``: the configured
    choice), under QEMU on a host with ``allow_emulation`` and a handler for the arch. A native
    job never moves to emulation. Native hosts come first, then the least busy (matui jobs:
    the probe's count plus ``running``, this run's unfinished jobs by host; then load per
    CPU); ties keep config order. A host without a probe is not known healthy: not a target."""
    if not moves_host(cause):
        return None
    assert cause is not None
    by_name = {probe.name: probe for probe in probes}
    running = running or {}
    avoid = {job.host, *tried_hosts}

    def machine(name: str) -> str:
        return by_name[name].machine or f"host:{name}"

    def jobs_on(name: str) -> int:
        mine = sum(
            n for host, n in running.items() if host in by_name and machine(host) == machine(name)
        )
        return (by_name[name].jobs_running or 0) + mine

    candidates: list[tuple[tuple[bool, int, float, int], HostConfig, bool]] = []
    for order, host in enumerate(hosts):
        probe = by_name.get(host.name)
        if host.name in avoid or probe is None or not probe.usable:
            continue
        if probe.native_arch == job.arch:
            emulated = False
        elif job.emulated and host.allow_emulation and job.arch in probe.emulation:
            emulated = True
        else:
            continue
        floor = host.min_free_disk
        if floor and probe.free_bytes is not None and probe.free_bytes < floor:
            continue
        busy = jobs_on(host.name)
        if host.max_jobs is not None and busy >= host.max_jobs:
            continue
        candidates.append(((emulated, busy, _load_rank(probe), order), host, emulated))
    if not candidates:
        return None
    candidates.sort(key=lambda c: c[0])
    (_, busy, _, _), host, emulated = candidates[0]
    probe = by_name[host.name]
    reason = f"least busy: {busy} matui job{'s' if busy != 1 else ''}"
    if probe.load is not None:
        reason += f", load {probe.load:.2f}"
    if len(candidates) == 1:
        busy_words = reason.removeprefix("least busy: ")
        reason = f"the only other healthy host for {job.platform} ({busy_words})"
    return HostMove(job.host, host.name, cause, emulated, reason)
