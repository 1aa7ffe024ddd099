"""Join a run's per-arch digests into one index under each release tag, then prove it landed.

Sources are pinned by digest in the *same* repository as the tag (so buildx pushes only the
index, never a child under the release tag) and sorted by platform (the index digest depends on
source order, so the same run always yields the same index).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from matui.engine import shell
from matui.engine.arch import Platform
from matui.engine.config import ConfigError
from matui.engine.flags import Flag, Severity, has_errors, premanifest_flags, read_tags
from matui.engine.plan import IndexPlan, IndexSource
from matui.engine.records import JobState, PublishRecord, TagOutcome, TagResult
from matui.engine.refs import check_digest, parse_repository

if TYPE_CHECKING:
    from matui.engine.config import Config
    from matui.engine.records import RunRecord
    from matui.engine.registry import RegistryClient
    from matui.engine.ssh import SshPool


class ManifestRefused(Exception):
    """The index must not be pushed; the message says why and what to do."""

    def __init__(self, message: str, flags: Sequence[Flag] = ()) -> None:
        super().__init__(message)
        self.flags = list(flags)


class VerifyError(Exception):
    """The registry does not serve what was pushed."""


def plan_index(record: RunRecord, tags: Sequence[str] | None = None) -> IndexPlan:
    """The index a run would produce.

    Refuses when any arch did not succeed or an error-level flag is open.
    """
    repo = parse_repository(record.image)
    jobs = record.jobs
    problems = []
    for job in jobs:
        if job.state is not JobState.SUCCEEDED:
            detail = job.failing_step or job.error or ""
            problems.append(f"{job.arch} is {job.state}{': ' + detail if detail else ''}")
        elif not job.digest:
            problems.append(f"{job.arch} succeeded but recorded no digest")
    errors = [f for f in record.flags if f.severity is Severity.ERROR]
    problems += [f"open {f.kind} error on {f.subject}: {f.message}" for f in errors]
    if not jobs:
        problems.append("the run has no jobs")
    if problems:
        raise ManifestRefused(
            f"run {record.id}: not pushing the index:\n  - "
            + "\n  - ".join(problems)
            + "\nfix the cause and rebuild (`matui build`), then push again"
        )
    sources = sorted(
        (
            IndexSource(
                Platform.parse(job.platform),
                check_digest(job.digest or ""),
                repo.digest(job.digest or ""),
            )
            for job in jobs
        ),
        key=lambda s: str(s.platform),
    )
    run_tags = tuple(tags) if tags else tuple(record.tags)
    return IndexPlan(repo, run_tags, tuple(sources))


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


async def check_index(
    record: RunRecord,
    plan: IndexPlan,
    registry: RegistryClient,
    confirmed: dict[str, str | None] | None,
    *,
    config: Config | None = None,
    host: str | None = None,
) -> list[Flag]:
    """Every check due right before `imagetools create`, with the facts gathered in one place:
    the planned and retired platforms, and the buildx version of wherever the merge runs."""
    planned = [Platform.parse(p) for p in record.platforms]
    retired: tuple[Platform, ...] = ()
    if config is not None:
        with contextlib.suppress(ConfigError):
            retired = config.image(record.image).retired_platforms
    if host is None:
        buildx = local_buildx_version()
    else:
        buildx = next((p.buildx_version for p in record.hosts if p.name == host), None)
    return await premanifest_flags(
        plan,
        registry,
        confirmed,
        planned=planned or None,
        retired=retired,
        buildx_version=buildx,
        merge_host=host,
    )


async def create_index(
    plan: IndexPlan,
    *,
    config: Config | None = None,
    pool: SshPool | None = None,
    host: str | None = None,
    dry_run: bool = False,
) -> str:
    """Run `docker buildx imagetools create` here (python-on-whales) or on a builder host.

    Returns buildx's output (the index JSON on a dry run).
    """
    if host is None:
        from python_on_whales import docker
        from python_on_whales.exceptions import DockerException

        def run_local() -> str:
            try:
                result = docker.buildx.imagetools.create(
                    sources=plan.source_refs,
                    tags=[plan.target(t) for t in plan.tags],
                    dry_run=dry_run,
                )
            except DockerException as exc:
                # Callers handle a failed push as RuntimeError, as on a builder host below;
                # python-on-whales' own type got past the dashboard's handler.
                raise RuntimeError(
                    f"imagetools create here failed (exit {exc.return_code}): "
                    f"{(exc.stderr or '').strip()[-1000:]}"
                ) from exc
            return (
                ""
                if result is None
                else result.model_dump_json(indent=2, by_alias=True, exclude_none=True)
            )

        return await asyncio.to_thread(run_local)
    if config is None or pool is None:
        raise ValueError("creating the index on a builder host needs the config and an SSH pool")
    argv = shell.imagetools_create_argv(
        [plan.target(t) for t in plan.tags], plan.source_refs, dry_run=dry_run
    )
    result = await pool.run(config.host(host), shell.RemoteScript.from_argv(argv))
    if not result.ok:
        raise RuntimeError(
            f"imagetools create on {host} failed (exit {result.exit_status}): "
            f"{result.err_text().strip()[-1000:]}"
        )
    return result.out_text()


async def verify_index(plan: IndexPlan, tag: str, registry: RegistryClient) -> TagResult:
    """The tag is an index whose platforms are exactly the plan's, each child the digest built."""
    result = TagResult(tag, plan.target(tag))
    manifest = await registry.get_manifest(plan.repository, tag)
    if manifest is None:
        result.error = f"{result.ref} does not exist after the push"
        result.outcome = TagOutcome.UNVERIFIED
        return result
    result.digest = manifest.digest
    if not manifest.is_index:
        result.error = (
            f"{result.ref} is a single-arch manifest ({manifest.media_type}), not an index"
        )
        result.outcome = TagOutcome.UNVERIFIED
        return result
    served = [e for e in manifest.entries if not e.attestation]
    result.platforms = [str(e.platform) for e in served]
    expected = {str(s.platform): s.digest for s in plan.sources}
    got: dict[str, str] = {}
    problems = []
    for entry in served:
        name = str(entry.platform)
        if name in got:
            problems.append(f"{name} is listed twice")
        got[name] = entry.digest
    for name in sorted(set(expected) - set(got)):
        problems.append(f"{name} is missing")
    for name in sorted(set(got) - set(expected)):
        problems.append(f"{name} is served but was not built in this run")
    for name in sorted(set(expected) & set(got)):
        if expected[name] != got[name]:
            problems.append(f"{name} serves {got[name]} but the build made {expected[name]}")
    if problems:
        result.error = f"{result.ref}: " + "; ".join(problems)
        result.outcome = TagOutcome.UNVERIFIED
    else:
        result.outcome = TagOutcome.VERIFIED
    return result


