"""Flags that tell the truth: every tag-overwrite and arch-mismatch check, in one place.

The checks are small **pure** functions over facts (registry manifests, image configs, plans,
host configs, log evidence) that return :class:`~matui.engine.flags.Flag` lists; a clean
release yields no flag at all. Three ``async`` gatherers read the registry for one phase each
and call the pure checks:

* :func:`preflight_flags` — before the build starts (per-arch tags, release tags, the plan);
* :func:`postbuild_flags` — after the builds pushed (config arch of each built digest, per-arch
  tag digests, log evidence);
* :func:`premanifest_flags` — before ``imagetools create`` (release tags moved or diffed, index
  shape, cross-repository sources, config arch of each source).

:func:`index_diff` is the platform-by-platform dry-run diff the CLI and the dashboard render.

Registry errors are not turned into flags: a gatherer that cannot read the registry raises the
client's :class:`~matui.engine.registry.RegistryError`, and the caller must treat that as "not
checked" (refuse), never as "clean".
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from matui.engine.arch import ArchError, Platform
from matui.engine.flags import Flag, FlagKind, Severity, has_errors, host_arch_flags
from matui.engine.refs import RefError, Repository, parse_repository
from matui.engine.registry import Manifest

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.manifest import IndexPlan, IndexSource
    from matui.engine.plan import BuildJob, BuildPlan
    from matui.engine.probe import HostProbe
    from matui.engine.registry import ImageConfigFacts

__all__ = [
    "BUILDX_CROSS_REPO_FIXED",
    "BuiltImage",
    "Change",
    "PlatformChange",
    "RegistryReader",
    "arch_tag_flags",
    "arch_tag_moved_flags",
    "built_images",
    "cross_repo_flags",
    "duplicate_push_flags",
    "emulation_flags",
    "has_errors",
    "host_arch_flags",
    "image_config_flags",
    "index_diff",
    "index_diffs",
    "index_shape_flags",
    "log_evidence_flags",
    "parse_buildx_version",
    "postbuild_flags",
    "preflight_flags",
    "premanifest_flags",
    "read_tags",
    "release_platform_flags",
    "release_tag_flags",
    "tag_moved_flags",
]

#: The first buildx whose ``imagetools create`` no longer pushes cross-repository children under
#: the target tag before the index (docker/buildx PR #3024).
BUILDX_CROSS_REPO_FIXED: tuple[int, int, int] = (0, 22, 0)

_UNKNOWN = "unknown"
_MAX_MESSAGE_EVIDENCE = 160


class RegistryReader(Protocol):
    """What the gatherers need from :class:`~matui.engine.registry.RegistryClient`."""

    async def get_manifest(self, repo: Repository, reference: str) -> Manifest | None: ...

    async def head_digest(self, repo: Repository, reference: str) -> str | None: ...

    async def image_config(self, repo: Repository, manifest_digest: str) -> ImageConfigFacts: ...


# --------------------------------------------------------------------------------------------
# Small helpers


def _short(digest: str | None) -> str:
    """``sha256:0123456789ab`` for messages (evidence always keeps the full digest)."""
    if digest is None:
        return "absent"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:19]


def _join(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "nothing"


def _one_line(text: str, limit: int = _MAX_MESSAGE_EVIDENCE) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _entry_label(platform: Platform | None, text: str | None) -> str:
    if platform is not None:
        return str(platform)
    return text or _UNKNOWN


def _served(current: Manifest | None, current_platform: str | None) -> list[tuple[str, str]]:
    """``(platform, digest)`` of every platform a tag serves, in order, duplicates kept.

    A single-arch manifest serves one platform: ``current_platform`` (read from its config by
    the caller), ``unknown`` when not known.
    """
    if current is None:
        return []
    if not current.is_index:
        return [(current_platform or _UNKNOWN, current.digest)]
    return [
        (_entry_label(e.platform, e.platform_text), e.digest)
        for e in current.entries
        if not e.attestation
    ]


def _current_evidence(ref: str, current: Manifest, current_platform: str | None) -> dict[str, Any]:
    return {
        "ref": ref,
        "current_digest": current.digest,
        "current_media_type": current.media_type,
        "current_is_index": current.is_index,
        "current": [{"platform": p, "digest": d} for p, d in _served(current, current_platform)],
    }


# --------------------------------------------------------------------------------------------
# The dry-run diff


class Change(StrEnum):
    ADDED = "added"
    DROPPED = "dropped"
    CHANGED = "changed"
    SAME = "same"


@dataclass(frozen=True)
class PlatformChange:
    """One platform of a release tag: what it serves now and what the push would serve."""

    platform: str
    before: str | None
    after: str | None
    change: Change

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "before": self.before,
            "after": self.after,
            "change": str(self.change),
        }


def index_diff(
    current: Manifest | None, plan: IndexPlan, *, current_platform: str | None = None
) -> list[PlatformChange]:
    """Platform by platform: what the tag serves now (``current``) against what ``plan`` pushes.

    Sorted by platform. A single-arch manifest at the tag counts as its one platform,
    ``current_platform`` (``unknown`` when not given). Attestation entries are not platforms.
    When a platform is listed twice, its first entry counts.
    """
    before: dict[str, str] = {}
    for platform, digest in _served(current, current_platform):
        before.setdefault(platform, digest)
    after: dict[str, str] = {}
    for source in plan.sources:
        after.setdefault(str(source.platform), source.digest)
    changes = []
    for platform in sorted(before.keys() | after.keys()):
        old, new = before.get(platform), after.get(platform)
        if old is None:
            kind = Change.ADDED
        elif new is None:
            kind = Change.DROPPED
        elif old != new:
            kind = Change.CHANGED
        else:
            kind = Change.SAME
        changes.append(PlatformChange(platform, old, new, kind))
    return changes


# --------------------------------------------------------------------------------------------
# Tag overwrite


def _drop_flags(
    tag: str,
    ref: str,
    dropped: Sequence[str],
    retired: set[str],
    evidence: dict[str, Any],
    *,
    info_for_retired: bool,
) -> list[Flag]:
    """ERROR for dropped platforms that are not retired; else (optionally) INFO for retired."""
    unretired = [p for p in dropped if p not in retired]
    if unretired:
        names = _join(unretired)
        it = "it" if len(unretired) == 1 else "them"
        return [
            Flag(
                FlagKind.TAG_OVERWRITE,
                Severity.ERROR,
                tag,
                f"{ref} serves {names} today and the new index would drop {it}; build "
                f"{names} again, or list {it} in retired_platforms if meant to go",
                {**evidence, "dropped": unretired},
            )
        ]
    if dropped and info_for_retired:
        names = _join(list(dropped))
        return [
            Flag(
                FlagKind.TAG_OVERWRITE,
                Severity.INFO,
                tag,
                f"{ref} serves {names} today; the new index drops it as retired "
                "(retired_platforms) — pullers of that platform get no image any more",
                {**evidence, "dropped": list(dropped), "retired": list(dropped)},
            )
        ]
    return []


def release_tag_flags(
    tag: str,
    current: Manifest | None,
    plan: IndexPlan,
    retired: Sequence[Platform] = (),
    *,
    current_platform: str | None = None,
) -> list[Flag]:
    """The release tag already holds something: show it and the diff with what would be pushed.

    Dropping a platform the tag serves today is an ERROR unless it is in ``retired`` (then
    INFO); platforms added or changed are INFO. An identical index (or no tag) gives no flag.
    ``current_platform`` names the platform of a single-arch manifest at the tag.
    """
    if current is None:
        return []
    ref = plan.target(tag)
    diff = index_diff(current, plan, current_platform=current_platform)
    evidence = {
        **_current_evidence(ref, current, current_platform),
        "diff": [c.to_json() for c in diff],
    }
    retired_names = {str(p) for p in retired}
    dropped = [c.platform for c in diff if c.change is Change.DROPPED]
    flags = _drop_flags(tag, ref, dropped, retired_names, evidence, info_for_retired=False)
    if flags:
        return flags
    moves = [c for c in diff if c.change is not Change.SAME]
    if not moves:
        return []
    parts = []
    for kind, verb in (
        (Change.ADDED, "adds"),
        (Change.CHANGED, "changes"),
        (Change.DROPPED, "retires"),
    ):
        names = [c.platform for c in moves if c.change is kind]
        if names:
            parts.append(f"{verb} {', '.join(names)}")
    what = "index" if current.is_index else "single-arch image"
    return [
        Flag(
            FlagKind.TAG_OVERWRITE,
            Severity.INFO,
            tag,
            f"{ref} already holds {what} {_short(current.digest)}; the push {'; '.join(parts)} "
            "— review the diff before confirming",
            evidence,
        )
    ]


def release_platform_flags(
    tag: str,
    ref: str,
    current: Manifest | None,
    platforms: Sequence[Platform],
    retired: Sequence[Platform] = (),
    *,
    current_platform: str | None = None,
) -> list[Flag]:
    """Before the build (no digests yet): would the release drop a platform the tag serves?

    ERROR for a dropped platform not in ``retired``, INFO when every dropped one is retired;
    additions and changes are shown by :func:`release_tag_flags` at manifest time, when the
    digests are known.
    """
    if current is None:
        return []
    planned = {str(p) for p in platforms}
    served = [p for p, _ in _served(current, current_platform)]
    dropped = sorted({p for p in served if p not in planned})
    evidence = {
        **_current_evidence(ref, current, current_platform),
        "planned": sorted(planned),
    }
    return _drop_flags(
        tag, ref, dropped, {str(p) for p in retired}, evidence, info_for_retired=True
    )


def arch_tag_flags(job: BuildJob, current: Manifest | None) -> list[Flag]:
    """Before the build: the job's per-arch tag holds an index (single-arch over a list).

    An existing single-arch manifest there gives no flag (it is compared after the build).
    """
    if current is None or not current.is_index:
        return []
    served = [p for p, _ in _served(current, None)]
    return [
        Flag(
            FlagKind.TAG_OVERWRITE,
            Severity.ERROR,
            job.arch_tag,
            f"{job.ref} holds a multi-arch index ({_join(served)}) and the {job.platform} build "
            "would push a single-arch image over it; change arch_tag (e.g. "
            '"{tag}-{arch}") or the release tag so per-arch images get tags of their own',
            {
                "ref": job.ref,
                "current_digest": current.digest,
                "current_media_type": current.media_type,
                "current": [{"platform": p, "digest": d} for p, d in _served(current, None)],
                "target": str(job.platform),
            },
        )
    ]


def arch_tag_moved_flags(
    arch_tag: str,
    ref: str,
    built: str,
    now: str | None,
    before: str | None = None,
) -> list[Flag]:
    """After the build: the per-arch tag's digest differs from the digest just built (INFO).

    ``now`` is what the tag serves after the build (its push), ``before`` what it served before
    the build started (from :func:`read_tags`), when known. The index is made from digests, so
    neither is an error; both digests are shown.
    """
    flags = []
    if before is not None and before != built:
        flags.append(
            Flag(
                FlagKind.TAG_OVERWRITE,
                Severity.INFO,
                arch_tag,
                f"{ref} held {_short(before)} and now holds the new build {_short(built)}; the "
                "old per-arch image stays reachable by digest only",
                {"ref": ref, "before": before, "built": built, "now": now},
            )
        )
    if now != built:
        flags.append(
            Flag(
                FlagKind.TAG_OVERWRITE,
                Severity.INFO,
                arch_tag,
                f"{ref} serves {_short(now)}, not {_short(built)} that was just built; "
                "someone else pushed to it (the index uses the built digest) — check who",
                {"ref": ref, "before": before, "built": built, "now": now},
            )
        )
    return flags


def duplicate_push_flags(plan: BuildPlan) -> list[Flag]:
    """Two pushes of one plan would land on the same tag (per-arch jobs and the index)."""
    pushers: dict[str, list[str]] = {}
    for job in plan.jobs:
        pushers.setdefault(job.arch_tag, []).append(f"the {job.platform} build")
    for tag in dict.fromkeys(plan.tags):  # the same index twice under one tag is harmless
        pushers.setdefault(tag, []).append("the release index")
    flags = []
    repo = plan.repository
    for tag, who in pushers.items():
        if len(who) < 2:
            continue
        ref = f"{repo}:{tag}"
        flags.append(
            Flag(
                FlagKind.TAG_OVERWRITE,
                Severity.ERROR,
                tag,
                f"{ref} would be pushed by {' and '.join(who)}, and the last push wins; give "
                'each its own tag (arch_tag = "{tag}-{arch}", release tags without an arch)',
                {"ref": ref, "pushed_by": who},
            )
        )
    return flags


def tag_moved_flags(
    tag: str, confirmed: str | None, now: str | None, *, ref: str | None = None
) -> list[Flag]:
    """The release tag changed in the registry between the plan (confirmation) and the push."""
    if confirmed == now:
        return []
    where = ref or tag
    return [
        Flag(
            FlagKind.TAG_OVERWRITE,
            Severity.ERROR,
            tag,
            f"{where} moved since it was confirmed ({_short(confirmed)} → {_short(now)}); "
            "someone else pushed: review the tag and run `matui manifest` again",
            {"ref": where, "confirmed": confirmed, "now": now},
        )
    ]


_VERSION_RE = re.compile(r"(?<![0-9A-Za-z.])v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", re.ASCII)


def parse_buildx_version(text: str | None) -> tuple[int, int, int] | None:
    """``0.13.1+ds1``, ``v0.22.0``, ``0.13.1+ds1-3`` or a whole ``docker buildx version`` line
    (``github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3``) → ``(0, 13, 1)``; None if absent."""
    if not text:
        return None
    match = _VERSION_RE.search(text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def _source_repository(source: IndexSource) -> str:
    name = source.ref.partition("@")[0]
    try:
        return str(parse_repository(name))
    except RefError:
        return name


def cross_repo_flags(
    sources: Sequence[IndexSource],
    target: Repository,
    buildx_version: str | None,
    *,
    where: str | None = None,
) -> list[Flag]:
    """Sources from another repository merged by a buildx older than 0.22 (or of unknown
    version): it pushes each child under the target tag before the index, so the release tag
    briefly serves a single arch. ``where`` names the machine running ``imagetools create``."""
    foreign = [s for s in sources if _source_repository(s) != str(target)]
    if not foreign:
        return []
    version = parse_buildx_version(buildx_version)
    if version is not None and version >= BUILDX_CROSS_REPO_FIXED:
        return []
    shown = buildx_version if buildx_version else "of unknown version"
    on = f" on {where}" if where else ""
    repos = sorted({_source_repository(s) for s in foreign})
    return [
        Flag(
            FlagKind.TAG_OVERWRITE,
            Severity.ERROR,
            str(target),
            f"buildx {shown}{on} would push sources from {_join(repos)} under the release "
            f"tag of {target} before the index (single-arch for a moment); use digests from "
            "the same repository, or buildx >= 0.22",
            {
                "target": str(target),
                "buildx_version": buildx_version,
                "parsed_version": list(version) if version else None,
                "fixed_in": ".".join(map(str, BUILDX_CROSS_REPO_FIXED)),
                "foreign_sources": [s.ref for s in foreign],
                "where": where,
            },
        )
    ]


# --------------------------------------------------------------------------------------------
# Arch mismatch


def emulation_flags(
    plan: BuildPlan, hosts: Sequence[HostConfig], probes: Sequence[HostProbe] = ()
) -> list[Flag]:
    """Jobs that would run under QEMU: WARNING when the host allows emulation, else ERROR.

    A job is emulated when the plan says so or, given probes, when its host's probed native arch
    is not the job's arch. A host missing from ``hosts`` allows nothing.
    """
    by_name = {h.name: h for h in hosts}
    native_of = {p.name: p.native_arch for p in probes}
    flags = []
    for job in plan.jobs:
        native = native_of.get(job.host)
        emulated = job.emulated or (native is not None and native != job.arch)
        if not emulated:
            continue
        host = by_name.get(job.host)
        allowed = host is not None and host.allow_emulation
        runs_as = native or (host.arch if host is not None else _UNKNOWN)
        evidence = {
            "host": job.host,
            "native": native,
            "declared": host.arch if host is not None else None,
            "target": str(job.platform),
            "allow_emulation": allowed,
        }
        if allowed:
            flags.append(
                Flag(
                    FlagKind.ARCH_MISMATCH,
                    Severity.WARNING,
                    job.arch,
                    f"{job.platform} builds on {job.host} ({runs_as}) under QEMU emulation "
                    "(slower, and emulation bugs ship); add a native host for it",
                    evidence,
                )
            )
        else:
            flags.append(
                Flag(
                    FlagKind.ARCH_MISMATCH,
                    Severity.ERROR,
                    job.arch,
                    f"{job.platform} would build on {job.host} ({runs_as}) under QEMU, which "
                    f"{job.host} does not allow; add a native {job.arch} host, or set "
                    f"allow_emulation = true on {job.host}",
                    evidence,
                )
            )
    return flags


def image_config_flags(
    target: Platform, facts: ImageConfigFacts, *, digest: str | None = None
) -> list[Flag]:
    """A built image's config says another os/architecture/variant than its target platform."""
    if facts.os == target.os and facts.platform == target:
        return []
    says = "/".join(p for p in (facts.os, facts.architecture, facts.variant) if p)
    of = f" {_short(digest)}" if digest else ""
    return [
        Flag(
            FlagKind.ARCH_MISMATCH,
            Severity.ERROR,
            target.arch,
            f"the {target} image{of} says {says} in its config; do not push the index — "
            "check FROM --platform lines and the build host, then rebuild",
            {
                "target": str(target),
                "digest": digest,
                "os": facts.os,
                "architecture": facts.architecture,
                "variant": facts.variant,
            },
        )
    ]


