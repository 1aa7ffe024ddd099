"""Run records under the user's state dir: what was planned, where it ran, what came out.

Layout: ``$XDG_STATE_HOME/matui/runs/<run id>/run.json`` plus one ``<arch>.log`` per job holding
the job's output bytes exactly as the host wrote them, and one ``<arch>.source.json`` per job
holding the source manifest (path → content digest) of the context it was last built from:
beside the record, not in it, because a big context's manifest would make every save of
``run.json`` slow; the record keeps only the source's digest and when it was sent.

The record is typed (:class:`RunRecord`, :class:`JobRecord`, :class:`PublishRecord`) and this
module is the one place that reads and writes ``run.json``. Each document carries
``schema``; records written before the schema existed (version 1) load too. Saving is atomic
and safe from several processes at once: each save writes its own temporary file and renames it
over ``run.json`` (never a shared temporary name), so a reader sees one whole document or the
other, never a mix; changes (``update``, ``update_job``, ``add_publish``) are applied under the
run's lock to the document as saved, so two processes changing one run keep both changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from matui.engine.arch import ArchError, Platform
from matui.engine.builders import BY_DIGEST
from matui.engine.flags import BuiltImage, Flag, Severity
from matui.engine.flags.sources import (
    MIXED_SOURCES_OVERRIDE,
    JobSource,
    override_mixed_sources,
    source_mismatch_flags,
)
from matui.engine.plan import BuildJob
from matui.engine.probe import HostProbe

SCHEMA = 2
"""Version of ``run.json``. 1: the untyped document (no ``schema`` key, ``manifests`` list)."""


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "matui"


def who() -> str:
    """``user@machine`` of this process, for a record's "who started / published it"."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


class JobState(StrEnum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST)


class RunState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TagOutcome(StrEnum):
    """What became of one release tag in a publish."""

    VERIFIED = "verified"  # pushed, and the registry serves exactly the planned index
    UNCHANGED = "unchanged"  # already served this index: nothing pushed
    UNVERIFIED = "unverified"  # pushed, but the registry serves something else
    REFUSED = "refused"  # the registry (or buildx) refused it; the tag did not move
    NOT_ATTEMPTED = "not attempted"  # an earlier failure stopped the publish before this tag


class VerdictKind(StrEnum):
    RUNNING = "running"
    BUILT = "built"  # every arch built, nothing blocks publishing
    BLOCKED = "blocked"  # every arch built, but an error flag blocks publishing
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    PARTLY_PUBLISHED = "partly published"
    PUBLISHED = "published"


@dataclass(frozen=True)
class Verdict:
    """What a run amounts to, in one word and one reason: the CLI and the dashboard show this."""

    kind: VerdictKind
    reason: str = ""

    @property
    def can_publish(self) -> bool:
        return self.kind in (VerdictKind.BUILT, VerdictKind.PARTLY_PUBLISHED)

    def line(self) -> str:
        return f"{self.kind}: {self.reason}" if self.reason else str(self.kind)