async def push_index(
    record: RunRecord,
    registry: RegistryClient,
    *,
    tags: Sequence[str] | None = None,
    config: Config | None = None,
    pool: SshPool | None = None,
    expected_before: dict[str, str | None] | None = None,
) -> list[TagResult]:
    """Create the index for every tag of the run and verify it; record the outcome.

    ``expected_before`` is what the operator was shown (tag -> digest); if a tag moved since,
    nothing is pushed.
    """
    plan = plan_index(record, tags)
    host = index_host(record, config)
    flags = await check_index(record, plan, registry, expected_before, config=config, host=host)
    if has_errors(flags):
        errors = [f for f in flags if f.severity == Severity.ERROR]
        raise ManifestRefused(
            "not pushing the index:\n  - "
            + "\n  - ".join(f"{f.kind} {f.subject}: {f.message}" for f in errors),
            flags,
        )
    before = await read_tags(registry, plan.repository, plan.tags)
    await create_index(plan, config=config, pool=pool, host=host)
    results = []
    for tag in plan.tags:
        result = await verify_index(plan, tag, registry)
        prior = before.get(tag)
        result.before = prior.digest if prior else None
        results.append(result)
    record.add_publish(
        PublishRecord(time.time(), host or "local", plan.to_json(), results, list(flags))
    )
    failed = [r for r in results if not r.verified]
    if failed:
        raise VerifyError("; ".join(r.error or r.ref for r in failed))
    return results


def open_flags(record: RunRecord, fresh: Sequence[Flag]) -> list[Flag]:
    """What the operator sees before publishing: the checks just made, then the run's own
    flags (build and post-build) that they do not already say."""
    seen = [flag.to_json() for flag in fresh]
    return [*fresh, *(flag for flag in record.flags if flag.to_json() not in seen)]


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
    raise ManifestRefused("none of the run's builder hosts is in the config any more")
