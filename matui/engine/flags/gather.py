"""Gatherers: read the registry (or the hosts) for one phase — host check, pre-flight,
post-build, pre-manifest — then run the pure rules.

Registry errors are not turned into flags: a gatherer that cannot read the registry raises the
client's RegistryError, and the caller must treat that as "not checked" (refuse), never as "clean".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from matui.engine.arch import Platform
from matui.engine.flags.arch_mismatch import (
    emulation_flags,
    image_config_flags,
    index_shape_flags,
    log_evidence_flags,
)
from matui.engine.flags.base_images import (
    BaseImage,
    BaseLookup,
    DockerfileError,
    base_platform_flags,
    job_base_images,
    parse_dockerfile,
)
from matui.engine.flags.diff import PlatformChange, RegistryReader, _one_line, index_diff
from matui.engine.flags.driver import by_digest_jobs, driver_flags
from matui.engine.flags.model import Flag, FlagKind, Severity, has_errors, host_arch_flags
from matui.engine.flags.readiness import disk_floor_flags, push_access_flags
from matui.engine.flags.tag_overwrite import (
    _source_repository,
    arch_tag_flags,
    arch_tag_moved_flags,
    cross_repo_flags,
    duplicate_push_flags,
    missing_source_flags,
    pushed_after_cancel_flags,
    release_platform_flags,
    release_tag_flags,
    tag_moved_flags,
)
from matui.engine.plan import PlanError, plan_build
from matui.engine.probe import HostProbe, probe_hosts
from matui.engine.refs import RefError, Repository, parse_repository
from matui.engine.registry import Manifest, NotFound, RegistryClient, RegistryError
from matui.engine.text import neutralise

if TYPE_CHECKING:
    from matui.engine.config import Config, HostConfig, ImageConfig
    from matui.engine.plan import BuildPlan, IndexPlan, IndexSource
    from matui.engine.ssh import SshPool


# Gatherers: read the registry for one phase, then run the pure checks


async def read_tags(
    registry: RegistryReader, repository: Repository, tags: Sequence[str]
) -> dict[str, Manifest | None]:
    """What each tag serves now (None: absent), read concurrently. Keep the digests in the run
    record to pass as ``before`` to :func:`postbuild_flags` (``BuiltImage.before``)."""
    unique = list(dict.fromkeys(tags))
    found = await asyncio.gather(*(registry.get_manifest(repository, t) for t in unique))
    return dict(zip(unique, found, strict=True))


async def _single_platform(
    registry: RegistryReader, repository: Repository, manifest: Manifest | None
) -> str | None:
    """The platform a single-arch manifest's config names; None for an index or no manifest."""
    if manifest is None or manifest.is_index:
        return None
    facts = await registry.image_config(repository, manifest.digest)
    if facts.platform is not None:
        return str(facts.platform)
    return "/".join(p for p in (facts.os, facts.architecture, facts.variant) if p)


async def _config_flags(
    registry: RegistryReader, repository: Repository, target: Platform, digest: str
) -> list[Flag]:
    """Config arch of a built digest; an index (provenance on) is checked child by child."""
    manifest = await registry.get_manifest(repository, digest)
    if manifest is not None and manifest.is_index:
        children = [e.digest for e in manifest.entries if not e.attestation]
    else:
        children = [digest]
    flags: list[Flag] = []
    for child in children:
        facts = await registry.image_config(repository, child)
        flags += image_config_flags(target, facts, digest=child)
    return flags


async def preflight_flags(
    plan: BuildPlan,
    registry: RegistryReader,
    *,
    hosts: Sequence[HostConfig] | None = None,
    probes: Sequence[HostProbe] = (),
    state: Mapping[str, Manifest | None] | None = None,
) -> list[Flag]:
    """Before the build starts: flags that must stop it when they are errors.

    Plan-level pushes to one tag; with ``hosts``, emulation (replaces the WARNINGs plan_build
    used to put in the plan); per-arch tags holding an index; release tags that would lose a
    platform. ``state`` is :func:`read_tags` of the plan's per-arch and release tags when the
    caller read it already (to record the digests); otherwise it is read here.
    """
    repository = plan.image.repository()
    # Jobs whose builder pushes by digest move no per-arch tag: nothing to check there.
    by_digest = by_digest_jobs(plan, hosts, probes) if hosts is not None else frozenset()
    tagged = [job for job in plan.jobs if job.key not in by_digest]
    if state is None:
        tags = [job.arch_tag for job in tagged] + list(plan.tags)
        state = await read_tags(registry, repository, tags)
    flags = duplicate_push_flags(plan, by_digest)
    if hosts is not None:
        flags += emulation_flags(plan, hosts, probes)
        used = {job.host for job in plan.jobs}
        flags += driver_flags(plan.image, [h for h in hosts if h.name in used], probes)
    for job in tagged:
        flags += arch_tag_flags(job, state.get(job.arch_tag))
    platforms = [job.platform for job in plan.jobs]
    for tag in dict.fromkeys(plan.tags):
        current = state.get(tag)
        flags += release_platform_flags(
            tag,
            repository.tag(tag),
            current,
            platforms,
            plan.image.retired_platforms,
            current_platform=await _single_platform(registry, repository, current),
        )
    return flags