@dataclass
class JobRecord:
    """One arch of a run, as last saved."""

    key: str
    arch: str
    platform: str
    host: str
    arch_tag: str
    ref: str
    emulated: bool = False
    state: JobState = JobState.QUEUED
    exit_code: int | None = None
    digest: str | None = None
    failing_step: str | None = None
    error: str | None = None
    seconds: float | None = None
    lines: int = 0
    bytes: int = 0
    pid: int | None = None
    notes: list[str] = field(default_factory=list)
    arch_evidence: list[str] = field(default_factory=list)
    arch_tag_before: str | None = None
    context_files: int | None = None
    context_bytes: int | None = None
    #: Digest of the source (context + Dockerfile) the job was last built from; None: unknown
    #: (an older matui, or not sent yet). The files are in the run's ``<key>.source.json``.
    source: str | None = None
    #: When that source was sent (epoch seconds).
    source_at: float | None = None
    #: Why the job failed or was lost (``FailureRecord.to_json()``: step, exit code, the step's
    #: last lines, cause, advice, retry); None when it did not, or an older matui saved it.
    failure: dict[str, Any] | None = None
    #: Push-only retries of the built image after the registry rejected the build's own push
    #: (``PushAttempt.to_json()`` each: attempt, wait, exit code, digest pushed and read back,
    #: error), in order; empty when none was made.
    push_attempts: list[dict[str, Any]] = field(default_factory=list)
    #: Which attempt of the job the record is about: 1, then one more per retry (each later
    #: attempt opens with an ``@@matui attempt N: ...`` line in the job's log).
    attempt: int = 1
    #: Bytes of the local log copy before the current host's log begins (a retry that moved
    #: the job to another host; 0 otherwise).
    log_base: int = 0
    #: What the current attempt's retry asked for (``RetryOptions.to_json()``: no_cache, pull,
    #: host); None for a first attempt.
    retry_options: dict[str, Any] | None = None
    #: What the job was built from, for "what changed since the last green run"
    #: (``history.job_inputs``: base images' digests, build args' value hashes (never a value),
    #: the Dockerfile's hash, the source digest); None: an older matui, or not finished.
    inputs: dict[str, Any] | None = None
    #: The job's host as the run's pre-flight probed it (``HostFacts.to_json()``: declared and
    #: native arch, emulated, docker and buildx versions, free disk); None: an older matui.
    host_facts: dict[str, Any] | None = None
    #: When the runner saw each step of the last attempt start and end, in seconds since the
    #: job started (``StepClock.to_json()``: ``{"step": N, "start": s, "end": e}``); empty: not
    #: observed live (an older matui, a log replayed after a reattach).
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: The host's buildx builder the job was built through (``builder = "NAME"``) and the node
    #: that built it (from the build's metadata); None: the engine's own builder, or not known.
    builder: str | None = None
    builder_node: str | None = None
    #: The hosts the job was sent to, in order (its first, then each a retry or a move chose);
    #: empty: an older matui, which recorded only ``host``.
    tried_hosts: list[str] = field(default_factory=list)
    #: Moves to another host after an infrastructure failure (``HostMove.to_json()``: from,
    #: to, cause, detail), in order; empty when the job never moved (or an older matui).
    moves: list[dict[str, Any]] = field(default_factory=list)
    #: How the job's image was pushed: ``"by digest"`` (``builders.BY_DIGEST``: a builder with
    #: its own BuildKit; no per-arch tag moved) or its per-arch tag; None: an older matui, which
    #: always pushed the per-arch tag.
    pushed_as: str | None = None

    @property
    def by_digest(self) -> bool:
        """Pushed by digest only: its ``arch_tag`` was never pushed."""
        return self.pushed_as == BY_DIGEST

    @classmethod
    def for_job(cls, job: BuildJob, **values: Any) -> JobRecord:
        """The record of a planned job (``values`` set further fields, e.g. ``state``)."""
        return cls(
            key=job.key,
            arch=job.arch,
            platform=str(job.platform),
            host=job.host,
            arch_tag=job.arch_tag,
            ref=job.ref,
            emulated=job.emulated,
            **values,
        )

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["state"] = str(self.state)
        data["notes"] = list(self.notes)
        data["arch_evidence"] = list(self.arch_evidence)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = JobState(values.get("state") or JobState.QUEUED)
        values["notes"] = [str(n) for n in values.get("notes") or ()]
        values["arch_evidence"] = [str(n) for n in values.get("arch_evidence") or ()]
        values["push_attempts"] = [
            dict(a) for a in values.get("push_attempts") or () if isinstance(a, Mapping)
        ]
        values["steps"] = [dict(s) for s in values.get("steps") or () if isinstance(s, Mapping)]
        values["tried_hosts"] = [str(h) for h in values.get("tried_hosts") or ()]
        values["moves"] = [dict(m) for m in values.get("moves") or () if isinstance(m, Mapping)]
        return cls(**values)


