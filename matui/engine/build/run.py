"""Run a build plan: one detached remote build per arch, all at once, each followed live.

Data flows one way: SSH bytes -> the job's local log copy -> lines, decoded and made inert once
(:func:`~matui.engine.text.decode_lines`) and fed to the progress parser -> one event queue that
every front end reads with :meth:`BuildRun.events`. Output is read in chunks and handed on as one
:class:`LinesEvent` per chunk, never one event per line.

The events own the state a front end shows: a job's current step (:class:`StepChange`, the
parser's), its state and a one-line detail (:class:`StateEvent`), notes, the run's flags. Every
string in them is inert already.

Memory stays bounded whatever the consumer does (k9s's log model): at most
:attr:`BuildRun.max_queued_lines` lines wait in the queue. When the consumer lags, the queue
holds a cursor instead of more lines ("lines N..M of job J are new", their bytes in the local log
copy, which has them already); :meth:`BuildRun.events` reads them back through the same decoder
when the consumer gets there, so it still sees every line once, in order. A resumed run's history
is such a cursor too: it is replayed as ordinary line events before the live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from matui.engine import shell
from matui.engine.arch import Platform
from matui.engine.build.context import stream_context
from matui.engine.build.failure import (
    FailureRecord,
    HostFacts,
    JobFacts,
    failure_record,
    log_lines,
)
from matui.engine.build.progress import STATUS_LOST_NOTE, ProgressParser, parse_metadata
from matui.engine.build.pushretry import (
    PUSH_DELAY,
    PUSH_DELAY_CAP,
    PUSH_RETRIES,
    PushAttempt,
    PushTarget,
    attempt_outcome,
    push_delay,
    push_target,
)
from matui.engine.build.retry import (
    ATTEMPT_MARKER,
    HostMove,
    RetryChoice,
    RetryError,
    RetryOptions,
    RetrySuggestion,
    attempt_marker,
    check_retry_host,
    move_target,
    retry_choices,
    retry_hosts,
)
from matui.engine.build.secrets import private_inputs, read_secrets
from matui.engine.build.slots import HostSlots
from matui.engine.build.steps import StepClock, StepTable, elsewhere, step_table
from matui.engine.builders import BY_DIGEST, pushed_line
from matui.engine.flags import (
    Flag,
    FlagKind,
    RegistryReader,
    Severity,
    cancelled_push_flags,
    postbuild_flags,
)
from matui.engine.flags.driver import job_route
from matui.engine.history import job_inputs
from matui.engine.plan import BuildJob, BuildPlan
from matui.engine.records import JobState, RunRecord, RunState, Verdict, VerdictKind
from matui.engine.registry import RegistryError
from matui.engine.ssh import HostUnreachable, SessionsRefused
from matui.engine.text import decode_block, decode_lines, neutralise

if TYPE_CHECKING:
    from matui.engine.config import Config
    from matui.engine.probe import HostProbe
    from matui.engine.ssh import SshPool

CHUNK = 64 * 1024

MAX_QUEUED_LINES = 50_000
"""Lines that may wait in a run's event queue (about 5 MB of build output); past it, the queue
holds cursors into the local log copies instead."""

MAX_QUEUED_CHARS = 16 << 20
"""Characters that may wait in the queue, for logs of very long lines."""

TAIL_LINES = 40

CONSUMER_PATIENCE = 0.05
"""Seconds a follow waits for a lagging consumer to halve the queue before it reads on (and the
consumer's lines become a cursor into the local copy)."""

OWNER_PATIENCE = 30.0
"""Seconds a read-only follower waits for the run's owner's next push retry beyond the longest
wait before one (:data:`~matui.engine.build.pushretry.PUSH_DELAY_CAP`, jittered)."""
"""Last lines of a job's log kept at hand, for the error of a buildx that dies unexplained."""


@dataclass(frozen=True)
class LinesEvent:
    """New lines of a job's log, inert, in order; ``first`` is the number (0-based) of the first
    one in the job's log, so a consumer can tell that nothing is missing or repeated."""

    job: str
    first: int
    lines: list[str]
    chars: int = field(default=-1, compare=False, repr=False)
    """Characters of the lines (separators not counted), when the engine knew them from the
    decoded block; -1: count them."""

    @property
    def size(self) -> int:
        return self.chars if self.chars >= 0 else sum(map(len, self.lines))


@dataclass(frozen=True)
class StepChange:
    """The job's current step changed: the progress parser's
    :attr:`~matui.engine.build.progress.ProgressParser.current_step` (None: none running)."""

    job: str
    step: str | None


@dataclass(frozen=True)
class StateEvent:
    """The job's state changed; ``detail`` is one line about it (pid and host, the digest of a
    success, the failing step, the error), inert."""

    job: str
    state: JobState
    detail: str = ""
    failure: FailureRecord | None = None
    """Why a failed or lost job failed (the card a front end shows); None otherwise."""


@dataclass(frozen=True)
class NoteEvent:
    job: str
    text: str


@dataclass(frozen=True)
class FlagsEvent:
    """The run's open flags changed (the whole list, not a delta)."""

    flags: list[Flag]


@dataclass(frozen=True)
class RunFinished:
    """Every job of the run has ended and the post-build checks are done."""


Event = LinesEvent | StepChange | StateEvent | NoteEvent | FlagsEvent | RunFinished


@dataclass
class JobStatus:
    job: BuildJob
    state: JobState = JobState.QUEUED
    exit_code: int | None = None
    digest: str | None = None
    failing_step: str | None = None
    error: str | None = None
    current_step: str | None = None
    lines: int = 0
    offset: int = 0
    pid: int | None = None
    started: float | None = None
    finished: float | None = None
    notes: list[str] = field(default_factory=list)
    arch_evidence: list[str] = field(default_factory=list)
    host_seconds: float | None = None
    """The build's wall time by the host's own clock (its ``started`` and ``ended`` stamps),
    once it has ended: true whatever matui did meanwhile (quit, reattached, lost the link)."""
    failure: FailureRecord | None = None
    """Why it failed or was lost (step, exit code, that step's lines, cause), computed once."""
    push_attempts: list[PushAttempt] = field(default_factory=list)
    """Push-only retries of its built image after the registry rejected the build's own push
    (:mod:`~matui.engine.build.pushretry`), in order; kept in the record."""
    push_target: PushTarget | None = None
    """The built image the runner is pushing again; None when no push retry is under way."""
    attempt: int = 1
    """Which attempt of the job this is: 1, then one more per retry (its log holds them all,
    each after the first opened by an attempt marker line)."""
    log_base: int = 0
    """Bytes of the local log copy before the current host's build.log begins: 0 unless a
    retry moved the job to another host (whose log starts afresh)."""
    retry_options: RetryOptions | None = None
    """What the current attempt's retry asked for (None: the first attempt)."""
    tried_hosts: list[str] = field(default_factory=list)
    """The hosts the job was sent to, in order: its planned one, then each a retry or a move
    chose (a move never goes back to one of them)."""
    moves: list[HostMove] = field(default_factory=list)
    """Its moves to another host after infrastructure failures, in order."""
    host_facts: HostFacts | None = None
    """Its host as probed when the run started (kept in the record: a resumed run has them)."""
    steps: StepClock = field(default_factory=StepClock)
    """When each step of the current attempt started and ended, as seen live (the timeline of
    ``matui compare``)."""
    pushed_as: str | None = None
    """``"by digest"`` (its builder pushes by digest, no per-arch tag moves) or the per-arch
    tag, decided at launch (:func:`~matui.engine.flags.driver.job_route`); None: not launched."""
    builder: str | None = None
    builder_node: str | None = None
    """The host's buildx builder the job goes through and the node that built it (from the
    build's metadata); None: the engine's own builder, or not known yet."""

    @property
    def pushed_line(self) -> str:
        """``pushed by digest; builder kube/node builder-arm64``; empty when the job pushes its
        per-arch tag through the engine's own builder (nothing to say)."""
        return pushed_line(self.pushed_as, self.builder, self.builder_node)

    @property
    def outcome_line(self) -> str:
        """The job's outcome in one line for the front ends: its digest (and how it was
        pushed, when there is more to say than its per-arch tag) or its error."""
        if self.digest:
            return self.digest + (f" ({line})" if (line := self.pushed_line) else "")
        return self.error or ""

    @property
    def seconds(self) -> float | None:
        if self.host_seconds is not None:
            return self.host_seconds
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def to_json(self) -> dict[str, Any]:
        return {
            **self.job.to_json(),
            "key": self.job.key,
            "state": str(self.state),
            "exit_code": self.exit_code,
            "digest": self.digest,
            "failing_step": self.failing_step,
            "error": self.error,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "lines": self.lines,
            "notes": self.notes,
            "arch_evidence": self.arch_evidence,
            "failure": None if self.failure is None else self.failure.to_json(),
            "push_attempts": [attempt.to_json() for attempt in self.push_attempts],
            "host_facts": None if self.host_facts is None else self.host_facts.to_json(),
            "pid": self.pid,
            "bytes": self.offset,
            "attempt": self.attempt,
            "log_base": self.log_base,
            "retry_options": None if self.retry_options is None else self.retry_options.to_json(),
            "tried_hosts": list(self.tried_hosts),
            "moves": [move.to_json() for move in self.moves],
            "steps": self.steps.to_json(),
            "pushed_as": self.pushed_as,
            "builder": self.builder,
            "builder_node": self.builder_node,
        }


@dataclass
class _JobLog:
    """A job's local log copy as the runner writes it, and how far its lines were handed on."""

    path: Path
    parser: ProgressParser = field(default_factory=ProgressParser)
    partial: bytes = b""
    """Bytes of an incomplete last line: in the file already, not handed on yet."""
    complete: int = 0
    """Bytes of the file up to the end of the last line handed on."""
    file: IO[bytes] | None = None
    """Open for appending while the job is followed."""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    """The last lines handed on: what buildx said last, when it dies without a step error."""

    def take(self, chunk: bytes) -> bytes | None:
        """The complete lines ``chunk`` ends (joined by \\n, without the last one), or None when
        it ends none; what follows the last line break waits in :attr:`partial`."""
        data = self.partial + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial = data
            return None
        self.partial = data[cut + 1 :]
        return data[:cut]


@dataclass
class _Backlog:
    """Lines ``first .. first + count - 1`` of a job, at bytes ``start .. end`` of its local log
    copy: queued instead of the lines while the consumer lags, and for a resumed run's history."""

    job: str
    first: int
    start: int
    step_before: str | None
    """The job's current step before these lines."""
    count: int = 0
    end: int = 0
    step: str | None = None
    """The job's current step after them."""


class _Lost(Exception):
    """The connection went away; what the host did is unknown until we get back to it."""


class ImageBusy(RuntimeError):
    """Another job (another matui, another operator) holds this image's lock for this arch on
    the host: a second build would push the same per-arch tag. The message names the holder."""


class BuildRun:
    """A run in progress. Start it, read :meth:`events`, await :meth:`wait`."""

    def __init__(
        self,
        plan: BuildPlan,
        config: Config,
        pool: SshPool,
        record: RunRecord,
        probes: list[HostProbe] | None = None,
        *,
        reconnect_attempts: int = 6,
        reconnect_delay: float = 1.0,
        reconnect_cap: float = 15.0,
        registry: RegistryReader | None = None,
        max_queued_lines: int = MAX_QUEUED_LINES,
        max_queued_chars: int = MAX_QUEUED_CHARS,
    ) -> None:
        self.plan = plan
        self.config = config
        self.pool = pool
        self.record = record
        self.probes = probes or []
        self.status = {job.key: JobStatus(job) for job in plan.jobs}
        for status in self.status.values():
            status.host_facts = self._host_facts(status.job)
            status.tried_hosts = [status.job.host]
        self._unreachable: set[str] = set()
        """Jobs whose current attempt failed reaching their host (a connection error)."""
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay = reconnect_delay
        self.reconnect_cap = reconnect_cap
        self.registry = registry
        self._flags: list[Flag] = []
        self.max_queued_lines = max_queued_lines
        self.max_queued_chars = max_queued_chars
        self._logs = {key: _JobLog(record.log_path(key)) for key in self.status}
        self._queue: deque[Event | _Backlog] = deque()
        self._queued_lines = 0
        self._queued_chars = 0
        self._open_backlogs: dict[str, _Backlog] = {}
        self._drained = asyncio.Event()
        """Set when the consumer has read the queue down to half its bound."""
        self._consumer_stalled = False
        """The consumer let a wait for it run out: the follow no longer waits, until it reads."""
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        """Jobs the operator asked to cancel (a request: the host says what became of it)."""
        self._cancel_answers: dict[str, shell.CancelAnswer] = {}
        self.push_retries = PUSH_RETRIES
        """Push-only retries of a built image the registry rejected, before its job fails."""
        self.push_delay = PUSH_DELAY
        self.push_delay_cap = PUSH_DELAY_CAP
        self.follow_only = False
        """This matui follows another's run read-only (a copy of its record): it makes no push
        retry of its own, it follows those the run's owner makes."""
        self._done = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self.slots: HostSlots | None = None
        """Build slots per host shared with the other runs of a release (``max_jobs``); None:
        every job starts at once."""
        self.secrets: dict[str, bytes] | None = None
        """The image's BuildKit secrets, read on this machine at the first launch (or by
        :func:`~matui.engine.build.start.start_build` before anything starts); kept in memory
        only, sent to each job's host over SSH."""

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def flags(self) -> list[Flag]:
        """The run's open flags (pre-flight, then post-build), their host text inert."""
        return self._flags

    @flags.setter
    def flags(self, flags: Iterable[Flag]) -> None:
        self._flags = [_inert_flag(flag) for flag in flags]

    # --- public API -------------------------------------------------------------------------

    def start(self) -> None:
        for key in self.status:
            self._tasks[key] = asyncio.create_task(self._run_job(key), name=f"job-{key}")
        self._supervisor = asyncio.create_task(self._supervise())

    @classmethod
    def resume(
        cls,
        record: RunRecord,
        config: Config,
        pool: SshPool,
        *,
        registry: RegistryReader | None = None,
    ) -> BuildRun:
        """Pick up a run that an earlier matui left (quit, crash, lost laptop) from its record.

        Every job goes on from the exact byte its local log copy ends at: nothing read twice,
        nothing skipped. The copy is read once here, through the same decoder and progress
        parser as live output, so the current step, a failing step and the line count are as if
        the run had never been left. Jobs that had not launched are launched (the host lock makes
        that an attach if they had in fact started). Call :meth:`start_resumed` to begin: it
        replays each job's stored lines as events before the live ones.
        """

        image = config.image(record.image)
        jobs = [
            BuildJob(Platform.parse(j.platform), j.host, j.emulated, j.arch_tag, j.ref)
            for j in record.jobs
        ]
        plan = BuildPlan(image, tuple(record.tags), tuple(jobs))
        # The hosts as the run's pre-flight probed them: a job failing after the resume is
        # explained with the same facts as before it.
        run = cls(plan, config, pool, record, list(record.hosts), registry=registry)
        run.flags = list(record.flags)
        for saved in record.jobs:
            status = run.status[saved.key]
            if saved.host_facts is not None:
                status.host_facts = HostFacts.from_json(saved.host_facts)
            if saved.failure is not None and saved.state in (JobState.FAILED, JobState.LOST):
                # The card of a job that had failed before the restart, as it was computed.
                status.failure = FailureRecord.from_json(saved.failure)
            status.state = saved.state
            status.pid = saved.pid
            status.exit_code = saved.exit_code
            status.digest = saved.digest
            # Records written before host text was made inert in the engine may hold it raw.
            status.failing_step = _inert(saved.failing_step)
            status.error = _inert(saved.error)
            status.notes = [neutralise(note) for note in saved.notes]
            status.arch_evidence = list(saved.arch_evidence)
            status.push_attempts = [PushAttempt.from_json(a) for a in saved.push_attempts]
            status.steps = StepClock(saved.steps)  # times seen before; the replay adds none
            status.attempt = saved.attempt
            status.log_base = saved.log_base
            status.pushed_as = saved.pushed_as
            status.builder, status.builder_node = saved.builder, saved.builder_node
            if saved.retry_options is not None:
                status.retry_options = RetryOptions.from_json(saved.retry_options)
            status.tried_hosts = list(saved.tried_hosts) or [saved.host]
            status.moves = [HostMove.from_json(move) for move in saved.moves]
            status.started = time.time() - (saved.seconds or 0.0)
            if saved.state.finished:
                status.host_seconds = saved.seconds  # what it took; it no longer grows
            run._read_stored_log(status)
        return run

    def _read_stored_log(self, status: JobStatus) -> None:
        log = self._logs[status.job.key]
        try:
            with log.path.open("rb") as stored:
                while chunk := stored.read(CHUNK):
                    status.offset += len(chunk)
                    block = log.take(chunk)
                    if block is not None:
                        self._decode(status, log, block)
        except FileNotFoundError:
            return
        if status.state.finished and log.partial:
            # The job's last line, which had no line break when the job ended.
            self._decode(status, log, log.partial)
            log.partial = b""
        log.complete = status.offset - len(log.partial)

    def start_resumed(self) -> None:
        self._queue_history()
        for key, status in self.status.items():
            if status.state.finished:
                continue
            # Never launched as far as we know: launch, which attaches if it had started.
            job = self._run_job(key) if status.pid is None else self._reattach_job(key)
            self._tasks[key] = asyncio.create_task(job, name=f"job-{key}-resumed")
        self._supervisor = asyncio.create_task(self._supervise())

    def replay(self) -> None:
        """A finished run opened again (a front end after a restart): its jobs' stored lines as
        events, as :meth:`start_resumed` replays them, with nothing launched, attached or
        checked again. :meth:`retry` builds an arch of it anew."""
        self._queue_history()

    def _queue_history(self) -> None:
        """Each job's stored lines, as one cursor: :meth:`events` replays them as ordinary line
        events (read from the copy as they are consumed) before anything live."""
        for key, status in self.status.items():
            if status.lines:
                log = self._logs[key]
                self._queue.append(
                    _Backlog(key, 0, 0, None, status.lines, log.complete, status.current_step)
                )
                self._wake.set()

    async def events(self, *, until_finished: bool = True) -> AsyncIterator[Event]:
        """Every event of the run, in order, ending with :class:`RunFinished`.

        A front end that lets the operator retry an arch reads on with ``until_finished=False``.
        Lines the queue kept as a cursor (the consumer lagged, or a resumed run's history) are
        read back from the local log copy here, in batches, as ordinary :class:`LinesEvent`.
        One consumer per run.
        """
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            item = self._queue.popleft()
            if isinstance(item, _Backlog):
                if self._open_backlogs.get(item.job) is item:
                    del self._open_backlogs[item.job]
                for event in self._read_backlog(item):
                    yield event
                continue
            if isinstance(item, LinesEvent):
                self._queued_lines -= len(item.lines)
                self._queued_chars -= item.size
                if self._queued_lines <= self.max_queued_lines // 2:
                    self._drained.set()
            self._consumer_stalled = False
            yield item
            if until_finished and isinstance(item, RunFinished):
                return

    @property
    def queued_lines(self) -> int:
        """Lines held in the event queue (not counting those it holds as cursors)."""
        return self._queued_lines

    async def wait(self) -> dict[str, JobStatus]:
        await self._done.wait()
        return self.status

    async def cancel(self, key: str | None = None) -> None:
        """Ask the host to stop one job (or all), by process group.

        A cancel is a request; the job's outcome is what its host says. It ends ``cancelled``
        only when the host stopped the build (its cancel answer and exit file say so); a build
        that had finished first ends ``succeeded`` with its digest and a note that the cancel
        came too late; a cancel that cannot be delivered is retried within the reconnect budget,
        then the job ends ``lost`` (it may still be running on its host). Returns once the
        request was answered or given up."""
        keys = [key] if key else list(self.status)
        await asyncio.gather(*(self._cancel_one(k) for k in keys))

    async def cancel_detached(
        self, keys: Iterable[str] | None = None
    ) -> dict[str, shell.CancelAnswer | None]:
        """Stop jobs of a run that no matui follows any more (``matui cancel``), from its
        resumed record, without :meth:`start_resumed`: nothing is launched.

        Each job asked for (every job by default) that had launched is followed again, so its
        log copy and record end as its host says; its host is asked to stop it (:meth:`cancel`
        semantics: a request). Returns once each has ended — ``cancelled`` when its host
        stopped it, ``succeeded`` or ``failed`` when it had ended first — or its cancel could
        not be delivered (``lost``: it may still run), or its host answered that the build
        survived SIGKILL or did not say (still ``running``). A ``lost`` job (it may still run)
        is asked again, and stays ``lost`` unless its host says how it ended. A job that had
        ended otherwise, or that the record says never launched (no pid: no host has it), is
        not asked (answer None). The run's record ends when no job runs any more. Returns
        each job's host answer."""
        wanted = list(keys) if keys is not None else list(self.status)
        answers: dict[str, shell.CancelAnswer | None] = {}

        async def one(key: str) -> None:
            status = self.status[key]
            answers[key] = None
            lost = status.state is JobState.LOST
            if (status.state.finished and not lost) or status.pid is None:
                return
            error = status.error
            if lost:  # asked again: running as far as we know, until its host says
                self._set_state(status, JobState.RUNNING, f"asking {status.job.host} again")
            task = asyncio.create_task(self._reattach_job(key), name=f"job-{key}-cancel")
            self._tasks[key] = task
            await self._cancel_one(key)
            answers[key] = answer = self._cancel_answers.get(key)
            if answer is not None and answer.word in ("stopped", "finished"):
                await task  # the host wrote the exit file: the follow reads how it ended
                return
            task.cancel()  # undelivered (now lost), or the host says it still runs
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if lost and not status.state.finished:
                status.error = error
                self._set_state(status, JobState.LOST, error or "")

        await asyncio.gather(*(one(key) for key in wanted))
        if not self.running:
            states = {status.state for status in self.status.values()}
            if JobState.CANCELLED in states:
                state = RunState.CANCELLED
            else:
                state = RunState.SUCCEEDED if self.succeeded else RunState.FAILED
            self.record.update(finished=time.time(), state=state)
        return answers

    def retry(
        self, key: str, *, no_cache: bool = False, pull: bool = False, host: str | None = None
    ) -> None:
        """Build one arch again in this run; the other arches keep their digests.

        ``no_cache`` and ``pull`` add buildx's ``--no-cache`` and ``--pull`` to this attempt;
        ``host`` moves the job to another configured host that can build its platform
        (:func:`~matui.engine.build.retry.check_retry_host` says why not, as a
        :class:`~matui.engine.build.retry.RetryError`): the context goes there, the record's
        job names it, and the old host's job directory is left for ``matui gc``.

        The new attempt starts with an attempt marker line in the job's log, which keeps every
        attempt in order: on the same host the host's log keeps growing (following goes on from
        the byte already read); on another host that host's log starts afresh after the bytes
        the local copy holds already (:attr:`JobStatus.log_base`).
        """
        status = self.status[key]
        if not status.state.finished:
            raise RuntimeError(f"{status.job.arch} is still {status.state}; cancel it first")
        if host is not None:
            target = check_retry_host(self.config.hosts, status.job, host)
            if status.state is JobState.LOST:
                # Lost is not ended: its build may still run there and push the same tag later.
                self._note(
                    key,
                    f"{status.job.host} lost this job: its build may still be running there "
                    f"and push {status.job.ref} after this attempt does (`matui gc` on that "
                    "host shows it)",
                )
            status.job = replace(status.job, host=target.name, emulated=target.emulated)
            self.plan = replace(
                self.plan,
                jobs=tuple(status.job if j.key == key else j for j in self.plan.jobs),
            )
            status.log_base = status.offset
            if target.name not in status.tried_hosts:
                status.tried_hosts.append(target.name)
        self._unreachable.discard(key)
        status.attempt += 1
        status.retry_options = RetryOptions(no_cache, pull, host)
        self._cancelled.discard(key)
        self._cancel_answers.pop(key, None)
        status.host_seconds = None
        status.state = JobState.QUEUED
        status.exit_code = status.digest = status.failing_step = status.error = None
        status.pid = status.finished = None
        status.notes.clear()
        status.push_attempts, status.push_target = [], None
        status.steps = StepClock()
        self._logs[key].parser = ProgressParser()  # the new attempt's log starts afresh
        self.record.update(state=RunState.RUNNING)
        self._done.clear()
        self.record.update_job(key, **status.to_json())
        task = asyncio.create_task(self._run_job(key), name=f"job-{key}-retry")
        self._tasks[key] = task
        self._emit(StateEvent(key, JobState.QUEUED, self.attempt_line(key)))
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._supervise())

    def attempt_line(self, key: str) -> str:
        """What the job's current attempt is, as its log's marker line says it (without the
        marker's prefix): ``attempt 2: retry --no-cache on host arm-2``."""
        status = self.status[key]
        marker = attempt_marker(
            status.attempt, status.retry_options or RetryOptions(), status.job.host
        )
        return marker.removeprefix("@@matui ")

    def retry_choices(self, key: str) -> tuple[RetrySuggestion, list[RetryChoice]]:
        """How the job could be retried (the same host, each other host that can build its
        platform, without cache, with a fresh base), the one that fits its failure's cause
        first, with the advice: what both front ends offer."""
        status = self.status[key]
        failure = status.failure
        return retry_choices(
            status.job,
            None if failure is None else failure.cause,
            retry_worth=True if failure is None else failure.retry,
            other_hosts=retry_hosts(self.config.hosts, status.job),
        )

    @property
    def queued_events(self) -> int:
        """Items waiting for :meth:`events` to hand them on (a cursor counts as one)."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        return any(not s.state.finished for s in self.status.values())

    @property
    def succeeded(self) -> bool:
        return all(s.state is JobState.SUCCEEDED for s in self.status.values())

    def verdict(self) -> Verdict:
        """What the run amounts to (:meth:`RunRecord.verdict`), and still running while the
        post-build checks read the registry: a run whose jobs ended is not "built" before its
        checks had their say."""
        supervising = self._supervisor is not None and not self._done.is_set()
        if supervising and not self.running:
            return Verdict(VerdictKind.RUNNING, "checking what the registry holds")
        return self.record.verdict()

    # --- internals ----------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        # Lines that come after this event must not join a cursor queued before it.
        job = getattr(event, "job", None)
        if job is None:
            self._open_backlogs.clear()
        else:
            self._open_backlogs.pop(job, None)
        self._queue.append(event)
        self._wake.set()

    def _note(self, key: str, text: str) -> None:
        self._emit(NoteEvent(key, neutralise(text)))

    def _queue_lines(
        self,
        key: str,
        first: int,
        lines: list[str],
        start: int,
        end: int,
        step_before: str | None,
        chars: int,
    ) -> None:
        """Queue new lines (bytes ``start .. end`` of the local copy) and the step they lead to:
        as an event while the queue has room, else as (part of) a cursor."""
        step = self.status[key].current_step
        backlog = self._open_backlogs.get(key)
        if backlog is None:
            if (
                self._queued_lines + len(lines) <= self.max_queued_lines
                and self._queued_chars + chars <= self.max_queued_chars
            ):
                self._queued_lines += len(lines)
                self._queued_chars += chars
                self._emit(LinesEvent(key, first, lines, chars))
                if step != step_before:
                    self._emit(StepChange(key, step))
                return
            backlog = _Backlog(key, first, start, step_before)
            self._queue.append(backlog)
            self._open_backlogs[key] = backlog
        backlog.count += len(lines)
        backlog.end = end
        backlog.step = step
        self._wake.set()

    def _read_backlog(self, backlog: _Backlog) -> Iterator[Event]:
        """A cursor's lines, read back from the job's local log copy through the one decoder,
        in batches of at most :data:`CHUNK` bytes; then the step they led to."""
        key, first, last = backlog.job, backlog.first, backlog.first + backlog.count
        problem = "it is shorter than recorded"
        try:
            with self._logs[key].path.open("rb") as stored:
                stored.seek(backlog.start)
                left = backlog.end - backlog.start
                carry = b""
                while left > 0 and first < last:
                    piece = stored.read(min(CHUNK, left))
                    if not piece:
                        break
                    left -= len(piece)
                    data = carry + piece
                    if left > 0:
                        cut = data.rfind(b"\n")
                        if cut < 0:
                            carry = data
                            continue
                        block, carry = data[:cut], data[cut + 1 :]
                    else:
                        block = data[:-1] if data.endswith(b"\n") else data
                    lines = decode_lines(block)[: last - first]
                    yield LinesEvent(key, first, lines)
                    first += len(lines)
        except OSError as exc:
            problem = str(exc)
        if first < last:
            yield NoteEvent(
                key,
                neutralise(
                    f"lines {first + 1}-{last} of the log could not be read back from "
                    f"{self._logs[key].path} ({problem})"
                ),
            )
        if backlog.step != backlog.step_before:
            yield StepChange(key, backlog.step)

    def _set_state(self, status: JobStatus, state: JobState, detail: str = "") -> None:
        """Every state change goes through here: the job's host-derived text (an error carrying
        remote stderr, a failing step's name) is made inert before it is recorded or shown."""
        status.error = _inert(status.error)
        status.failing_step = _inert(status.failing_step)
        detail = neutralise(detail)
        status.state = state
        if state.finished:
            status.finished = time.time()
        if state in (JobState.FAILED, JobState.LOST):
            status.failure = self._failure(status, state)
        elif not state.finished:
            status.failure = None  # a retry or a reattach: the job is going again
        self.record.update_job(status.job.key, **status.to_json())
        self._emit(StateEvent(status.job.key, state, detail, status.failure))

    def _host_facts(self, job: BuildJob) -> HostFacts | None:
        """``job``'s host as the run's probes found it; None when the run has no probes."""
        probe = next((p for p in self.probes if p.name == job.host), None)
        if probe is None:
            return None
        return HostFacts.of(job, probe)

    def _failure(self, status: JobStatus, state: JobState) -> FailureRecord:
        """The failed job explained, from its log copy (the runner's parser is asked, not fed
        again) and what matui knows of its host."""
        job = status.job
        probe = next((p for p in self.probes if p.name == job.host), None)
        facts = JobFacts(
            state=str(state),
            declared_arch=None if probe is None else probe.arch,
            native_arch=None if probe is None else probe.native_arch,
            emulated=job.emulated,
            engine_gone=(status.error or "").startswith(f"the docker engine on {job.host} went")
            or job.key in self._unreachable,
        )
        log = self._logs[job.key]
        record = failure_record(
            log_lines(log.path),
            facts,
            parser=log.parser,
            signatures=self.config.failure_signatures,
        )
        host = status.host_facts
        if host is None or host.host != job.host:  # never probed, or retried elsewhere
            host = self._host_facts(job)
        # After push retries the error says both pushes (the build's, then matui's); a job that
        # failed before buildx said anything (its host unreachable) has only its own error.
        if status.push_attempts or (record.error is None and status.error):
            record = replace(record, error=status.error)
        return replace(
            record,
            host=host,
            buildx_exit=status.exit_code,
            moves=tuple(status.moves),
            tried_hosts=tuple(status.tried_hosts),
        )

    def _move_on(self, key: str) -> None:
        """A job that failed for its host's sake (unreachable, engine gone, disk full, lost:
        :data:`~matui.engine.build.retry.MOVING_CAUSES`) moves to another healthy host that may
        build its platform (:func:`~matui.engine.build.retry.move_target`), never back to one
        it was on, through :meth:`retry`. With none left it stays failed, and its card names
        the hosts tried. A cancelled job, and a run followed read-only (its owner moves it),
        never move."""
        status = self.status[key]
        failure = status.failure
        if (
            failure is None
            or self.follow_only
            or key in self._cancelled
            or status.state not in (JobState.FAILED, JobState.LOST)
        ):
            return
        running: dict[str, int] = {}
        for other in self.status.values():
            if not other.state.finished:
                running[other.job.host] = running.get(other.job.host, 0) + 1
        move = move_target(
            failure.cause,
            status.job,
            self.config.hosts,
            self.probes,
            status.tried_hosts,
            running=running,
        )
        if move is None:
            return
        move = replace(move, detail=_move_detail(status, key in self._unreachable))
        line = move.line(str(status.job.platform))
        self._note(key, line)
        options = status.retry_options or RetryOptions()
        status.moves.append(move)
        try:
            self.retry(key, no_cache=options.no_cache, pull=options.pull, host=move.target)
        except RetryError as exc:  # the config changed under a resumed run: it stays failed
            status.moves.pop()
            self._note(key, f"not moved to {move.target}: {exc}")
            return
        status.notes.append(neutralise(line))
        self.record.update_job(key, notes=list(status.notes))

    async def _supervise(self) -> None:
        while True:
            tasks = dict(self._tasks)
            results = await asyncio.gather(*tasks.values(), return_exceptions=True)
            for key, result in zip(tasks, results, strict=True):
                status = self.status[key]
                if isinstance(result, BaseException) and not status.state.finished:
                    # A bug of ours must still end the job visibly, never leave it "running".
                    status.error = f"internal error: {type(result).__name__}: {result}"
                    self._set_state(status, JobState.FAILED, status.error)
            if all(task.done() for task in self._tasks.values()):
                break  # else a retry started meanwhile: wait for it too
        await self._fill_elsewhere()
        await self._postbuild_checks()
        self.record.update(
            finished=time.time(),
            state=RunState.SUCCEEDED if self.succeeded else RunState.FAILED,
        )
        self._done.set()
        self._emit(RunFinished())

    async def _fill_elsewhere(self) -> None:
        """Each failure record gets the seconds its step took on the arches that passed (the
        card's "how long the same step took elsewhere"), read from their logs once all ended:
        in a worker thread, as a big log takes a second or more to read."""
        passed = [s for s in self.status.values() if s.state is JobState.SUCCEEDED]
        failed = [s for s in self.status.values() if s.failure is not None and s.failure.step]
        if not passed or not failed:
            return
        paths = [(s.job, self._logs[s.job.key].path, s.steps.to_json()) for s in passed]

        def read() -> list[tuple[BuildJob, StepTable]]:
            return [
                (job, step_table(log_lines(path), observed=seen, job_state="succeeded"))
                for job, path, seen in paths
            ]

        tables = await asyncio.to_thread(read)
        for status in failed:
            assert status.failure is not None and status.failure.step is not None
            seconds = elsewhere(status.failure.step, status.job, tables)
            if seconds != status.failure.elsewhere:
                status.failure = replace(status.failure, elsewhere=seconds)
                self.record.update_job(status.job.key, failure=status.failure.to_json())

    async def _postbuild_checks(self) -> None:
        """What the registry now holds for each built digest: its config arch, the per-arch tag,
        plus the arch evidence in the logs. Errors here keep the index from being pushed."""
        if self.registry is None:
            return

        cancelled = [
            (job.arch_tag, job.arch_tag_before or None)
            for job in self.record.jobs
            if job.key in self._cancelled
            and self.status[job.key].state is not JobState.SUCCEEDED
            and not job.by_digest  # no per-arch tag of its own to move
        ]
        try:
            found = await postbuild_flags(
                self.plan.image.repository(), self.record.built_images(), self.registry
            )
            if cancelled:
                found += await cancelled_push_flags(
                    self.plan.image.repository(), cancelled, self.registry
                )
        except RegistryError as exc:
            found = [
                Flag(
                    FlagKind.TAG_OVERWRITE,
                    Severity.ERROR,
                    self.plan.repository,
                    f"could not check what the registry holds after the build ({exc}); "
                    "retry when the registry answers",
                )
            ]
        # A retry replaces the previous post-build verdicts rather than piling them up.
        before = [f.to_json() for f in self.flags]
        kept = [f for f in self.flags if f.evidence.get("phase") != "postbuild"]
        for flag in found:
            flag.evidence.setdefault("phase", "postbuild")
        self.flags = kept + found
        if [f.to_json() for f in self.flags] != before:
            self.record.update(flags=list(self.flags))
            self._emit(FlagsEvent(list(self.flags)))

    async def _cancel_one(self, key: str) -> None:
        status = self.status[key]
        if status.state.finished:
            return
        self._cancelled.add(key)
        host = self.config.host(status.job.host)
        task = self._tasks.get(key)
        if status.pid is None and status.state is not JobState.RUNNING:
            if task is not None:
                task.cancel()  # not launched yet: nothing runs on the host
            return
        if status.push_target is not None and not (
            status.push_attempts and status.push_attempts[-1].open
        ):
            return  # waiting for a push retry: nothing runs on the host; the wait sees it
        attempts = 0
        while not status.state.finished:
            try:
                result = await self.pool.run(host, shell.cancel_script(self.id, key))
                if result.exit_status is None:
                    raise _Lost("the connection went away while the cancel ran")
            except Exception as exc:
                attempts += 1
                problem = str(exc) or type(exc).__name__
                if attempts > self.reconnect_attempts:
                    self._cancel_undelivered(status, host.name, problem, attempts - 1)
                    return
                if attempts == 1:
                    self._note(key, f"the cancel did not reach {host.name} ({problem}); retrying")
                await asyncio.sleep(self._backoff(attempts))
                continue
            answer = shell.parse_cancel_answer(result.out_text())
            self._cancel_answers[key] = answer
            if answer.word == "finished":
                self._note(
                    key,
                    f"the cancel came too late: the build had already ended on {host.name} "
                    f"(exit {answer.exit_code})",
                )
            elif answer.word == "still-running":
                self._note(
                    key,
                    f"the cancel reached {host.name} but the build's processes survived SIGKILL; "
                    "it is still running there",
                )
            elif answer.word == "unknown":
                self._note(
                    key,
                    f"{host.name} did not say whether the build stopped "
                    f"(exit {result.exit_status}: {result.err_text().strip()[-300:]})",
                )
            return

    def _cancel_undelivered(self, status: JobStatus, host: str, problem: str, tries: int) -> None:
        """The cancel never got to the host: the job's state is unknown, never `cancelled`."""
        if status.state.finished:
            return
        status.error = (
            f"the cancel could not be delivered to {host} ({tries} retries: {problem}); the "
            f"build may still be running on {host} — `matui attach --run {self.id}` follows "
            f"it, `matui cancel --run {self.id}` stops it"
        )
        self._set_state(status, JobState.LOST, status.error)
        task = self._tasks.get(status.job.key)
        if task is not None:
            task.cancel()  # stop following; the record says lost, for a later attach

    async def _run_job(self, key: str) -> None:
        status = self.status[key]
        job = status.job
        try:
            host = self.config.host(job.host)
            async with self._slotted(status):
                status.started = time.time()
                self._set_state(status, JobState.UPLOADING, f"sending context to {job.host}")
                await self._upload(host, key)
                status.pid = await self._launch(host, job)
                self._set_state(status, JobState.RUNNING, f"pid {status.pid} on {job.host}")
                await self._follow_until_done(host, status)
        except asyncio.CancelledError:
            # Our task ends either because the operator cancelled this job before it launched,
            # or because matui itself is going away: then the build goes on on its host and the
            # record must keep saying so, for the next matui to reattach.
            if key in self._cancelled and status.pid is None and not status.state.finished:
                self._set_state(status, JobState.CANCELLED, "cancelled before the build started")
            raise
        except Exception as exc:  # one arch's failure never stops the others
            if not status.state.finished:
                status.error = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
                lost = isinstance(exc, _Lost)
                if not lost and (isinstance(exc, ConnectionError) or _is_connection_error(exc)):
                    # Its host is down or dropped us (not a local file's error): it may move.
                    self._unreachable.add(key)
                self._set_state(status, JobState.LOST if lost else JobState.FAILED, status.error)
        self._move_on(key)

    @asynccontextmanager
    async def _slotted(self, status: JobStatus) -> AsyncIterator[None]:
        """Hold a build slot on the job's host for the block (a release's runs share
        :attr:`slots`); while none is free the job is queued and says what it waits for."""
        host = status.job.host
        if self.slots is None:
            yield
            return
        if not self.slots.free(host):
            self._set_state(
                status,
                JobState.QUEUED,
                f"waiting for a slot on {host} (max_jobs: {self.slots.cap(host)} of this "
                "release's jobs at a time)",
            )
        async with self.slots.slot(host):
            yield

    async def _reattach_job(self, key: str) -> None:
        status = self.status[key]
        try:
            host = self.config.host(status.job.host)
            self._set_state(status, JobState.RUNNING, f"reattaching to {status.job.host}")
            await self._clock_from_host(host, status)
            await self._follow_until_done(host, status)
        except Exception as exc:
            if not status.state.finished:
                status.error = str(exc) or type(exc).__name__
                state = JobState.LOST if isinstance(exc, _Lost) else JobState.FAILED
                self._set_state(status, state, status.error)
        self._move_on(key)

    async def _clock_from_host(self, host: Any, status: JobStatus) -> None:
        """A reattached job's running time counts from its start on the host (by the host's own
        clock, so no skew with ours), not from the reattach; unreadable now, it stays as is."""
        try:
            outcome = await self._outcome(host, status)
        except _Lost:
            return
        running = _host_seconds({"started": outcome.get("started"), "ended": outcome.get("now")})
        if running is not None:
            status.started = time.time() - running

    async def _upload(self, host: Any, key: str) -> None:

        image = self.plan.image
        status = self.status[key]
        # A job moved here by a retry, not started here yet: a log an earlier attempt left on
        # this host is not this one's (its bytes are in the local copy already, if at all).
        fresh = status.log_base > 0 and status.offset == status.log_base
        proc = await self.pool.open_process(
            host, shell.upload_script(self.id, key, fresh_log=fresh)
        )
        try:

            async def write(chunk: bytes) -> None:
                proc.stdin.write(chunk)
                await proc.stdin.drain()

            stats = await stream_context(image.context, image.dockerfile, write)
            proc.stdin.write_eof()
            result = await proc.wait()
        finally:
            proc.close()
        if result.exit_status != 0:
            err = result.stderr
            text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err or "")
            raise RuntimeError(f"context upload to {host.name} failed: {text.strip()[-500:]}")
        # What this attempt builds from: a retry after an edit sends, and records, another.
        self.record.save_source(
            key,
            stats.source.digest,
            stats.source.files,
            time.time(),
            context_files=stats.files,
            context_bytes=stats.bytes,
        )

    async def _send_private_inputs(self, host: Any, job: BuildJob) -> None:
        """Build-arg values and secrets go to the job's ``secrets/`` directory on the host over
        the SSH channel (stdin), never on a command line; a job already building keeps its own."""
        image = self.plan.image
        if self.secrets is None:
            self.secrets = read_secrets(self.config, image)
        inputs = private_inputs(image, self.secrets)
        if not inputs:
            return
        result = await self.pool.run(
            host, shell.secrets_script(self.id, job.key), input=inputs.payload()
        )
        if result.exit_status == shell.SECRETS_BUSY:
            return  # building already: the launch attaches to it
        if not result.ok:
            raise RuntimeError(
                f"could not send the build args and secrets to {host.name}: "
                f"{result.err_text().strip()[-500:] or f'exit {result.exit_status}'}"
            )

    async def _drop_private_inputs(self, host: Any, job: BuildJob) -> None:
        """A launch that started nothing leaves no build args or secrets behind."""
        from contextlib import suppress

        if self.plan.image.build_args or self.plan.image.secrets:
            # Unreachable now: `matui gc` removes them with the context copy.
            with suppress(Exception):
                await self.pool.run(host, shell.drop_secrets_script(self.id, job.key), timeout=30)

    async def _launch(self, host: Any, job: BuildJob) -> int:
        """Start the job's build (or attach to it when the host says it is already running)."""
        image = self.plan.image
        status = self.status[job.key]
        options = status.retry_options or RetryOptions()
        marker = None
        if status.attempt > 1:
            marker = attempt_marker(status.attempt, options, job.host)
        # How the image leaves the host's builder (its driver as probed): per-arch tag, or
        # push by digest with attestations and a registry cache.
        route = job_route(image, job, self.config.hosts, self.probes)
        argv = shell.buildx_argv(
            platform=str(job.platform),
            ref=job.ref,
            dockerfile=image.dockerfile,
            build_args=list(image.build_args),
            labels=dict(image.labels),
            target=image.target,
            secrets=list(image.secrets),
            no_cache=options.no_cache,
            pull=options.pull,
            **route.buildx_options(),
        )
        status.pushed_as = route.pushed_as or job.arch_tag
        status.builder = route.builder
        self.record.update_job(job.key, pushed_as=status.pushed_as, builder=status.builder)
        await self._send_private_inputs(host, job)
        lock = shell.ImageLock(
            shell.image_lock_name(self.plan.repository, str(job.platform)),
            _local_user(),
            socket.gethostname(),
            self.id,
            job.key,
        )
        result = await self.pool.run(
            host, shell.launch_script(self.id, job.key, argv, image_lock=lock, marker=marker)
        )
        if result.exit_status == shell.IMAGE_BUSY:
            await self._drop_private_inputs(host, job)
            text = result.out_text()
            held = text.partition("@@matui:image-busy\n")[2]
            holder = shell.ImageHolder.parse(lock.name, held)
            raise ImageBusy(
                f"{self.plan.repository} {job.platform} is being built on {host.name} by "
                f"{holder.line()}; not starting a second build — `matui attach "
                f"{holder.run_id}` on {holder.local_host} follows it"
            )
        if not result.ok:
            await self._drop_private_inputs(host, job)
            raise RuntimeError(
                f"could not start the build on {host.name}: {result.err_text().strip()[-500:]}"
            )
        words = result.out_text().split()
        if words[-2:-1] == ["attached"]:
            self._note(job.key, f"already building on {host.name}: attached to it")
        return int(words[-1])

    async def _follow_until_done(self, host: Any, status: JobStatus) -> None:
        log = self._logs[status.job.key]
        log.file = log.path.open("ab")
        try:
            outcome = await self._follow_to_end(host, status, log)
            pushing = status.push_attempts[-1] if status.push_attempts else None
            if pushing is not None and pushing.open:
                # A push retry was running (this is a reattach): its outcome, not a build's.
                await self._end_push_attempt(host, status, log, outcome, pushing)
            else:
                if str(outcome.get("exit", "")).strip() not in ("", "0"):
                    outcome["engine"] = await self._engine_answers(host)
                if log.partial:
                    block, log.partial = log.partial, b""
                    self._lines(status, log, block, status.offset)
                self._finish(status, log.parser, outcome)
            # A push the registry rejected after the image was built: push it again, only.
            while status.push_target is not None and not status.state.finished:
                await self._push_again(host, status, log)
        finally:
            log.file.close()
            log.file = None

    async def _follow_to_end(self, host: Any, status: JobStatus, log: _JobLog) -> dict[str, Any]:
        """Follow the job's log until what runs in its directory (its build, or a push retry)
        has ended, through lost connections; its outcome."""
        attempts = 0
        while True:
            try:
                await self._follow(host, status, log)
                outcome = await self._outcome(host, status)
                await self._catch_up(host, status, log, outcome)
            except _Lost as exc:
                attempts += 1
                if attempts > self.reconnect_attempts:
                    raise _Lost(
                        f"lost the connection to {host.name} and could not get back "
                        f"({attempts - 1} attempts): {exc}; the build may still be running "
                        "there — matui attaches to it on its next start"
                    ) from exc
                if attempts == 1:
                    self._set_state(
                        status, JobState.RUNNING, "disconnected — build still running on host"
                    )
                await asyncio.sleep(self._backoff(attempts))
                continue
            if attempts:
                attempts = 0
                self._set_state(status, JobState.RUNNING, f"reattached to {host.name}")
            if outcome.get("running"):
                continue  # the follow ended early; the build goes on
            return outcome

    # --- push retries -------------------------------------------------------------------------
    # A job whose build wrote and named its image but whose push the registry rejected or
    # dropped is not failed yet: its image is pushed again from the host's engine, up to
    # `push_retries` times with a growing, jittered wait, each attempt detached and followed
    # like the build (so cancel, quit and reattach work the same). It succeeds only with the
    # digest the registry serves under the arch tag, read back; else it fails with the registry
    # cause and the attempts in its record. Never a rebuild.

    def _push_again_fits(self, status: JobStatus) -> bool:
        """Whether the failed job's image should be pushed again (sets its push target)."""
        key = status.job.key
        if self.registry is None or key in self._cancelled or self.push_retries < 1:
            return False  # a success could not be read back, or the operator stopped it
        if status.push_target is None:
            failure = self._failure(status, JobState.FAILED)
            target = push_target(failure, log_lines(self._logs[key].path), status.job.ref)
            if target is None:
                return False
            status.push_target = target
        return True

    async def _push_again(self, host: Any, status: JobStatus, log: _JobLog) -> None:
        """One push retry of the job's built image: wait, push, follow, judge."""
        key, job = status.job.key, status.job
        target = status.push_target
        assert target is not None
        number, of = len(status.push_attempts) + 1, self.push_retries
        if number > of or key in self._cancelled:
            self._push_failed(status)
            return
        if self.follow_only:
            await self._follow_owners_push(host, status, log, number)
            return
        delay = push_delay(number, base=self.push_delay, cap=self.push_delay_cap)
        answered = status.push_attempts[-1].error if status.push_attempts else status.error
        self._set_state(
            status,
            JobState.RUNNING,
            f"push retry {number}/{of} in {delay:g} s (the image is built; the registry "
            f"answered: {_short(answered or 'an error')})",
        )
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if key in self._cancelled:
                stopped = (
                    f"push retries stopped by the cancel: {target.ref} is built on {host.name} "
                    "but not in the registry"
                )
                status.notes.append(stopped)
                self._note(key, stopped)
                self._push_failed(status)  # nothing runs on the host: the failure stands
                return
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        script = shell.push_script(
            self.id,
            key,
            target.ref,
            target.image_id,
            attempt=number,
            attempts=of,
            delay=delay,
            image_lock=self._image_lock(job),
        )
        try:
            result = await self.pool.run(host, script)
        except Exception as exc:
            if isinstance(exc, OSError) or _is_connection_error(exc):
                raise _Lost(f"while starting push retry {number}/{of}: {exc}") from exc
            raise
        if result.exit_status is None:
            raise _Lost(f"the connection went away while starting push retry {number}/{of}")
        attempt = PushAttempt(number, of, delay, target.ref, target.image_id, status.offset)
        words = result.out_text().split()
        if not result.ok or not words or not words[-1].isdigit():
            if result.exit_status == shell.IMAGE_BUSY:
                held = result.out_text().partition("@@matui:image-busy\n")[2]
                holder = shell.ImageHolder.parse(self._image_lock(job).name, held)
                attempt.error = f"not pushed: {holder.line()} holds this image's lock"
            else:
                why = result.err_text().strip()[-300:] or f"exit {result.exit_status}"
                attempt.error = f"the push did not start on {host.name}: {neutralise(why)}"
            status.push_attempts.append(attempt)
            self._push_failed(status)
            return
        attempt.pid = status.pid = int(words[-1])
        status.push_attempts.append(attempt)
        if words[-2:-1] == ["attached"]:
            self._note(key, f"a push of {target.ref} was running on {host.name}: attached to it")
        self._set_state(
            status, JobState.RUNNING, f"push retry {number}/{of}: pushing {target.ref} again"
        )
        if key in self._cancelled:
            await self._cancel_one(key)  # the cancel came while the push was starting
        outcome = await self._follow_to_end(host, status, log)
        await self._end_push_attempt(host, status, log, outcome, attempt)

    async def _follow_owners_push(
        self, host: Any, status: JobStatus, log: _JobLog, number: int
    ) -> None:
        """Read-only: the run's owner makes push retry ``number``; follow it once the job's log
        grows (its push has started, or even ended), and judge it as the owner does (read back
        from the registry). When none comes within the owner's longest wait and a margin (it
        gave up, was cancelled or is gone), the job is left failed, saying so."""
        key = status.job.key
        target = status.push_target
        assert target is not None
        self._set_state(
            status,
            JobState.RUNNING,
            f"push retry {number}/{self.push_retries}: the run's owner pushes {target.ref} again",
        )
        deadline = time.monotonic() + self.push_delay_cap * 1.2 + OWNER_PATIENCE
        while True:
            outcome = await self._outcome(host, status)
            size = int(str(outcome.get("size", "0")).strip() or 0)
            if size > status.offset - status.log_base:
                break  # the owner's push wrote its first line
            if time.monotonic() > deadline:
                gone = (
                    f"the run's owner made no push retry {number} of {target.ref} within "
                    f"{self.push_delay_cap * 1.2 + OWNER_PATIENCE:g} s (it gave up, or is gone)"
                )
                status.notes.append(gone)
                self._note(key, gone)
                self._push_failed(status)
                return
            await asyncio.sleep(0.5)
        attempt = PushAttempt(
            number, self.push_retries, 0.0, target.ref, target.image_id, status.offset
        )
        attempt.pid = status.pid
        status.push_attempts.append(attempt)
        outcome = await self._follow_to_end(host, status, log)
        await self._end_push_attempt(host, status, log, outcome, attempt)

    async def _end_push_attempt(
        self,
        host: Any,
        status: JobStatus,
        log: _JobLog,
        outcome: dict[str, Any],
        attempt: PushAttempt,
    ) -> None:
        """A push retry has ended on its host: the job succeeds (the registry serves what was
        pushed), ends (cancelled, lost, cannot push), or waits for the next retry."""
        if status.push_target is None:
            status.push_target = attempt.target  # a reattach: the record knew the attempt
        if log.partial:
            block, log.partial = log.partial, b""
            self._lines(status, log, block, status.offset)
        exit_text = str(outcome.get("exit", "")).strip()
        attempt.exit_code = int(exit_text) if exit_text.lstrip("-").isdigit() else None
        status.host_seconds = _host_seconds(outcome)
        digest, error = attempt_outcome(_lines_from(log.path, attempt.offset))
        attempt.digest = digest
        where = f"push retry {attempt.attempt}/{attempt.of}"
        if outcome.get("cancelled") and attempt.exit_code != 0:
            attempt.error = "cancelled"
            status.push_target = None
            self._set_state(status, JobState.CANCELLED, f"cancelled on {host.name} during {where}")
            return
        if attempt.exit_code is None:
            attempt.error = "the push's process is gone and left no exit code"
            status.push_target = None
            status.error = f"{where}: {attempt.error}"
            self._set_state(status, JobState.LOST, status.error)
            return
        if attempt.exit_code == 0:
            served, problem = await self._read_back(status.job)
            attempt.registry_digest = served
            if digest is None:
                attempt.error = "docker push ended without printing the digest it pushed"
            elif served != digest:
                attempt.error = (
                    f"docker push printed {digest} but the registry serves "
                    f"{served or 'nothing'} under {status.job.arch_tag}"
                    + (f" ({problem})" if problem else "")
                )
            else:
                self._push_succeeded(status, attempt)
                return
        else:
            attempt.error = neutralise(error or f"docker push exited {attempt.exit_code}")
        if attempt.exit_code == shell.PUSH_NOT_BUILT:
            self._push_failed(status)  # the tag names another image now: pushing cannot help
            return
        self.record.update_job(status.job.key, push_attempts=status.to_json()["push_attempts"])

    async def _read_back(self, job: BuildJob) -> tuple[str | None, str]:
        """The digest the registry serves under the job's arch tag (from the manifest's own
        bytes), and why it could not be read when it could not."""
        assert self.registry is not None
        try:
            manifest = await self.registry.get_manifest(self.plan.image.repository(), job.arch_tag)
        except Exception as exc:  # a registry error is an answer too: never a success
            return None, neutralise(str(exc) or type(exc).__name__)
        return (None, "the tag is absent") if manifest is None else (manifest.digest, "")

    def _push_succeeded(self, status: JobStatus, attempt: PushAttempt) -> None:
        assert attempt.digest is not None
        key = status.job.key
        first = status.error or "an error"
        count = len(status.push_attempts)
        status.push_target = None
        status.digest = attempt.digest
        status.exit_code = 0  # the job's end: its image is in the registry
        status.error = status.failing_step = None
        status.failure = None
        note = (
            f"push retried {_times(count)}: the registry had answered {_short(first)}; "
            f"{attempt.ref} pushed again (no rebuild), the registry serves {attempt.digest}"
        )
        status.notes.append(note)
        self._note(key, note)
        self._set_state(
            status, JobState.SUCCEEDED, f"{attempt.digest} (push retried {_times(count)})"
        )

    def _push_failed(self, status: JobStatus) -> None:
        """The push retries are over without the image in the registry: the job fails with the
        build's registry error, saying how many retries were made and what the last one got."""
        status.push_target = None
        count = len(status.push_attempts)
        if count:
            last = status.push_attempts[-1].error or "no answer"
            status.error = (
                f"{status.error or 'the push failed'}; pushed again {_times(count)} without "
                f"rebuilding, the last: {last}"
            )
        self._set_state(
            status,
            JobState.FAILED,
            f"exit {status.exit_code}"
            + (f" at {status.failing_step}" if status.failing_step else "")
            + (f" (push retried {_times(count)})" if count else ""),
        )

    def _image_lock(self, job: BuildJob) -> shell.ImageLock:
        return shell.ImageLock(
            shell.image_lock_name(self.plan.repository, str(job.platform)),
            _local_user(),
            socket.gethostname(),
            self.id,
            job.key,
        )

    async def _engine_answers(self, host: Any) -> bool:
        try:
            result = await self.pool.run(host, shell.engine_script(), timeout=15)
        except Exception:
            return False
        return result.ok

    def _backoff(self, attempt: int) -> float:
        """Bounded exponential backoff with jitter, so hosts behind one bastion do not all
        knock at the same instant when it comes back."""
        delay = min(self.reconnect_cap, self.reconnect_delay * 2 ** (attempt - 1))
        return float(delay * random.uniform(0.8, 1.2))

    def _ingest(self, status: JobStatus, log: _JobLog, chunk: bytes) -> None:
        """One chunk of the host's log: keep its bytes, hand its complete lines on as one batch.

        The bytes are written (and flushed) before the lines are queued: a cursor queued
        instead of them must find them in the file."""
        assert log.file is not None
        log.file.write(chunk)
        log.file.flush()
        status.offset += len(chunk)
        block = log.take(chunk)
        if block is not None:
            self._lines(status, log, block, status.offset - len(log.partial))

    async def _follow(self, host: Any, status: JobStatus, log: _JobLog) -> None:
        assert status.pid is not None
        script = shell.follow_script(
            self.id, status.job.key, status.offset - status.log_base, status.pid
        )
        try:
            proc = await self.pool.open_process(host, script)
        except OSError as exc:
            raise _Lost(str(exc)) from exc
        except Exception as exc:
            if _is_connection_error(exc):
                raise _Lost(str(exc)) from exc
            raise
        try:
            while True:
                try:
                    chunk = await proc.stdout.read(CHUNK)
                except Exception as exc:
                    raise _Lost(str(exc)) from exc
                if not chunk:
                    break
                assert isinstance(chunk, bytes)
                self._ingest(status, log, chunk)
                if self._queued_lines > self.max_queued_lines // 2:
                    await self._let_consumer_catch_up()
            result = await proc.wait()
        except Exception as exc:
            if isinstance(exc, _Lost):
                raise
            raise _Lost(str(exc)) from exc
        finally:
            proc.close()
        if result.exit_status is None:
            raise _Lost("connection lost while following the log")

    async def _let_consumer_catch_up(self) -> None:
        """Back-pressure while a consumer reads: a read of buffered SSH data does not suspend,
        so a burst would be queued whole before the consumer ran, past the queue's bound, and
        its lines read back from the local copy and decoded a second time. Wait (briefly) for
        the consumer to halve the queue; one that does not read in time is left behind (its
        lines become a cursor, as before) and not waited for again until it reads."""
        if self._consumer_stalled:
            return
        self._drained.clear()
        try:
            await asyncio.wait_for(self._drained.wait(), CONSUMER_PATIENCE)
        except TimeoutError:
            self._consumer_stalled = True

    async def _catch_up(
        self,
        host: Any,
        status: JobStatus,
        log: _JobLog,
        outcome: dict[str, Any],
    ) -> None:
        """Read whatever the follow had not delivered, by exact byte range (of the host's log,
        which begins at :attr:`JobStatus.log_base` of the local copy)."""
        size = int(str(outcome.get("size", "0")).strip() or 0)
        read = status.offset - status.log_base
        if size <= read:
            return
        script = shell.read_from_script(self.id, status.job.key, read, size)
        try:
            result = await self.pool.run(host, script)
        except Exception as exc:
            raise _Lost(str(exc)) from exc
        if result.exit_status is None:
            raise _Lost("connection lost while reading the end of the log")
        self._ingest(status, log, result.stdout)

    def _decode(
        self, status: JobStatus, log: _JobLog, block: bytes, *, live: bool = False
    ) -> tuple[str, list[str]]:
        """Complete lines (joined by \\n, no final one): decoded and made inert once
        (:func:`~matui.engine.text.decode_lines`), parsed in one call, counted. ``live``: they
        just arrived from the host, so their steps' start and end times are noted now."""
        text, lines = decode_block(block)
        status.lines += len(lines)
        log.tail.extend(lines[-TAIL_LINES:])
        # The text, split once: no line of it holds a "\n" (decode_block split on them).
        events = log.parser.feed_text(text)
        if live and events and status.started is not None:
            status.steps.observe(events, time.time() - status.started)
        status.current_step = log.parser.current_step
        return text, lines

    def _lines(self, status: JobStatus, log: _JobLog, block: bytes, end: int) -> None:
        """New lines, which end at byte ``end`` of the local copy: decoded, then queued."""
        first, step_before, start = status.lines, status.current_step, log.complete
        text, lines = self._decode(status, log, block, live=True)
        log.complete = end
        chars = len(text) - len(lines) + 1
        self._queue_lines(status.job.key, first, lines, start, end, step_before, chars)

    async def _outcome(self, host: Any, status: JobStatus) -> dict[str, Any]:
        try:
            result = await self.pool.run(host, shell.outcome_script(self.id, status.job.key))
        except Exception as exc:
            raise _Lost(str(exc)) from exc
        if result.exit_status is None:
            raise _Lost("connection lost while reading the outcome")
        text = result.out_text()
        head, _, metadata = text.partition("@@matui:metadata\n")
        outcome: dict[str, Any] = {"metadata": metadata}
        for line in head.splitlines():
            if line.startswith("@@matui:") and "=" in line:
                name, _, value = line[len("@@matui:") :].partition("=")
                outcome[name] = value
        return outcome

    def _record_inputs(self, key: str) -> None:
        """What the job was built from (base images' digests from its log, build-arg value
        hashes, the Dockerfile's hash), kept for "what changed since the last green run"."""
        image = self.plan.image
        job = self.record.job(key)
        inputs = job_inputs(
            log=self._logs[key].path,
            build_args=image.build_args,
            dockerfile=image.dockerfile,
            source=job.source,
            source_files=self.record.source_files(key),
        )
        self.record.update_job(key, inputs=inputs)

    def _finish(self, status: JobStatus, parser: ProgressParser, outcome: dict[str, Any]) -> None:
        key = status.job.key
        for note in parser.notes:
            if note == STATUS_LOST_NOTE and outcome.get("engine") is False:
                continue  # the stream went with the engine, not with a burst of output
            if note not in status.notes:
                status.notes.append(note)
                self._note(key, note)
        status.arch_evidence = list(parser.arch_evidence)
        exit_text = str(outcome.get("exit", "")).strip()
        if exit_text.lstrip("-").isdigit():
            status.exit_code = int(exit_text)
        status.host_seconds = _host_seconds(outcome)
        self._record_inputs(key)
        host = status.job.host
        # The host's word decides, not the request: the cancel marker is written only when a
        # signal went to a running build, and an exit code of 0 means it finished (and pushed).
        cancelled = bool(outcome.get("cancelled")) and status.exit_code != 0
        if cancelled:
            self._set_state(status, JobState.CANCELLED, f"cancelled on {host}")
            return
        if status.exit_code is None:
            status.error = "the build's process is gone and left no exit code"
            self._set_state(status, JobState.LOST, status.error)
            return
        if status.exit_code != 0:
            failing = parser.failing_step
            if failing is not None:
                step, name, message = failing
                status.failing_step = f"#{step} {name or ''}".strip()
                status.error = message
            else:
                status.error = parser.solve_error or buildx_death_error(
                    status.exit_code, self._logs[key].tail
                )
            said = (status.error or "", parser.solve_error or "")
            # buildx 0.13.1 drops a status stream it cannot keep up with (code = Canceled) while
            # the engine is fine: that is no engine gone (and no reason to move the job).
            burst = outcome.get("engine") is True and "code = canceled" in " ".join(said).lower()
            if _engine_went_away(*said) and not burst:
                now = "it answers again now" if outcome.get("engine") else "it is not answering now"
                status.error = (
                    f"the docker engine on {status.job.host} went away during the build "
                    f"(stopped or restarted; {now}) — buildx said: {status.error}"
                )
            if self._push_again_fits(status):
                return  # built, the push rejected: the runner pushes it again (_push_again)
            self._set_state(
                status,
                JobState.FAILED,
                f"exit {status.exit_code}"
                + (f" at {status.failing_step}" if status.failing_step else ""),
            )
            return
        try:
            meta = parse_metadata(str(outcome.get("metadata", "")))
        except ValueError as exc:
            status.error = f"build exited 0 but its metadata has no digest: {exc}"
            self._set_state(status, JobState.FAILED, status.error)
            return
        status.digest = meta["digest"]
        if self._builder_mismatch(status, str(outcome.get("metadata", ""))):
            return
        detail = status.outcome_line
        if key in self._cancelled:
            pushed = (
                f"{self.plan.repository}@{status.digest} (by digest)"
                if status.pushed_as == BY_DIGEST
                else f"{status.job.ref} as {status.digest}"
            )
            late = f"the cancel came too late: the build had finished on {host} and pushed {pushed}"
            if late not in status.notes:
                status.notes.append(late)
                self._note(key, late)
            detail = f"{status.digest} (the cancel came too late: it had finished)"
        self._set_state(status, JobState.SUCCEEDED, detail)

    def _builder_mismatch(self, status: JobStatus, metadata: str) -> bool:
        """Record the builder and node that built a job through a host's builder (from the
        metadata's ``buildx.build.ref``); a node of another arch fails the job as an arch
        mismatch (True)."""
        from matui.engine.builders import node_from_metadata

        host = next((h for h in self.config.hosts if h.name == status.job.host), None)
        if host is None or host.builder is None:
            return False
        node = node_from_metadata(metadata, host.builder)
        status.builder, status.builder_node = host.builder, node
        self.record.update_job(status.job.key, builder=host.builder, builder_node=node)
        built = f"built through builder {host.builder} on node {node or '(not named in metadata)'}"
        if built not in status.notes:
            status.notes.append(built)
            self._note(status.job.key, built)
        probe = next((p for p in self.probes if p.name == host.name), None)
        arches = dict(n.partition("=")[::2] for n in (probe.builder_nodes if probe else ()))
        arch = arches.get(node or "")
        if arch in (None, "?", status.job.platform.arch) or status.job.emulated:
            return False
        status.error = (
            f"arch mismatch: {status.job.platform} was built on node {node} of builder "
            f"{host.builder}, a {arch} node; its image is not native {status.job.platform.arch}"
        )
        self._set_state(status, JobState.FAILED, status.error)
        return True


