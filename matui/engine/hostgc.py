"""What matui leaves on its builder hosts, and what of it is due to go.

Every job leaves a directory on its host (``~/.matui/runs/RUN/JOB``): the build's log, job
script, pid, lock, exit code and, while it builds, a copy of the build context. The job script
removes the context copy as soon as the build ends; the log and the outcome stay for the host's
retention (``job_retention_days``) so that a matui that lost a build can still reattach and read
both, then the whole directory goes. A job whose lock is held is never touched.

This module decides what is due — pure functions over the host's listing (:func:`parse_listing`,
:func:`decide`) — and runs :mod:`matui.engine.shell`'s listing and removal scripts on each host
(:func:`collect_garbage`). ``matui gc`` renders its :class:`GcReport`; every build runs it on
the hosts it uses.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from matui.engine.shell import (
    GC_JOB_FILES,
    GcTarget,
    UnsafeValue,
    check_name,
    gc_list_script,
    gc_remove_script,
)
from matui.engine.text import neutralise

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.ssh import SshPool

DAY = 86400
#: A job with no exit code and no lock held may be between its upload and its launch; its
#: context copy is left alone for this long after anything in the job was last written.
UNFINISHED_GRACE = 3600
LIST_TIMEOUT = 120.0
REMOVE_TIMEOUT = 600.0


class JobDirState(StrEnum):
    RUNNING = "running"
    """Its lock is held: building, or its context is being uploaded."""
    FINISHED = "finished"
    """It has an exit code and no context copy: its log and outcome wait for the retention."""
    CONTEXT_LEFT = "context left"
    """It has an exit code, but its context copy is still there (a cancel or a crash cut the
    job script short, or an older matui ran it)."""
    UNFINISHED = "unfinished"
    """No exit code and nothing running: about to launch, or its build died with its host."""


class Action(StrEnum):
    KEEP = "keep"
    REMOVE_CONTEXT = "remove context"
    REMOVE_JOB = "remove job"


@dataclass(frozen=True)
class JobDir:
    """One job directory as the host listed it. Times are the host's epoch seconds."""

    run_id: str
    job_key: str
    running: bool
    ended: int | None
    """When the exit code was written; ``None``: there is none."""
    exit_code: int | None
    newest: int
    """The newest mtime among the job's files (:data:`~matui.engine.shell.GC_JOB_FILES`)."""
    bytes: int
    context_bytes: int | None
    """``None``: no context copy."""

    @property
    def state(self) -> JobDirState:
        if self.running:
            return JobDirState.RUNNING
        if self.ended is None:
            return JobDirState.UNFINISHED
        return JobDirState.CONTEXT_LEFT if self.context_bytes is not None else JobDirState.FINISHED

    def age(self, now: int) -> int:
        """Seconds since the build ended (or, without an exit code, since anything was written)."""
        return max(0, now - (self.ended if self.ended is not None else self.newest))


@dataclass(frozen=True)
class HostListing:
    now: int
    storage: str
    """Machine, user id and home directory: two host entries with the same one share jobs."""
    total_bytes: int | None
    """Everything under ``~/.matui``; ``None`` when the host has none."""
    jobs: tuple[JobDir, ...] = ()


class ListingError(ValueError):
    """The host's answer is not a listing (cut short, or not from the script)."""


_KEY_RE = re.compile(r"@@matui:(now|storage|total)=(.*)")
_SECTIONS = ("sizes", "mtimes", "exits", "running")