@dataclass(frozen=True)
class BuiltImage:
    """One succeeded job of a run, as :func:`postbuild_flags` needs it."""

    platform: Platform
    digest: str
    arch_tag: str
    #: What the per-arch tag served before the build (None: absent or not recorded).
    before: str | None = None
    #: ``ProgressParser.arch_evidence`` of the job's log.
    evidence: tuple[str, ...] = ()
    #: Pushed by digest (its builder's driver): no per-arch tag was pushed to compare.
    by_digest: bool = False


async def postbuild_flags(
    repository: Repository | str,
    built: Sequence[BuiltImage],
    registry: RegistryReader,
) -> list[Flag]:
    """After the builds: config arch of each built digest (ERROR: the index must not be pushed),
    log evidence (ERROR), and per-arch tags that do not hold the built digest (INFO)."""
    repo = repository if isinstance(repository, Repository) else parse_repository(repository)

    async def one(image: BuiltImage) -> list[Flag]:
        flags = await _config_flags(registry, repo, image.platform, image.digest)
        flags += log_evidence_flags(image.platform.arch, image.evidence)
        if image.by_digest:
            return flags
        now = await registry.head_digest(repo, image.arch_tag)
        flags += arch_tag_moved_flags(
            image.arch_tag, repo.tag(image.arch_tag), image.digest, now, image.before
        )
        return flags

    results = await asyncio.gather(*(one(image) for image in built))
    return [flag for flags in results for flag in flags]


async def cancelled_push_flags(
    repository: Repository | str,
    cancelled: Sequence[tuple[str, str | None]],
    registry: RegistryReader,
) -> list[Flag]:
    """After a run: each cancelled job's per-arch tag (``(arch_tag, before)`` pairs) that moved
    anyway (:func:`~matui.engine.flags.tag_overwrite.pushed_after_cancel_flags`)."""
    repo = repository if isinstance(repository, Repository) else parse_repository(repository)

    async def one(arch_tag: str, before: str | None) -> list[Flag]:
        now = await registry.head_digest(repo, arch_tag)
        return pushed_after_cancel_flags(arch_tag, repo.tag(arch_tag), before, now)

    results = await asyncio.gather(*(one(tag, before) for tag, before in cancelled))
    return [flag for flags in results for flag in flags]


async def index_diffs(
    plan: IndexPlan,
    registry: RegistryReader,
    *,
    state: Mapping[str, Manifest | None] | None = None,
) -> dict[str, list[PlatformChange]]:
    """:func:`index_diff` for every tag of ``plan`` (the dry run), reading the registry."""
    if state is None:
        state = await read_tags(registry, plan.repository, plan.tags)
    diffs = {}
    for tag in plan.tags:
        current = state.get(tag)
        platform = await _single_platform(registry, plan.repository, current)
        diffs[tag] = index_diff(current, plan, current_platform=platform)
    return diffs


async def premanifest_flags(
    plan: IndexPlan,
    registry: RegistryReader,
    confirmed: Mapping[str, str | None] | None = None,
    *,
    planned: Sequence[Platform] | None = None,
    retired: Sequence[Platform] = (),
    buildx_version: str | None = None,
    merge_host: str | None = None,
    check_configs: bool = True,
    state: Mapping[str, Manifest | None] | None = None,
) -> list[Flag]:
    """Right before ``imagetools create``.

    ``confirmed`` maps tags to the digest shown to the operator (None: absent); a tag that moved
    since is an ERROR. Each release tag's diff (:func:`release_tag_flags`), the index shape
    against ``planned`` (default: the plan's own platforms, then only duplicates and attestations
    are caught), cross-repository sources against ``buildx_version`` of the buildx that merges
    (``merge_host``: where it runs, for the message), and — with ``check_configs`` — the config
    arch of every source, and — always — that every source is still in the registry (a
    per-arch image deleted since the build is an ERROR, not an exception). ``state`` is
    :func:`read_tags` of the plan's tags when the caller read it already.
    """
    if state is None:
        state = await read_tags(registry, plan.repository, plan.tags)
    flags: list[Flag] = []
    for tag in plan.tags:
        current = state.get(tag)
        if confirmed is not None and tag in confirmed:
            now = current.digest if current is not None else None
            flags += tag_moved_flags(tag, confirmed[tag], now, ref=plan.target(tag))
        platform = await _single_platform(registry, plan.repository, current)
        flags += release_tag_flags(tag, current, plan, retired, current_platform=platform)
    wanted = list(planned) if planned is not None else [s.platform for s in plan.sources]
    flags += index_shape_flags(plan, wanted, subject=plan.tags[0] if plan.tags else None)
    flags += cross_repo_flags(plan.sources, plan.repository, buildx_version, where=merge_host)
    found = await asyncio.gather(
        *(_source_flags(registry, plan, source, check_configs) for source in plan.sources)
    )
    return flags + [flag for flags in found for flag in flags]