# What buildx and the engine print when the engine dies under a build (Docker 20.10 .. 28).
_ENGINE_GONE = (
    "failed to update store for object type",
    "error reading from server: eof",
    "cannot connect to the docker daemon",
    "connection reset by peer",
    "transport is closing",
    "code = unavailable",
    "failed to receive status",
    "is the docker daemon running",
)


#: Lines of buildx's own last output quoted in the error of a build that died without one.
DEATH_LINES = 5


def buildx_death_error(exit_code: int | None, tail: Iterable[str]) -> str:
    """The error of a buildx that exited non-zero without a failing step or an ``ERROR:``
    verdict (it died: a broken status stream, a crash): its exit code and what it said last.

    buildx's own messages are the lines that are not step output (``#N ...``); when it printed
    none, the last lines of all are quoted."""
    lines = [line.strip() for line in tail if line.strip() and not line.startswith(ATTEMPT_MARKER)]
    own = [line for line in lines if not _STEP_LINE.match(line)]
    quoted = (own or lines)[-DEATH_LINES:]
    head = f"buildx exited with {exit_code}"
    if not quoted:
        return f"{head} and printed nothing"
    return f"{head}; its last output: " + " | ".join(line[:300] for line in quoted)


_STEP_LINE = re.compile(r"#\d+ ")