def _split_job_path(path: str) -> tuple[str, str, str] | None:
    """``RUN/JOB[/FILE]`` (``./`` allowed in front) as ``(run, job, file)``, or ``None`` for a
    name matui would not have made (those are never listed, so never removed)."""
    parts = path.removeprefix("./").split("/")
    if len(parts) not in (2, 3):
        return None
    try:
        check_name(parts[0])
        check_name(parts[1])
    except UnsafeValue:
        return None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def parse_listing(text: str) -> HostListing:
    """The listing script's output as facts. Lines that do not parse are left out; a listing
    without its header or cut short before its end marker raises :class:`ListingError`."""
    values: dict[str, str] = {}
    sections: dict[str, list[str]] = {name: [] for name in _SECTIONS}
    current: list[str] | None = None
    ended = False
    for line in text.splitlines():
        if match := _KEY_RE.fullmatch(line):
            values[match.group(1)] = match.group(2).strip()
            current = None
        elif line.startswith("@@matui:"):
            name = line.removeprefix("@@matui:")
            current = sections.get(name)
            ended = ended or name == "end"
        elif current is not None:
            current.append(line)
    now = values.get("now", "")
    if not now.isdigit():
        raise ListingError("the host's listing has no clock reading (`date +%s` failed?)")
    if not ended:
        raise ListingError("the host's listing was cut short")
    total_text = values.get("total")
    total = int(total_text) * 1024 if total_text and total_text.isdigit() else None
    sizes: dict[tuple[str, str, str], int] = {}
    for line in sections["sizes"]:
        kib, _, path = line.partition("\t")
        where = _split_job_path(path)
        if where is not None and kib.isdigit() and where[2] in ("", "context"):
            sizes[where] = int(kib) * 1024
    mtimes: dict[tuple[str, str, str], int] = {}
    for line in sections["mtimes"]:
        stamp, _, path = line.partition(" ")
        where = _split_job_path(path)
        if where is not None and stamp.isdigit():
            mtimes[where] = int(stamp)
    exits: dict[tuple[str, str], int] = {}
    for line in sections["exits"]:
        path, _, code = line.partition(":")
        where = _split_job_path(path)
        if where is not None and where[2] == "exit" and re.fullmatch(r"-?[0-9]{1,9}", code):
            exits[where[:2]] = int(code)
    running: set[tuple[str, str]] = set()
    for line in sections["running"]:
        where = _split_job_path(line)
        if where is not None and not where[2]:
            running.add(where[:2])
    jobs: list[JobDir] = []
    for run, job, file in sorted(sizes):
        if file:
            continue
        stamps = [mtimes[(run, job, name)] for name in GC_JOB_FILES if (run, job, name) in mtimes]
        newest = max(stamps) if stamps else mtimes.get((run, job, ""), int(now))
        jobs.append(
            JobDir(
                run_id=run,
                job_key=job,
                running=(run, job) in running,
                ended=mtimes.get((run, job, "exit")),
                exit_code=exits.get((run, job)),
                newest=newest,
                bytes=sizes[(run, job, "")],
                context_bytes=sizes.get((run, job, "context")),
            )
        )
    return HostListing(int(now), values.get("storage", ""), total, tuple(jobs))


# --------------------------------------------------------------------------------------------
# Deciding


@dataclass(frozen=True)
class Decision:
    job: JobDir
    action: Action
    reason: str
    age: int
    """Seconds since the build ended (or the job was last written, without an exit code)."""

    @property
    def frees(self) -> int:
        """Bytes the action frees on the host."""
        if self.action is Action.REMOVE_JOB:
            return self.job.bytes
        if self.action is Action.REMOVE_CONTEXT:
            return self.job.context_bytes or 0
        return 0

    def target(self) -> GcTarget:
        return GcTarget(
            run_id=self.job.run_id,
            job_key=self.job.job_key,
            whole_job=self.action is Action.REMOVE_JOB,
            ended=self.job.ended,
            newest=self.job.newest,
        )