@dataclass
class TagResult:
    """One release tag of a publish: what it served before, what was done, what it serves now."""

    tag: str
    ref: str
    outcome: TagOutcome = TagOutcome.NOT_ATTEMPTED
    before: str | None = None  # digest the tag served before (None: absent or unread)
    digest: str | None = None  # digest it serves after
    platforms: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def verified(self) -> bool:
        return self.outcome in (TagOutcome.VERIFIED, TagOutcome.UNCHANGED)

    @property
    def pushed(self) -> bool:
        return self.outcome in (TagOutcome.VERIFIED, TagOutcome.UNVERIFIED)

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "ref": self.ref,
            "outcome": str(self.outcome),
            "before": self.before,
            "digest": self.digest,
            "platforms": list(self.platforms),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TagResult:
        outcome = data.get("outcome")
        if outcome is None:  # schema 1: booleans
            if data.get("verified"):
                outcome = TagOutcome.VERIFIED
            elif data.get("pushed"):
                outcome = TagOutcome.UNVERIFIED
            else:
                outcome = TagOutcome.NOT_ATTEMPTED
        return cls(
            tag=str(data["tag"]),
            ref=str(data["ref"]),
            outcome=TagOutcome(outcome),
            before=data.get("before"),
            digest=data.get("digest"),
            platforms=[str(p) for p in data.get("platforms") or ()],
            error=data.get("error"),
        )