def log_evidence_flags(arch: str, lines: Sequence[str]) -> list[Flag]:
    """The build log shows BuildKit's InvalidBaseImagePlatform warning or ``exec format error``
    (``ProgressParser.arch_evidence`` of the job)."""
    if not lines:
        return []
    return [
        Flag(
            FlagKind.ARCH_MISMATCH,
            Severity.ERROR,
            arch,
            f"the {arch} build log shows the wrong arch ({_one_line(lines[0])}); build FROM "
            "base images for $TARGETPLATFORM and binaries for the target arch, then rebuild",
            {"lines": list(lines)},
        )
    ]


def index_shape_flags(
    index: IndexPlan | Manifest,
    planned: Sequence[Platform],
    *,
    subject: str | None = None,
) -> list[Flag]:
    """The index (a plan, or a manifest as served) misses a planned platform, lists one twice,
    counts an attestation (``unknown/unknown``) as a platform, or serves one not planned."""
    if not isinstance(index, Manifest):
        name = subject or str(index.repository)
        entries = [
            (str(s.platform), s.digest, _UNKNOWN in (s.platform.os, s.platform.arch))
            for s in index.sources
        ]
        what = f"the index for {name}"
    else:
        name = subject or index.digest
        what = f"index {_short(index.digest)}"
        if not index.is_index:
            return [
                Flag(
                    FlagKind.ARCH_MISMATCH,
                    Severity.ERROR,
                    name,
                    f"{name} is a single-arch manifest ({index.media_type}), not an index; push "
                    "the index again (`matui manifest`)",
                    {"digest": index.digest, "media_type": index.media_type},
                )
            ]
        entries = []
        for e in index.entries:
            label = _entry_label(e.platform, e.platform_text)
            if e.attestation:
                continue
            entries.append((label, e.digest, label == f"{_UNKNOWN}/{_UNKNOWN}"))
    listed = [(p, d) for p, d, attest in entries if not attest]
    attestations = [{"platform": p, "digest": d} for p, d, attest in entries if attest]
    counts: dict[str, int] = {}
    for platform, _ in listed:
        counts[platform] = counts.get(platform, 0) + 1
    planned_names = sorted({str(p) for p in planned})
    evidence = {
        "entries": [{"platform": p, "digest": d} for p, d, _ in entries],
        "planned": planned_names,
    }
    fix = "rebuild and push the index again (`matui build`, `matui manifest`)"
    flags = []
    missing = [p for p in planned_names if p not in counts]
    if missing:
        flags.append(
            Flag(
                FlagKind.ARCH_MISMATCH,
                Severity.ERROR,
                name,
                f"{what} misses planned {_join(missing)}; {fix}",
                {**evidence, "missing": missing},
            )
        )
    twice = sorted(p for p, n in counts.items() if n > 1)
    if twice:
        flags.append(
            Flag(
                FlagKind.ARCH_MISMATCH,
                Severity.ERROR,
                name,
                f"{what} lists {_join(twice)} more than once (clients pick either); {fix}",
                {**evidence, "duplicates": twice},
            )
        )
    if attestations:
        flags.append(
            Flag(
                FlagKind.ARCH_MISMATCH,
                Severity.ERROR,
                name,
                f"{what} counts {len(attestations)} attestation entr"
                f"{'y' if len(attestations) == 1 else 'ies'} (unknown/unknown) as a platform; "
                "use the image manifest's digest, not the attestation's, then push again",
                {**evidence, "attestations": attestations},
            )
        )
    unplanned = sorted(p for p in counts if p not in planned_names)
    if unplanned:
        flags.append(
            Flag(
                FlagKind.ARCH_MISMATCH,
                Severity.ERROR,
                name,
                f"{what} serves {_join(unplanned)}, which this release does not plan; {fix}",
                {**evidence, "unplanned": unplanned},
            )
        )
    return flags