def format_age(seconds: float) -> str:
    """``3d``, ``5h``, ``12m``, ``40s``: the largest whole unit."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", DAY), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def decide(
    listing: HostListing, retention_days: int, *, grace: int = UNFINISHED_GRACE
) -> list[Decision]:
    """What to do with each job directory, in run then job order.

    * running (its lock held): kept, whatever its age;
    * older than the retention (since its build ended, or since it was last written when it has
      no exit code): the whole directory goes;
    * finished with its context copy still there: the context goes;
    * no exit code, not running, nothing written for ``grace``: its context goes (younger, it
      may be a job between its upload and its launch);
    * else kept, saying for how long.
    """
    retention = retention_days * DAY
    decisions: list[Decision] = []
    for job in listing.jobs:
        age = job.age(listing.now)
        state = job.state
        if state is JobDirState.RUNNING:
            action, reason = Action.KEEP, "running: its lock is held"
        elif age >= retention:
            what = "ended" if job.ended is not None else "last written"
            action = Action.REMOVE_JOB
            reason = f"{what} {format_age(age)} ago, past the {retention_days}-day retention"
        elif state is JobDirState.CONTEXT_LEFT:
            action, reason = Action.REMOVE_CONTEXT, "finished: its context copy is not needed"
        elif state is JobDirState.UNFINISHED and job.context_bytes is not None and age >= grace:
            action = Action.REMOVE_CONTEXT
            reason = f"no exit code and nothing written for {format_age(age)}: the build is gone"
        elif state is JobDirState.UNFINISHED and age < grace:
            action, reason = Action.KEEP, "no exit code yet: may be about to launch"
        elif state is JobDirState.UNFINISHED:
            action = Action.KEEP
            reason = (
                "no exit code and not running (never launched, or died with its host); "
                f"kept {retention_days}d"
            )
        else:
            action = Action.KEEP
            left = format_age(retention - age)
            reason = f"log and outcome kept {retention_days}d after the build ({left} left)"
        decisions.append(Decision(job, action, reason, age))
    return decisions


# --------------------------------------------------------------------------------------------
# Running it on hosts


class Result(StrEnum):
    """What the removal script did with one target."""

    REMOVED = "removed"
    RUNNING = "running"
    """Its lock was held when the removal came: left alone."""
    CHANGED = "changed"
    """It ended, restarted or was written to since the listing: left alone."""
    GONE = "gone"
    FAILED = "failed"
    UNKNOWN = "unknown"
    """The removal did not report on it (connection lost, timed out)."""


@dataclass(frozen=True)
class GcItem:
    decision: Decision
    result: Result | None = None
    """``None`` when nothing was to be done, or in a dry run."""

    def to_json(self) -> dict[str, Any]:
        job = self.decision.job
        return {
            "run": job.run_id,
            "job": job.job_key,
            "state": str(job.state),
            "bytes": job.bytes,
            "context_bytes": job.context_bytes,
            "age_seconds": self.decision.age,
            "exit_code": job.exit_code,
            "action": str(self.decision.action),
            "reason": self.decision.reason,
            "frees_bytes": self.decision.frees,
            "result": str(self.result) if self.result is not None else None,
        }


@dataclass(frozen=True)
class HostGc:
    """One host's job directories, what was (or would be) removed, and what that freed."""

    host: str
    retention_days: int
    dry_run: bool
    error: str | None = None
    """Why the host could not be listed, or its removal did not complete."""
    same_as: str | None = None
    """Another host entry reaching the same machine, user and home: its jobs are listed there."""
    total_before: int | None = None
    total_after: int | None = None
    items: tuple[GcItem, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.error is not None:
            object.__setattr__(self, "error", neutralise(self.error))

    @property
    def due_bytes(self) -> int:
        """What the removals free if they all go through."""
        return sum(item.decision.frees for item in self.items)

    @property
    def freed_bytes(self) -> int:
        return sum(item.decision.frees for item in self.items if item.result is Result.REMOVED)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "retention_days": self.retention_days,
            "dry_run": self.dry_run,
            "error": self.error,
            "same_as": self.same_as,
            "total_bytes_before": self.total_before,
            "total_bytes_after": self.total_after,
            "due_bytes": self.due_bytes,
            "freed_bytes": self.freed_bytes,
            "jobs": [item.to_json() for item in self.items],
        }


@dataclass(frozen=True)
class GcReport:
    hosts: tuple[HostGc, ...]
    dry_run: bool

    @property
    def ok(self) -> bool:
        """Every host listed, and every removal went through or was rightly left alone."""
        return all(h.error is None for h in self.hosts) and not any(
            item.result in (Result.FAILED, Result.UNKNOWN) for h in self.hosts for item in h.items
        )

    @property
    def due_bytes(self) -> int:
        return sum(h.due_bytes for h in self.hosts)

    @property
    def freed_bytes(self) -> int:
        return sum(h.freed_bytes for h in self.hosts)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "due_bytes": self.due_bytes,
            "freed_bytes": self.freed_bytes,
            "hosts": [h.to_json() for h in self.hosts],
        }


_RESULT_RE = re.compile(r"@@matui:result ([0-9]+) ([a-z]+)")
_RESULT_WORDS = frozenset(result.value for result in Result)