async def _source_flags(
    registry: RegistryReader, plan: IndexPlan, source: IndexSource, check_config: bool
) -> list[Flag]:
    """One source of the index: still in the registry (else a missing-image ERROR), and with
    ``check_config`` the arch its config names."""
    repo_text = _source_repository(source)
    try:
        repo = parse_repository(repo_text)
    except RefError:
        repo = plan.repository
    manifest = await registry.get_manifest(repo, source.digest)
    if manifest is None:
        return missing_source_flags(source, str(repo))
    children = (
        [e.digest for e in manifest.entries if not e.attestation]
        if manifest.is_index
        else [source.digest]
    )
    flags: list[Flag] = []
    for child in children:
        if not check_config and child == source.digest:
            continue
        try:
            facts = await registry.image_config(repo, child)
        except NotFound:
            # The manifest is there but a child of it (or its config blob) is not.
            flags += missing_source_flags(
                source, str(repo), child=None if child == source.digest else child
            )
            continue
        if check_config:
            flags += image_config_flags(source.platform, facts, digest=child)
    return flags


# Hosts: `matui check` and the dashboard's host panel


@dataclass(frozen=True)
class CheckReport:
    probes: tuple[HostProbe, ...]
    flags: tuple[Flag, ...]

    @property
    def ok(self) -> bool:
        """Every host reachable and able to build, and no error-level flag."""
        return all(probe.usable for probe in self.probes) and not has_errors(self.flags)

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": [probe.to_json() for probe in self.probes],
            "flags": [flag.to_json() for flag in self.flags],
        }


async def check_hosts(
    pool: SshPool, hosts: Sequence[HostConfig], registries: Sequence[str] = ()
) -> CheckReport:
    """Probe every host: misdeclared arches, free disk below each host's floor, and — for each
    of ``registries`` (``host[:port]``) — whether the host can reach it and log in to push."""
    probes = await probe_hosts(pool, hosts, registries)
    flags = [
        *host_arch_flags(probes),
        *disk_floor_flags(hosts, probes),
        *push_access_flags(probes, registries),
    ]
    return CheckReport(tuple(probes), tuple(flags))


async def check_config(
    pool: SshPool, config: Config, registry: RegistryReader | None = None
) -> CheckReport:
    """``matui check``: :func:`check_hosts` with every image's registry, then each image's base
    images for the platforms as they would be planned now (each platform on its own arch when
    no host can take it yet)."""
    registries = []
    for image in config.images:
        try:
            registries.append(image.repository().registry)
        except RefError:
            continue  # the config checker reported it
    report = await check_hosts(pool, config.hosts, list(dict.fromkeys(registries)))
    flags = list(report.flags)
    reader: RegistryReader = registry or RegistryClient()
    for image in config.images:
        try:
            plan = plan_build(image, image.tags, config.hosts, report.probes)
            targets = build_targets(plan, config.hosts, report.probes)
        except PlanError:
            targets = [(platform, platform) for platform in image.platforms]
        label = image.name if len(config.images) > 1 else None
        flags += await base_image_flags(image, targets, reader, label=label)
        arches = {p.arch for p in image.platforms}
        flags += driver_flags(
            image, [h for h in config.hosts if h.arch in arches], report.probes, label=label
        )
    return CheckReport(report.probes, tuple(flags))


# Readiness: base images, the hosts' way to the registry, their free disk

#: How long the pre-flight waits for the registry to describe the base images; past it the
#: bases are "not checked" (a WARNING), never a held-up build.
BASE_IMAGE_TIMEOUT = 20.0
#: Frontends matui reads Dockerfiles for; any other ``# syntax=`` may mean another language.
_DOCKERFILE_FRONTENDS = ("docker/dockerfile", "docker.io/docker/dockerfile")