@dataclass
class Override:
    """An error flag the operator explicitly chose to publish past, and what it covered.

    ``name`` is the override asked for (``allow-mixed-sources``); ``sources`` each arch's source
    digest it was given for (a later rebuild from yet another source is not covered); ``user``
    who asked (the local login name); ``flags`` the messages it overrode.
    """

    name: str
    at: float
    user: str
    sources: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def line(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        return f"--{self.name} by {self.user} at {when}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "at": self.at,
            "user": self.user,
            "sources": dict(self.sources),
            "flags": list(self.flags),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Override:
        return cls(
            name=str(data.get("name") or ""),
            at=float(data.get("at") or 0.0),
            user=str(data.get("user") or ""),
            sources={str(k): str(v) for k, v in (data.get("sources") or {}).items()},
            flags=[str(f) for f in data.get("flags") or ()],
        )


@dataclass
class PublishRecord:
    """One publish attempt: the index planned, where it was made, the flags, each tag's fate,
    and any error flag the operator explicitly overrode."""

    at: float
    via: str  # "local" or the builder host that ran `imagetools create`
    index: dict[str, Any]  # IndexPlan.to_json()
    results: list[TagResult]
    flags: list[Flag] = field(default_factory=list)
    #: Why the attempt stopped or fell short, in one line (None: every tag serves the index).
    error: str | None = None
    overrides: list[Override] = field(default_factory=list)
    #: Who published (``user@machine``); None: an older matui recorded it.
    by: str | None = field(default_factory=lambda: who())

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "by": self.by,
            "via": self.via,
            "plan": self.index,
            "results": [r.to_json() for r in self.results],
            "flags": [f.to_json() for f in self.flags],
            "error": self.error,
            "overrides": [o.to_json() for o in self.overrides],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PublishRecord:
        return cls(
            at=float(data.get("at") or 0.0),
            via=str(data.get("via") or "local"),
            index=dict(data.get("plan") or {}),
            results=[TagResult.from_json(r) for r in data.get("results") or ()],
            flags=[Flag.from_json(f) for f in data.get("flags") or ()],
            error=data.get("error"),
            overrides=[Override.from_json(o) for o in data.get("overrides") or ()],
            by=data.get("by"),
        )


@dataclass
class RunRecord:
    """A run on disk. Change fields, then :meth:`save` (atomic)."""

    dir: Path
    id: str
    image: str
    tags: list[str]
    platforms: list[str]
    jobs: list[JobRecord]
    created: float = field(default_factory=time.time)
    config: str | None = None
    context: str | None = None
    hosts: list[HostProbe] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    state: RunState = RunState.RUNNING
    finished: float | None = None
    publishes: list[PublishRecord] = field(default_factory=list)
    #: Who started the run (``user@machine``); None: an older matui recorded it.
    started_by: str | None = field(default_factory=lambda: who())
    #: The release this run is one image of (:func:`~matui.engine.build.start.start_release`:
    #: every image of one ``matui build`` shares it); None: a run of its own.
    release: str | None = None
    #: Source manifests read so far, by (job key, source digest): the digest names the content,
    #: so an entry never goes stale, and the verdict (asked at every title update) reads each
    #: manifest once.
    _manifests: dict[tuple[str, str], dict[str, str] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    # -- reading and writing ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        image: str,
        tags: Iterable[str],
        platforms: Iterable[str],
        jobs: Iterable[JobRecord],
        run_id: str | None = None,
        **rest: Any,
    ) -> RunRecord:
        run_id = run_id or new_run_id()
        record = cls(
            root / "runs" / run_id,
            run_id,
            image,
            list(tags),
            list(platforms),
            list(jobs),
            **rest,
        )
        record.dir.mkdir(parents=True, exist_ok=False)
        record.save()
        return record

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        """Read ``path/run.json``. Raises ValueError for a document that is not a run record."""
        data = json.loads((path / "run.json").read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path / 'run.json'} is not a run record")
        schema = int(data.get("schema", 1))
        if schema > SCHEMA:
            raise ValueError(
                f"{path / 'run.json'} has schema {schema}, newer than this matui knows "
                f"({SCHEMA}); upgrade matui to read it"
            )
        try:
            return cls(
                dir=path,
                id=str(data["run"]),
                image=str(data["image"]),
                tags=[str(t) for t in data.get("tags") or ()],
                platforms=[str(p) for p in data.get("platforms") or ()],
                jobs=[JobRecord.from_json(j) for j in data.get("jobs") or ()],
                created=float(data.get("created") or 0.0),
                config=data.get("config"),
                context=data.get("context"),
                hosts=[HostProbe.from_json(h) for h in data.get("hosts") or ()],
                flags=[Flag.from_json(f) for f in data.get("flags") or ()],
                state=RunState(data.get("state") or RunState.RUNNING),
                finished=data.get("finished"),
                # schema 1 called them "manifests"
                publishes=[
                    PublishRecord.from_json(p)
                    for p in data.get("publishes") or data.get("manifests") or ()
                ],
                started_by=data.get("started_by"),
                release=data.get("release"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path / 'run.json'} is not a readable run record: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run": self.id,
            "created": self.created,
            "image": self.image,
            "tags": list(self.tags),
            "config": self.config,
            "context": self.context,
            "platforms": list(self.platforms),
            "hosts": [h.to_json() for h in self.hosts],
            "flags": [f.to_json() for f in self.flags],
            "jobs": [j.to_json() for j in self.jobs],
            "state": str(self.state),
            "finished": self.finished,
            "publishes": [p.to_json() for p in self.publishes],
            "started_by": self.started_by,
            "release": self.release,
        }

    def save(self) -> None:
        """Write the whole document atomically (use the ``update`` methods for changes: they
        merge with what another process may have saved meanwhile)."""
        with self._lock():
            self._write()

    def _write(self) -> None:
        text = json.dumps(self.to_json(), indent=2, sort_keys=True, default=str)
        fd, tmp = tempfile.mkstemp(prefix=".run.json.", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.replace(tmp, self.dir / "run.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _merge(self, change: Callable[[RunRecord], None]) -> None:
        """Apply ``change`` here and to the saved document, under the run's lock, so that two
        processes changing different parts of one run (the runner its jobs, a publish its
        results) both keep their change."""
        with self._lock():
            try:
                saved = RunRecord.load(self.dir)
            except (OSError, ValueError):
                saved = None
            change(self)
            if saved is not None:
                change(saved)
                saved._write()
            else:
                self._write()

    def update(self, **values: Any) -> None:
        """Set run-level fields (``state``, ``finished``, ``flags``, ...) and save."""
        known = {f.name for f in fields(self)} - {"dir", "id", "jobs", "publishes"}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"RunRecord has no settable field {sorted(unknown)[0]!r}")

        def change(record: RunRecord) -> None:
            for name, value in values.items():
                setattr(record, name, RunState(value) if name == "state" else value)

        self._merge(change)

    def add_publish(self, attempt: PublishRecord) -> None:
        self._merge(lambda record: record.publishes.append(attempt))

    # -- jobs ---------------------------------------------------------------------------------

    def log_path(self, job_key: str) -> Path:
        return self.dir / f"{job_key}.log"

    def job(self, key: str) -> JobRecord:
        for job in self.jobs:
            if job.key == key:
                return job
        raise KeyError(key)

    def update_job(self, key: str, /, **values: Any) -> None:
        """Set fields of one job and save. An unknown field is a programming error."""
        known = {f.name for f in fields(JobRecord)}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"JobRecord has no field {sorted(unknown)[0]!r}")

        def change(record: RunRecord) -> None:
            job = record.job(key)
            for name, value in values.items():
                setattr(job, name, JobState(value) if name == "state" else value)

        self._merge(change)

    # -- sources ------------------------------------------------------------------------------

    def source_path(self, job_key: str) -> Path:
        return self.dir / f"{job_key}.source.json"

    def save_source(
        self, key: str, digest: str, files: Mapping[str, str], at: float, **values: Any
    ) -> None:
        """Keep the source manifest a job was just built from (beside the record, atomically)
        and its digest and time in the job's record, with further job fields ``values``."""
        text = json.dumps({"digest": digest, "at": at, "files": dict(files)}, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.source.", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.replace(tmp, self.source_path(key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.update_job(key, source=digest, source_at=at, **values)

    def source_files(self, key: str) -> dict[str, str] | None:
        """The manifest a job's recorded source holds (None: not saved, damaged, or another
        source than the one the record names)."""
        job = self.job(key)
        if job.source is None:
            return None
        cache_key = (key, job.source)
        if cache_key not in self._manifests:
            self._manifests[cache_key] = self._read_source(key, job.source)
        return self._manifests[cache_key]

    def _read_source(self, key: str, digest: str) -> dict[str, str] | None:
        try:
            data = json.loads(self.source_path(key).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("digest") != digest:
            return None
        files = data.get("files")
        if not isinstance(files, dict):
            return None
        return {str(k): str(v) for k, v in files.items()}

    def job_sources(self) -> list[JobSource]:
        """The source of each succeeded job (the arches an index would join); the manifests
        are read only when the digests differ (then the files are named)."""
        jobs = [j for j in self.jobs if j.state is JobState.SUCCEEDED]
        mixed = len({j.source for j in jobs if j.source}) > 1
        return [
            JobSource(
                j.arch,
                j.source,
                j.source_at,
                self.source_files(j.key) if mixed and j.source else None,
            )
            for j in jobs
        ]

    def current_sources(self) -> dict[str, str]:
        return {j.arch: j.source for j in self.jobs if j.source}

    def source_flags(self) -> list[Flag]:
        """Source-mismatch flags of the arches built; WARNINGs (saying overridden) when a
        publish already overrode exactly these sources."""
        flags = source_mismatch_flags(self.job_sources())
        if flags and self.mixed_sources_override() is not None:
            return override_mixed_sources(flags)
        return flags

    def mixed_sources_override(self) -> Override | None:
        """The latest recorded ``allow-mixed-sources`` override covering the current sources."""
        now = self.current_sources()
        for attempt in reversed(self.publishes):
            for override in attempt.overrides:
                if override.name == MIXED_SOURCES_OVERRIDE and override.sources == now:
                    return override
        return None

    def overrides(self) -> list[Override]:
        return [o for attempt in self.publishes for o in attempt.overrides]

    def built_images(self) -> list[BuiltImage]:
        """The succeeded jobs with a digest, for the post-build checks."""
        built = []
        for job in self.jobs:
            if job.state is not JobState.SUCCEEDED or not job.digest:
                continue
            try:
                platform = Platform.parse(job.platform)
            except ArchError:
                continue
            built.append(
                BuiltImage(
                    platform=platform,
                    digest=job.digest,
                    arch_tag=job.arch_tag,
                    before=job.arch_tag_before or None,
                    evidence=tuple(job.arch_evidence),
                    by_digest=job.by_digest,
                )
            )
        return built

    # -- publishing ---------------------------------------------------------------------------

    @property
    def last_publish(self) -> PublishRecord | None:
        return self.publishes[-1] if self.publishes else None

    def tag_results(self) -> dict[str, TagResult]:
        """Each release tag's latest outcome over every publish attempt of this run."""
        latest: dict[str, TagResult] = {}
        for attempt in self.publishes:
            for result in attempt.results:
                if result.outcome is not TagOutcome.NOT_ATTEMPTED or result.tag not in latest:
                    latest[result.tag] = result
        return latest

    def verdict(self) -> Verdict:
        """The run's verdict from its jobs, its open flags and its publishes.

        Worst first: a job still going, then lost, failed, cancelled jobs; then an error-level
        flag (built but blocked); then what the publishes achieved.
        """
        by_state: dict[JobState, list[str]] = {}
        for job in self.jobs:
            by_state.setdefault(job.state, []).append(job.arch)
        busy = [
            a
            for s in (JobState.QUEUED, JobState.UPLOADING, JobState.RUNNING)
            for a in by_state.get(s, ())
        ]
        if busy and self.state is RunState.RUNNING:
            return Verdict(VerdictKind.RUNNING, f"building {', '.join(busy)}")
        if lost := by_state.get(JobState.LOST):
            return Verdict(VerdictKind.LOST, f"{', '.join(lost)}: outcome unknown on the host")
        if failed := by_state.get(JobState.FAILED):
            return Verdict(VerdictKind.FAILED, f"{', '.join(failed)} failed")
        cancelled = by_state.get(JobState.CANCELLED, []) + busy
        if cancelled or self.state is RunState.CANCELLED:
            return Verdict(VerdictKind.CANCELLED, ", ".join(cancelled))
        if not self.jobs:
            return Verdict(VerdictKind.FAILED, "the run has no jobs")
        if missing := [j.arch for j in self.jobs if not j.digest]:
            return Verdict(VerdictKind.FAILED, f"{', '.join(missing)} recorded no digest")
        errors = [f for f in self.flags if f.severity == "error"]
        errors += [f for f in self.source_flags() if f.severity is Severity.ERROR]
        if errors:
            first = errors[0]
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            return Verdict(
                VerdictKind.BLOCKED, f"{first.kind} {first.subject}: {first.message}{more}"
            )
        if self.published:
            return Verdict(VerdictKind.PUBLISHED, ", ".join(self.tags))
        done = [t for t, r in self.tag_results().items() if r.verified and t in self.tags]
        if done:
            rest = [t for t in self.tags if t not in done]
            return Verdict(
                VerdictKind.PARTLY_PUBLISHED, f"{', '.join(done)} done; {', '.join(rest)} not"
            )
        return Verdict(VerdictKind.BUILT, "ready to publish")

    @property
    def published(self) -> bool:
        """Every release tag serves this run's index (verified by a publish)."""
        results = self.tag_results()
        return bool(self.tags) and all(t in results and results[t].verified for t in self.tags)


def list_runs(root: Path) -> list[RunRecord]:
    """Every readable run, newest first; a damaged record is skipped, not fatal."""
    runs_dir = root / "runs"
    if not runs_dir.is_dir():
        return []
    records = []
    for path in runs_dir.iterdir():
        try:
            records.append(RunRecord.load(path))
        except (OSError, ValueError):
            continue
    records.sort(key=lambda r: (r.created, r.id), reverse=True)
    return records


def release_runs(root: Path, release: str) -> list[RunRecord]:
    """The runs of one release (one per image), in the order their images were configured
    (the order they were created in)."""
    runs = [r for r in list_runs(root) if r.release == release]
    return sorted(runs, key=lambda r: (r.created, r.id))


def unfinished_runs(root: Path, image: str | None = None) -> list[RunRecord]:
    """Runs an earlier matui left with builds still going (newest first)."""
    return [
        r
        for r in list_runs(root)
        if r.state is RunState.RUNNING and (image is None or r.image == image)
    ]


def find_run(root: Path, run_id: str | None, image: str | None = None) -> RunRecord:
    """A run by id (a unique prefix will do), else the newest run, of ``image`` when given."""
    runs = [r for r in list_runs(root) if image is None or r.image == image]
    if run_id:
        matches = [r for r in runs if r.id == run_id or r.id.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise LookupError(f"no run {run_id!r} under {root / 'runs'}; `matui runs` lists them")
        raise LookupError(f"run id {run_id!r} is ambiguous: {', '.join(r.id for r in matches)}")
    if not runs:
        what = f" of {image}" if image else ""
        raise LookupError(f"no run{what} recorded yet; start one with `matui build`")
    return runs[0]