# --------------------------------------------------------------------------------------------
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
    if state is None:
        tags = [job.arch_tag for job in plan.jobs] + list(plan.tags)
        state = await read_tags(registry, repository, tags)
    flags = duplicate_push_flags(plan)
    if hosts is not None:
        flags += emulation_flags(plan, hosts, probes)
    for job in plan.jobs:
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


def built_images(data: Mapping[str, Any]) -> list[BuiltImage]:
    """The succeeded jobs with a digest of a run record's data.

    Reads ``platform``, ``digest``, ``arch_tag`` and, when the runner records them,
    ``arch_tag_before`` (digest or null) and ``arch_evidence`` (list of lines) of each job.
    """
    built = []
    for job in data.get("jobs", []):
        if job.get("state") != "succeeded" or not job.get("digest"):
            continue
        try:
            platform = Platform.parse(str(job["platform"]))
        except (KeyError, ArchError):
            continue
        before = job.get("arch_tag_before")
        built.append(
            BuiltImage(
                platform=platform,
                digest=str(job["digest"]),
                arch_tag=str(job["arch_tag"]),
                before=str(before) if before else None,
                evidence=tuple(str(line) for line in job.get("arch_evidence") or ()),
            )
        )
    return built


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
        now = await registry.head_digest(repo, image.arch_tag)
        flags += arch_tag_moved_flags(
            image.arch_tag, repo.tag(image.arch_tag), image.digest, now, image.before
        )
        return flags

    results = await asyncio.gather(*(one(image) for image in built))
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
) -> list[Flag]:
    """Right before ``imagetools create``.

    ``confirmed`` maps tags to the digest shown to the operator (None: absent); a tag that moved
    since is an ERROR. Each release tag's diff (:func:`release_tag_flags`), the index shape
    against ``planned`` (default: the plan's own platforms, then only duplicates and attestations
    are caught), cross-repository sources against ``buildx_version`` of the buildx that merges
    (``merge_host``: where it runs, for the message), and — with ``check_configs`` — the config
    arch of every source.
    """
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
    if check_configs:
        for source in plan.sources:
            repo_text = _source_repository(source)
            try:
                source_repo = parse_repository(repo_text)
            except RefError:
                source_repo = plan.repository
            flags += await _config_flags(registry, source_repo, source.platform, source.digest)
    return flags