def _host_seconds(outcome: dict[str, Any]) -> float | None:
    """The build's wall time from the host's own ``started`` and ``ended`` stamps."""
    try:
        started = float(str(outcome.get("started", "")).strip())
        ended = float(str(outcome.get("ended", "")).strip())
    except ValueError:
        return None
    return ended - started if ended >= started else None


def _move_detail(status: JobStatus, unreachable: bool) -> str:
    """What failed on the job's host, in words a note and a card show: ``engine gone (...)``,
    ``unreachable (...)``, ``host lost (...)``, ``disk full (...)``."""
    failure = status.failure
    error = status.error or (failure.error if failure is not None else None) or ""
    cause = failure.cause if failure is not None else ""
    if unreachable:
        what = "unreachable"
    elif error.startswith(f"the docker engine on {status.job.host} went"):
        what = "engine gone"
        error = error.partition(" — buildx said: ")[2] or error
    elif cause == "disk-full":
        what = "disk full"
    elif status.state is JobState.LOST:
        what = "host lost"
    else:
        what = "host or engine lost"
    return f"{what} ({_short(error, 200)})" if error else what


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines_from(path: Path, offset: int) -> list[str]:
    """The lines of a job's local log copy from byte ``offset`` on (one push retry's output:
    a few dozen lines), decoded as the runner decodes them."""
    try:
        with path.open("rb") as stored:
            stored.seek(offset)
            data = stored.read()
    except OSError:
        return []
    return decode_lines(data[:-1] if data.endswith(b"\n") else data)


def _local_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without /etc/passwd entry)
        return f"uid{os.getuid()}"


def _inert(text: str | None) -> str | None:
    return None if text is None else neutralise(text)


def _inert_flag(flag: Flag) -> Flag:
    """A flag whose subject and message (which can quote a log line, a registry's or a host's
    answer) are safe to show."""
    subject, message = neutralise(flag.subject), neutralise(flag.message)
    if subject == flag.subject and message == flag.message:
        return flag
    return replace(flag, subject=subject, message=message)


def _engine_went_away(*texts: str) -> bool:
    text = " ".join(texts).lower()
    return any(marker in text for marker in _ENGINE_GONE)


def _is_connection_error(exc: BaseException) -> bool:
    import asyncssh

    # SessionsRefused: the host kept refusing a new session (MaxSessions) for the pool's whole
    # wait; the build goes on there, so following it is retried like a lost connection.
    return isinstance(
        exc,
        asyncssh.ConnectionLost | asyncssh.DisconnectError | HostUnreachable | SessionsRefused,
    )