def parse_results(text: str, count: int) -> tuple[list[Result], int | None]:
    """The removal script's answer: a result per target (``UNKNOWN`` where it said nothing) and
    what ``~/.matui`` holds afterwards (bytes, ``None`` when it did not get that far)."""
    results = [Result.UNKNOWN] * count
    total: int | None = None
    for line in text.splitlines():
        if match := _RESULT_RE.fullmatch(line.strip()):
            index, word = int(match.group(1)), match.group(2)
            if index < count and word in _RESULT_WORDS:
                results[index] = Result(word)
        elif line.startswith("@@matui:total=") and (kib := line.split("=", 1)[1]).isdigit():
            total = int(kib) * 1024
    return results, total


def _stderr_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


async def _list(pool: SshPool, host: HostConfig) -> HostListing:
    result = await pool.run(host, gc_list_script(), timeout=LIST_TIMEOUT)
    if result.exit_status is None:
        raise ListingError("connection lost while listing the job directories")
    if not result.ok:
        raise ListingError(
            f"listing the job directories failed (exit {result.exit_status}): "
            f"{_stderr_line(result.err_text())}"
        )
    return parse_listing(result.out_text())


async def _remove(
    pool: SshPool, host: HostConfig, due: Sequence[Decision]
) -> tuple[list[Result], int | None, str | None]:
    script = gc_remove_script([decision.target() for decision in due])
    result = await pool.run(host, script, timeout=REMOVE_TIMEOUT)
    results, total = parse_results(result.out_text(), len(due))
    error = None
    if result.exit_status is None:
        error = "connection lost during the removal; run `matui gc` again to see what is left"
    elif total is None:
        error = f"the removal did not complete: {_stderr_line(result.err_text())}"
    return results, total, error


def _failure(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _host_gc(
    pool: SshPool, host: HostConfig, listing: HostListing, *, dry_run: bool
) -> HostGc:
    decisions = decide(listing, host.job_retention_days)
    due = [d for d in decisions if d.action is not Action.KEEP]
    base = HostGc(
        host=host.name,
        retention_days=host.job_retention_days,
        dry_run=dry_run,
        total_before=listing.total_bytes,
        items=tuple(GcItem(d) for d in decisions),
    )
    if dry_run or not due:
        return replace(base, total_after=listing.total_bytes)
    try:
        results, total, error = await _remove(pool, host, due)
    except Exception as exc:  # one host's trouble never stops the others' report
        results, total, error = [Result.UNKNOWN] * len(due), None, _failure(exc)
    by_target = {id(d): r for d, r in zip(due, results, strict=True)}
    items = tuple(GcItem(d, by_target.get(id(d))) for d in decisions)
    return replace(base, items=items, total_after=total, error=error)


async def collect_garbage(
    pool: SshPool, hosts: Iterable[HostConfig], *, dry_run: bool = False
) -> GcReport:
    """List every host's job directories at once, decide, and (unless ``dry_run``) remove what
    is due. Never raises for a host's trouble: it is that host's ``error``. Host entries that
    reach the same home directory on the same machine are handled once, by the first."""
    hosts = list(hosts)

    async def listing(host: HostConfig) -> HostListing | str:
        try:
            return await _list(pool, host)
        except Exception as exc:
            return _failure(exc)

    listings = await asyncio.gather(*(listing(host) for host in hosts))
    owner: dict[str, int] = {}  # storage -> index of the host entry that handles it
    work: list[tuple[int, HostConfig, HostListing]] = []
    done: dict[int, HostGc] = {}
    shared: dict[int, int] = {}  # index of a host entry -> index of its storage's owner
    for index, (host, found) in enumerate(zip(hosts, listings, strict=True)):
        if isinstance(found, str):
            done[index] = HostGc(host.name, host.job_retention_days, dry_run, error=found)
        elif found.storage and found.storage in owner:
            shared[index] = owner[found.storage]
        else:
            if found.storage:
                owner[found.storage] = index
            work.append((index, host, found))
    cleaned = await asyncio.gather(
        *(_host_gc(pool, host, found, dry_run=dry_run) for _, host, found in work)
    )
    for (index, _, _), gc in zip(work, cleaned, strict=True):
        done[index] = gc
    for index, first in shared.items():
        host, first_gc = hosts[index], done[first]
        done[index] = HostGc(
            host.name,
            host.job_retention_days,
            dry_run,
            same_as=first_gc.host,
            total_before=first_gc.total_before,
            total_after=first_gc.total_after,
        )
    return GcReport(tuple(done[i] for i in range(len(hosts))), dry_run)