def build_targets(
    plan: BuildPlan, hosts: Sequence[HostConfig], probes: Sequence[HostProbe] = ()
) -> list[tuple[Platform, Platform]]:
    """``(target, build platform)`` per planned job: the build platform is the host's own (its
    probed native arch, else the arch it is declared as), what ``$BUILDPLATFORM`` names."""
    native = {p.name: p.native_arch for p in probes if p.native_arch}
    declared = {h.name: h.arch for h in hosts}
    return [
        (
            job.platform,
            Platform("linux", native.get(job.host) or declared.get(job.host) or job.platform.arch),
        )
        for job in plan.jobs
    ]


def _dockerfile_note(image: ImageConfig, severity: Severity, message: str) -> list[Flag]:
    return [
        Flag(
            FlagKind.BASE_IMAGE,
            severity,
            image.dockerfile,
            message,
            {"dockerfile": str(image.context / image.dockerfile)},
        )
    ]


async def _lookup(registry: RegistryReader, base: BaseImage) -> BaseLookup:
    assert base.repository is not None
    repo = base.repository
    try:
        manifest = await registry.get_manifest(repo, base.digest or base.tag or "latest")
        if manifest is None:
            return BaseLookup(None, found=False)
        if manifest.is_index:
            return BaseLookup(manifest)
        facts = await registry.image_config(repo, manifest.digest)
    except (RegistryError, ValueError) as exc:  # ValueError: a reference the registry mangled
        return BaseLookup(error=neutralise(_one_line(str(exc))))
    text = "/".join(p for p in (facts.os, facts.architecture, facts.variant) if p)
    return BaseLookup(manifest, facts.platform, neutralise(text))


async def base_image_flags(
    image: ImageConfig,
    targets: Sequence[tuple[Platform, Platform]],
    registry: RegistryReader,
    *,
    text: str | None = None,
    timeout: float = BASE_IMAGE_TIMEOUT,
    label: str | None = None,
) -> list[Flag]:
    """Every base image the planned jobs pull exists for the platform each pulls it for
    (:func:`~matui.engine.flags.base_images.base_image_flags`). ``targets`` are
    :func:`build_targets`; ``text`` is the Dockerfile's (read from the image's context when
    None). The subject of a flag is the job's platform (after ``label``, the image's name when
    several are checked together). A Dockerfile matui cannot read is a
    WARNING (not checked), never a refusal of its own: BuildKit has the last word on syntax."""
    where = image.dockerfile
    if text is None:
        try:
            text = (image.context / image.dockerfile).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return _dockerfile_note(
                image,
                Severity.WARNING,
                f"cannot read {image.context / image.dockerfile} ({exc.strerror or exc}); its "
                "base images were not checked",
            )
    try:
        facts = parse_dockerfile(text)
    except DockerfileError as exc:
        return _dockerfile_note(
            image,
            Severity.WARNING,
            neutralise(f"{where}: {exc}; its base images were not checked"),
        )
    if facts.syntax and not facts.syntax.startswith(_DOCKERFILE_FRONTENDS):
        return _dockerfile_note(
            image,
            Severity.INFO,
            neutralise(
                f"{where} asks for the frontend {facts.syntax}: matui reads only the standard "
                "Dockerfile syntax, so its base images were not checked"
            ),
        )
    per_job: list[tuple[str, BaseImage]] = []
    for target, build in targets:
        for base in job_base_images(
            facts, target=target, build=build, build_args=image.build_args, stage=image.target
        ):
            per_job.append((f"{label} {target}" if label else str(target), base))
    wanted = {b.key: b for _, b in per_job if b.problem is None and b.repository is not None}
    lookups: dict[tuple[str, str], BaseLookup] = {}
    if wanted:
        keys = list(wanted)
        try:
            found = await asyncio.wait_for(
                asyncio.gather(*(_lookup(registry, wanted[k]) for k in keys)), timeout
            )
        except TimeoutError:
            error = f"the registry did not answer within {timeout:.0f}s"
            found = [BaseLookup(error=error) for _ in keys]
        lookups = dict(zip(keys, found, strict=True))
    flags: list[Flag] = []
    seen: set[tuple[str, str]] = set()
    for subject, base in per_job:
        lookup = lookups.get(base.key) if base.problem is None else None
        for flag in base_platform_flags(where, base, lookup, subject=subject):
            if (flag.subject, flag.message) not in seen:
                seen.add((flag.subject, flag.message))
                flags.append(flag)
    return flags
