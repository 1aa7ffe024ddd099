"""Publishing a run: join its per-arch digests into one index under each release tag.

One function pair serves both front ends. :func:`preview_publish` says what would happen — the
index per tag, what each tag serves now, the platform-by-platform diff, the open flags, which
tags already serve this very index (they are left alone) and, when publishing must not go
ahead, why, in one line. :func:`publish` takes the preview the operator confirmed, refuses if a
tag moved since, pushes **tag by tag** (one ``imagetools create`` per tag that needs it, so one
refused tag does not hide the others' fate), reads each tag back from the registry and records
the attempt with a result per tag. Every failure that can be expected (the registry, buildx,
SSH, the filesystem) ends as one line naming what failed, how to fix it, and which tags moved;
no exception of theirs leaves this module through the pair.

Sources are pinned by digest in the *same* repository as the tag (so buildx pushes only the
index, never a child under the release tag) and sorted by platform (the index digest depends on
source order, so the same run always yields the same index, tag after tag, attempt after
attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from matui.engine import shell
from matui.engine.arch import ArchError, Platform
from matui.engine.config import ConfigError
from matui.engine.flags import (
    Flag,
    PlatformChange,
    RegistryReader,
    Severity,
    index_diffs,
    premanifest_flags,
    read_tags,
)
from matui.engine.flags.model import FlagKind
from matui.engine.flags.sources import MIXED_SOURCES_OVERRIDE, override_mixed_sources
from matui.engine.plan import IndexPlan, IndexSource
from matui.engine.records import JobState, Override, PublishRecord, TagOutcome, TagResult
from matui.engine.refs import RefError, check_digest, check_tag, parse_repository
from matui.engine.registry import RegistryError
from matui.engine.ssh import SshError
from matui.engine.text import neutralise

if TYPE_CHECKING:
    from matui.engine.config import Config
    from matui.engine.records import RunRecord
    from matui.engine.registry import Manifest, RegistryClient
    from matui.engine.ssh import SshPool


class ManifestRefused(Exception):
    """The index must not be pushed; the message says why and what to do."""

    def __init__(self, message: str, flags: Sequence[Flag] = ()) -> None:
        super().__init__(message)
        self.flags = list(flags)


class IndexCreateFailed(RuntimeError):
    """``imagetools create`` failed; the message is one line: where, the exit code, buildx's
    (the registry's) answer.

    ``ran`` is False when buildx could not even be started (no docker CLI, the builder host
    unreachable): then nothing was tried, and no other tag will fare better.
    """

    def __init__(self, message: str, *, ran: bool = True) -> None:
        super().__init__(message)
        self.ran = ran


class PublishFailed(RuntimeError):
    """:func:`push_index` could not make every tag serve the index; the message is the report's
    one line."""

    def __init__(self, message: str, report: PublishReport | None = None) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------------------------
# One line for one failure

_MAX_LINE = 600


def one_line(text: str, limit: int = _MAX_LINE) -> str:
    """``text`` made inert and flat: no control characters, no line breaks, bounded."""
    flat = " ".join(neutralise(part) for part in text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_AUTH_RE = re.compile(
    r"\b401\b|unauthori[sz]ed|no basic auth credentials|authorization failed|"
    r"authentication required",
    re.IGNORECASE,
)
_COMMIT_RE = re.compile(r'^failed commit on ref "[^"]*": ')


def buildx_answer(stderr: str) -> str:
    """The line of buildx's stderr that says why: its last ``ERROR:`` line (which carries the
    registry's answer, e.g. ``unexpected status from PUT request to …: 403 Forbidden``)."""
    lines = [neutralise(line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.startswith("ERROR:")]
    answer = errors[-1] if errors else (lines[-1] if lines else "")
    answer = _COMMIT_RE.sub("", answer.removeprefix("ERROR:").strip())
    return one_line(answer) or "no error output"


def _login_hint(answer: str, registry_host: str) -> str:
    if _AUTH_RE.search(answer):
        return f"; {registry_host} needs a login: log in with `docker login {registry_host}`"
    return ""


def failure_line(exc: BaseException) -> str:
    """One line for an error the registry client, SSH, buildx or the filesystem raised."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return one_line(f"{where}{exc.strerror}")
    return one_line(str(exc)) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# The index a run makes


def _job_problems(record: RunRecord) -> list[str]:
    problems = []
    for job in record.jobs:
        if not job.state.finished:
            continue
        if job.state is not JobState.SUCCEEDED:
            detail = job.failing_step or job.error or ""
            problems.append(f"{job.arch} is {job.state}{': ' + detail if detail else ''}")
        elif not job.digest:
            problems.append(f"{job.arch} succeeded but recorded no digest")
    if not record.jobs:
        problems.append("the run has no jobs")
    return problems


def _still_building(record: RunRecord) -> list[str]:
    return [job.arch for job in record.jobs if not job.state.finished]


def _error_reasons(flags: Sequence[Flag]) -> list[str]:
    return [
        f"open {f.kind} error on {f.subject}: {f.message}"
        for f in flags
        if f.severity is Severity.ERROR
    ]


def _make_plan(record: RunRecord, tags: Sequence[str] | None) -> IndexPlan:
    """The index of a run whose jobs all succeeded. Raises RefError/ArchError for a damaged
    record."""
    repo = parse_repository(record.image)
    sources = sorted(
        (
            IndexSource(
                Platform.parse(job.platform),
                check_digest(job.digest or ""),
                repo.digest(job.digest or ""),
                job.pushed_as,
            )
            for job in record.jobs
        ),
        key=lambda s: str(s.platform),
    )
    run_tags = tuple(dict.fromkeys(tags)) if tags else tuple(record.tags)
    return IndexPlan(repo, run_tags, tuple(sources))


async def resolve_sources(plan: IndexPlan, registry: RegistryReader) -> IndexPlan:
    """``plan`` with each by-digest source that is an index (a build with attestations: the
    image and its attestation manifest) knowing the image manifest in it, which is what the
    new index serves for its platform (:attr:`IndexSource.served`): the diff and the read-back
    compare that. A source not found stays as it is (the pre-publish checks name it)."""

    async def one(source: IndexSource) -> IndexSource:
        if not source.by_digest:
            return source
        manifest = await registry.get_manifest(plan.repository, source.digest)
        if manifest is None or not manifest.is_index:
            return source
        images = [e for e in manifest.entries if not e.attestation]
        mine = [e for e in images if e.platform == source.platform] or images
        return replace(source, served=mine[0].digest) if len(mine) == 1 else source

    sources = await asyncio.gather(*(one(s) for s in plan.sources))
    return replace(plan, sources=tuple(sources))


def plan_index(record: RunRecord, tags: Sequence[str] | None = None) -> IndexPlan:
    """The index a run would produce.

    Refuses when any arch did not succeed or an error-level flag of the run is open.
    """
    problems = [f"still building {a}" for a in _still_building(record)]
    problems += _job_problems(record) + _error_reasons(record.flags)
    if problems:
        raise ManifestRefused(
            f"run {record.id}: not pushing the index: "
            + "; ".join(problems)
            + "; fix the cause and build again (`matui build`), then publish"
        )
    return _make_plan(record, tags)


def index_problems(plan: IndexPlan, manifest: Manifest | None) -> list[str]:
    """What keeps ``manifest`` from being exactly ``plan``'s index: an index whose platforms
    are the plan's, each child the digest built (attestations aside). Empty: it is."""
    if manifest is None:
        return ["it does not exist"]
    if not manifest.is_index:
        return [f"it is a single-arch manifest ({manifest.media_type}), not an index"]
    expected = {str(s.platform): s.platform_digest for s in plan.sources}
    got: dict[str, str] = {}
    problems = []
    for entry in manifest.entries:
        if entry.attestation:
            continue
        name = str(entry.platform) if entry.platform else (entry.platform_text or "unknown")
        if name in got:
            problems.append(f"{name} is listed twice")
        got[name] = entry.digest
    problems += [f"{name} is missing" for name in sorted(set(expected) - set(got))]
    problems += [
        f"{name} is served but was not built in this run"
        for name in sorted(set(got) - set(expected))
    ]
    problems += [
        f"{name} serves {got[name]} but the build made {expected[name]}"
        for name in sorted(set(expected) & set(got))
        if expected[name] != got[name]
    ]
    return problems


def _served_platforms(manifest: Manifest) -> list[str]:
    return [
        str(e.platform) if e.platform else (e.platform_text or "unknown")
        for e in manifest.entries
        if not e.attestation
    ]


# --------------------------------------------------------------------------------------------
# Where the index is made


_BUILDX_TTL = 30.0
"""Seconds a `docker buildx version` answer is reused: every push asks twice (where the index is
created, then the checks' buildx version), and each ask starts the docker CLI (~60 ms)."""
_buildx_seen: dict[tuple[str | None, ...], tuple[float, str | None]] = {}


def local_buildx_version() -> str | None:
    """`docker buildx version` here, or None when this machine cannot create the index itself."""
    key = tuple(os.environ.get(name) for name in ("PATH", "DOCKER_HOST", "DOCKER_CONFIG"))
    seen = _buildx_seen.get(key)
    if seen is not None and time.monotonic() - seen[0] < _BUILDX_TTL:
        return seen[1]
    version = _ask_buildx_version()
    _buildx_seen[key] = (time.monotonic(), version)
    return version


def _ask_buildx_version() -> str | None:
    if shutil.which("docker") is None:
        return None
    try:
        probe = subprocess.run(
            ["docker", "buildx", "version"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    return probe.stdout.decode("utf-8", "replace").strip() or None


def local_buildx_available() -> bool:
    return local_buildx_version() is not None


def index_host(record: RunRecord, config: Config | None) -> str | None:
    """Where `imagetools create` runs: here (None) when this machine has docker + buildx, else
    a builder host that ran this build (it has buildx and reaches the registry)."""
    if local_buildx_available():
        return None
    if config is None:
        raise ManifestRefused(
            "no docker CLI with buildx here, and no config to pick a builder host to run "
            "`imagetools create` on"
        )
    names = {h.name for h in config.hosts}
    for job in record.jobs:
        if job.host in names:
            return job.host
    raise ManifestRefused(
        "no docker CLI with buildx here, and none of the run's builder hosts is in the config "
        "any more to run `imagetools create` on"
    )


async def check_index(
    record: RunRecord,
    plan: IndexPlan,
    registry: RegistryClient,
    confirmed: dict[str, str | None] | None,
    *,
    config: Config | None = None,
    host: str | None = None,
    state: dict[str, Manifest | None] | None = None,
    allow_mixed_sources: bool = False,
) -> list[Flag]:
    """Every check due right before `imagetools create`, with the facts gathered in one place:
    the planned and retired platforms, the buildx version of wherever the merge runs, and the
    source each arch was built from (mixed sources are an ERROR unless ``allow_mixed_sources``,
    the operator's explicit override, makes them a WARNING)."""
    planned = [Platform.parse(p) for p in record.platforms]
    retired: tuple[Platform, ...] = ()
    if config is not None:
        with contextlib.suppress(ConfigError):
            retired = config.image(record.image).retired_platforms
    if host is None:
        buildx = local_buildx_version()
    else:
        buildx = next((p.buildx_version for p in record.hosts if p.name == host), None)
    flags = await premanifest_flags(
        plan,
        registry,
        confirmed,
        planned=planned or None,
        retired=retired,
        buildx_version=buildx,
        merge_host=host,
        state=state,
    )
    sources = record.source_flags()
    return flags + (override_mixed_sources(sources) if allow_mixed_sources else sources)


async def create_index(
    plan: IndexPlan,
    *,
    config: Config | None = None,
    pool: SshPool | None = None,
    host: str | None = None,
    dry_run: bool = False,
    tags: Sequence[str] | None = None,
) -> str:
    """Run `docker buildx imagetools create` here (python-on-whales) or on a builder host, for
    ``tags`` (default: every tag of the plan).

    Returns buildx's output (the index JSON on a dry run). Raises :class:`IndexCreateFailed`
    (one line) for every failure: buildx's answer, docker missing, the host unreachable.
    """
    targets = [plan.target(t) for t in (plan.tags if tags is None else tags)]
    registry_host = plan.repository.registry
    if host is None:
        # Imported here: `matui --help` must not load python-on-whales.
        from python_on_whales import docker
        from python_on_whales.exceptions import DockerException

        def run_local() -> str:
            result = docker.buildx.imagetools.create(
                sources=plan.source_refs, tags=targets, dry_run=dry_run
            )
            return (
                ""
                if result is None
                else result.model_dump_json(indent=2, by_alias=True, exclude_none=True)
            )

        try:
            return await asyncio.to_thread(run_local)
        except DockerException as exc:
            answer = buildx_answer(exc.stderr or exc.stdout or "")
            raise IndexCreateFailed(
                f"imagetools create here failed (exit {exc.return_code}): {answer}"
                + _login_hint(answer, registry_host)
            ) from None
        except Exception as exc:  # python-on-whales' own "no docker client" and OSErrors
            raise IndexCreateFailed(
                f"imagetools create here could not run: {failure_line(exc)}", ran=False
            ) from None
    if config is None or pool is None:
        raise IndexCreateFailed(
            "creating the index on a builder host needs the config and an SSH pool", ran=False
        )
    argv = shell.imagetools_create_argv(targets, plan.source_refs, dry_run=dry_run)
    try:
        result = await pool.run(config.host(host), shell.RemoteScript.from_argv(argv))
    except (SshError, OSError, ConfigError) as exc:
        raise IndexCreateFailed(
            f"imagetools create on {host} could not run: {failure_line(exc)}", ran=False
        ) from None
    if result.exit_status is None:
        raise IndexCreateFailed(
            f"imagetools create on {host}: the SSH connection was lost before it ended "
            "(the tag may or may not have moved)"
        )
    if not result.ok:
        answer = buildx_answer(result.err_text())
        raise IndexCreateFailed(
            f"imagetools create on {host} failed (exit {result.exit_status}): {answer}"
            + _login_hint(answer, registry_host)
        )
    return result.out_text()


async def verify_index(plan: IndexPlan, tag: str, registry: RegistryClient) -> TagResult:
    """Read ``tag`` back: VERIFIED when it is exactly the plan's index, else UNVERIFIED naming
    what differs. Raises RegistryError when the registry cannot be read."""
    result = TagResult(tag, plan.target(tag))
    manifest = await registry.get_manifest(plan.repository, tag)
    return _read_back(plan, result, manifest)


def _read_back(plan: IndexPlan, result: TagResult, manifest: Manifest | None) -> TagResult:
    problems = index_problems(plan, manifest)
    if manifest is not None:
        result.digest = manifest.digest
        result.platforms = _served_platforms(manifest)
    if problems:
        result.outcome = TagOutcome.UNVERIFIED
        result.error = f"{result.ref}: " + "; ".join(problems)
    else:
        result.outcome = TagOutcome.VERIFIED
        result.error = None
    return result


def after_failed_push(
    plan: IndexPlan, tag: str, before: str | None, now: Manifest | None, error: str
) -> TagResult:
    """A tag whose ``imagetools create`` failed, judged by what it serves afterwards: it did
    not move (REFUSED, with buildx's answer), it serves the index anyway (VERIFIED), or it
    moved to something else (UNVERIFIED)."""
    result = TagResult(tag, plan.target(tag), before=before)
    if now is None or now.digest == before:
        result.outcome = TagOutcome.REFUSED
        result.digest = now.digest if now else None
        result.platforms = _served_platforms(now) if now else []
        result.error = error
        return result
    _read_back(plan, result, now)
    if result.outcome is TagOutcome.UNVERIFIED:
        result.error = f"{error}; and the tag moved: {result.error}"
    return result


def open_flags(record: RunRecord, fresh: Sequence[Flag]) -> list[Flag]:
    """What the operator sees before publishing: the checks just made, then the run's own
    flags (build and post-build) that they do not already say."""
    seen = [flag.to_json() for flag in fresh]
    return [*fresh, *(flag for flag in record.flags if flag.to_json() not in seen)]


# --------------------------------------------------------------------------------------------
# The pair


def _short(digest: str | None) -> str:
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:19]


@dataclass(frozen=True)
class TagPreview:
    """One release tag before publishing: what it serves now and what would change."""

    tag: str
    ref: str
    #: Digest the tag serves now (None: the tag does not exist).
    now: str | None
    now_is_index: bool
    changes: tuple[PlatformChange, ...]
    #: The tag already serves exactly this index: it will not be pushed.
    serves_index: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "ref": self.ref,
            "now": self.now,
            "now_is_index": self.now_is_index,
            "serves_index": self.serves_index,
            "diff": [c.to_json() for c in self.changes],
        }


@dataclass(frozen=True, eq=False)
class PublishPreview:
    """What :func:`publish` would do, for the operator to confirm.

    ``plan`` is None when the run cannot make an index at all (an arch not built); ``tags`` is
    empty then, or when the registry could not be read. ``blocked`` is the one-line reason
    publishing must not go ahead (None: it may).
    """

    record: RunRecord
    plan: IndexPlan | None
    #: Where `imagetools create` runs: None here, else the builder host's name.
    host: str | None
    tags: tuple[TagPreview, ...]
    flags: tuple[Flag, ...]
    blocked: str | None
    #: The operator explicitly allowed arches built from different sources (recorded).
    allow_mixed_sources: bool = False

    @property
    def blocked_by_sources(self) -> bool:
        """Blocked only by arches built from different sources: the explicit override
        (``allow_mixed_sources``) would let it go ahead."""
        errors = [f for f in self.flags if f.severity is Severity.ERROR]
        return (
            self.blocked is not None
            and bool(errors)
            and all(f.kind is FlagKind.SOURCE_MISMATCH for f in errors)
        )

    @property
    def to_push(self) -> list[str]:
        """Tags that do not serve the index yet."""
        return [t.tag for t in self.tags if not t.serves_index]

    @property
    def nothing_to_push(self) -> bool:
        """Every tag already serves this index: publishing is a no-op."""
        return bool(self.tags) and not self.to_push

    @property
    def confirmed(self) -> dict[str, str | None]:
        """What each tag served when the operator looked: a tag that moves since is refused."""
        return {t.tag: t.now for t in self.tags}

    @property
    def via(self) -> str:
        return self.host or "local"

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "run": self.record.id,
            "repository": str(plan.repository) if plan else None,
            "via": self.via,
            "tag": plan.tags[0] if plan and plan.tags else None,
            "tags": list(plan.tags) if plan else [],
            "platforms": [str(s.platform) for s in plan.sources] if plan else [],
            "sources": plan.source_refs if plan else [],
            "preview": [t.to_json() for t in self.tags],
            "diff": {t.tag: [c.to_json() for c in t.changes] for t in self.tags},
            "flags": [f.to_json() for f in self.flags],
            "blocked": self.blocked,
            "allow_mixed_sources": self.allow_mixed_sources,
        }


async def preview_publish(
    record: RunRecord,
    *,
    registry: RegistryClient,
    config: Config | None,
    tags: Sequence[str] | None = None,
    allow_mixed_sources: bool = False,
) -> PublishPreview:
    """What publishing ``record`` to ``tags`` (default: the run's) would do. Never raises for
    an expected failure: a registry that cannot be read, a login missing, an arch not built, an
    error flag, arches built from different sources (unless ``allow_mixed_sources``: the
    operator's explicit override, recorded by :func:`publish`) or a per-arch image gone from
    the registry all end in ``blocked``."""

    def blocked(
        reason: str,
        plan: IndexPlan | None = None,
        host: str | None = None,
        flags: Sequence[Flag] = (),
    ) -> PublishPreview:
        return PublishPreview(record, plan, host, (), tuple(flags), one_line(reason))

    if busy := _still_building(record):
        return blocked(
            f"still building: {', '.join(busy)}; wait for every arch to end", flags=record.flags
        )
    if problems := _job_problems(record):
        return blocked(
            "not publishing: "
            + "; ".join(problems)
            + "; fix the cause and build again (`matui build`, or r on the failed pane)",
            flags=record.flags,
        )
    try:
        for tag in tags or ():
            check_tag(tag)
    except RefError as exc:
        return blocked(f"not publishing: {exc}", flags=record.flags)
    try:
        plan = _make_plan(record, tags)
    except (RefError, ArchError) as exc:
        return blocked(f"run {record.id}'s record is damaged: {failure_line(exc)}")
    if not plan.tags:
        return blocked("no release tag to publish to: pass --tag or set tags for the image", plan)
    try:
        host = index_host(record, config)
    except ManifestRefused as exc:
        return blocked(str(exc), plan, flags=record.flags)
    try:
        plan = await resolve_sources(plan, registry)
        state = await read_tags(registry, plan.repository, plan.tags)
        diffs = await index_diffs(plan, registry, state=state)
        fresh = await check_index(
            record,
            plan,
            registry,
            None,
            config=config,
            host=host,
            state=state,
            allow_mixed_sources=allow_mixed_sources,
        )
    except (RegistryError, OSError) as exc:
        return blocked(
            f"cannot check {plan.repository} before publishing: {failure_line(exc)}; "
            "nothing was pushed",
            plan,
            host,
            record.flags,
        )
    flags = open_flags(record, fresh)
    previews = tuple(
        TagPreview(
            tag,
            plan.target(tag),
            m.digest if (m := state.get(tag)) else None,
            bool(m and m.is_index),
            tuple(diffs[tag]),
            not index_problems(plan, state.get(tag)),
        )
        for tag in plan.tags
    )
    reason = None
    if errors := _error_reasons(flags):
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        reason = f"not publishing: {errors[0]}{more}; nothing was pushed"
    return PublishPreview(
        record,
        plan,
        host,
        previews,
        tuple(flags),
        one_line(reason) if reason else None,
        allow_mixed_sources=allow_mixed_sources,
    )


@dataclass
class PublishReport:
    """What :func:`publish` did, tag by tag."""

    preview: PublishPreview
    results: list[TagResult]
    flags: list[Flag] = field(default_factory=list)
    #: Why the publish stopped before or while pushing (one line; None: it went through).
    error: str | None = None
    #: Why the attempt could not be saved in the run record (one line), if it could not.
    record_error: str | None = None
    #: Error flags the operator explicitly overrode for this attempt (recorded with it).
    overrides: list[Override] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every tag serves the index (pushed and verified, or already did)."""
        return bool(self.results) and all(r.verified for r in self.results)

    @property
    def no_op(self) -> bool:
        """Every tag already served this index: nothing was pushed."""
        return self.ok and all(r.outcome is TagOutcome.UNCHANGED for r in self.results)

    @property
    def moved(self) -> list[str]:
        """Tags this attempt pushed (whatever they serve now)."""
        return [r.tag for r in self.results if r.pushed]

    @property
    def digest(self) -> str | None:
        """The index digest the tags serve (the first verified tag's)."""
        return next((r.digest for r in self.results if r.verified and r.digest), None)

    def line(self) -> str:
        """The outcome in one line."""
        if self.ok:
            refs = ", ".join(r.ref for r in self.results)
            verb = "serves" if len(self.results) == 1 else "serve"
            if self.no_op:
                return f"already published: {refs} already {verb} this index {self.digest}"
            kept = [r.tag for r in self.results if r.outcome is TagOutcome.UNCHANGED]
            also = f" ({', '.join(kept)} already did)" if kept else ""
            over = "".join(
                f"; arches from different sources, allowed: {o.line()} (recorded)"
                for o in self.overrides
            )
            return f"published and verified: {refs} {verb} index {self.digest}{also}{over}"
        failed = [
            f"{r.tag} {r.outcome}" + (f": {r.error}" if r.error else "")
            for r in self.results
            if not r.verified and (r.error or r.outcome is not TagOutcome.NOT_ATTEMPTED)
        ]
        skipped = [r.tag for r in self.results if r.outcome is TagOutcome.NOT_ATTEMPTED]
        parts = [self.error] if self.error else []
        parts += failed
        if skipped:
            parts.append(f"not attempted: {', '.join(skipped)}")
        served = [r.tag for r in self.results if r.verified]
        if self.moved:
            parts.append(
                f"moved: {', '.join(self.moved)}"
                + (f"; serving the index: {', '.join(served)}" if served else "")
                + "; `matui manifest` again completes the rest"
            )
        elif not any("nothing was pushed" in part for part in parts):
            parts.append(
                "nothing was pushed"
                + (f" ({', '.join(served)} already served the index)" if served else "")
            )
        return one_line("; ".join(parts), limit=4 * _MAX_LINE)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "no_op": self.no_op,
            "digest": self.digest,
            "moved": self.moved,
            "results": [r.to_json() for r in self.results],
            "error": self.error,
            "record_error": self.record_error,
            "overrides": [o.to_json() for o in self.overrides],
            "line": self.line(),
        }


async def publish(
    preview: PublishPreview,
    *,
    registry: RegistryClient,
    config: Config | None,
    pool: SshPool | None,
) -> PublishReport:
    """Push the confirmed ``preview``: re-check (a tag that moved since the preview, or any
    other error flag, refuses the whole publish: nothing is pushed), then for each tag that does
    not serve the index yet one ``imagetools create``, then read it back. Tags that already
    serve it are UNCHANGED and not pushed. The attempt is recorded in the run record (unless
    the preview was blocked: then nothing was tried and nothing is recorded)."""
    record, plan = preview.record, preview.plan
    if preview.blocked or plan is None:
        reason = preview.blocked or "nothing to publish"
        return PublishReport(preview, [], list(preview.flags), error=reason)
    results = [TagResult(t, plan.target(t)) for t in plan.tags]
    report = PublishReport(preview, results)
    try:
        state = await read_tags(registry, plan.repository, plan.tags)
        fresh = await check_index(
            record,
            plan,
            registry,
            preview.confirmed,
            config=config,
            host=preview.host,
            state=state,
            allow_mixed_sources=preview.allow_mixed_sources,
        )
    except (RegistryError, OSError) as exc:
        report.flags = list(preview.flags)
        report.error = f"cannot check {plan.repository} before pushing: {failure_line(exc)}"
        return _record(report)
    report.flags = open_flags(record, fresh)
    if errors := _error_reasons(report.flags):
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        report.error = f"not publishing: {errors[0]}{more}"
        return _record(report)
    for index, result in enumerate(results):
        current = state.get(result.tag)
        result.before = current.digest if current else None
        if not index_problems(plan, current):
            result.outcome = TagOutcome.UNCHANGED
            result.digest = result.before
            result.platforms = _served_platforms(current) if current else []
            continue
        try:
            await create_index(plan, config=config, pool=pool, host=preview.host, tags=[result.tag])
        except IndexCreateFailed as exc:
            if not exc.ran:
                # Nothing ran (no docker here, the host unreachable): no tag will fare better.
                report.error = str(exc)
                for rest in results[index:]:
                    rest.before = m.digest if (m := state.get(rest.tag)) else None
                break
            results[index] = await _judge_failed(plan, result, registry, str(exc))
            continue
        try:
            fresh_result = await verify_index(plan, result.tag, registry)
        except (RegistryError, OSError) as exc:
            result.outcome = TagOutcome.UNVERIFIED
            result.error = f"pushed, but could not read {result.ref} back: {failure_line(exc)}"
            continue
        fresh_result.before = result.before
        results[index] = fresh_result
    return _record(report)


async def _judge_failed(
    plan: IndexPlan, result: TagResult, registry: RegistryClient, error: str
) -> TagResult:
    try:
        now = await registry.get_manifest(plan.repository, result.tag)
    except (RegistryError, OSError) as exc:
        result.outcome = TagOutcome.REFUSED
        result.error = f"{error} (and {result.ref} could not be read back: {failure_line(exc)})"
        return result
    return after_failed_push(plan, result.tag, result.before, now, error)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in the environment nor the password database
        return "unknown"


def _record(report: PublishReport) -> PublishReport:
    preview = report.preview
    assert preview.plan is not None
    overridden = [
        f.message
        for f in report.flags
        if f.kind is FlagKind.SOURCE_MISMATCH and f.severity is not Severity.ERROR
    ]
    if preview.allow_mixed_sources and overridden:
        report.overrides.append(
            Override(
                MIXED_SOURCES_OVERRIDE,
                time.time(),
                _user(),
                preview.record.current_sources(),
                overridden,
            )
        )
    try:
        preview.record.add_publish(
            PublishRecord(
                time.time(),
                preview.via,
                preview.plan.to_json(),
                list(report.results),
                list(report.flags),
                error=None if report.ok else report.line(),
                overrides=list(report.overrides),
            )
        )
    except (OSError, ValueError) as exc:
        report.record_error = (
            f"could not save the publish in run {preview.record.id}'s record: {failure_line(exc)}"
        )
    return report


async def dry_run_index(
    preview: PublishPreview, *, config: Config | None, pool: SshPool | None
) -> str:
    """The index JSON buildx would push (``imagetools create --dry-run``); pushes nothing.
    Raises :class:`PublishFailed` (one line) when buildx fails."""
    if preview.plan is None or preview.blocked:
        raise PublishFailed(preview.blocked or "nothing to publish")
    try:
        return await create_index(
            preview.plan, config=config, pool=pool, host=preview.host, dry_run=True
        )
    except IndexCreateFailed as exc:
        raise PublishFailed(f"{exc}; nothing was pushed") from None


async def push_index(
    record: RunRecord,
    registry: RegistryClient,
    *,
    tags: Sequence[str] | None = None,
    config: Config | None = None,
    pool: SshPool | None = None,
) -> list[TagResult]:
    """Preview and publish in one go, for scripts and benchmarks: the per-tag results when
    every tag serves the index; else :class:`ManifestRefused` (blocked before anything was
    tried) or :class:`PublishFailed` (the report's one line)."""
    preview = await preview_publish(record, registry=registry, config=config, tags=tags)
    if preview.blocked:
        raise ManifestRefused(preview.blocked, preview.flags)
    report = await publish(preview, registry=registry, config=config, pool=pool)
    if not report.ok:
        raise PublishFailed(report.line(), report)
    return report.results
