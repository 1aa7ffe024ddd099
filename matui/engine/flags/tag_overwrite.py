"""Tag-overwrite rules: pure functions over what tags serve now and what a build or an index
would push."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from matui.engine.arch import Platform
from matui.engine.flags.diff import (
    BUILDX_CROSS_REPO_FIXED,
    Change,
    _current_evidence,
    _join,
    _served,
    _short,
    index_diff,
)
from matui.engine.flags.model import Flag, FlagKind, Severity
from matui.engine.refs import RefError, Repository, parse_repository
from matui.engine.registry import Manifest

if TYPE_CHECKING:
    from matui.engine.plan import BuildJob, BuildPlan, IndexPlan, IndexSource


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


def pushed_after_cancel_flags(
    arch_tag: str, ref: str, before: str | None, now: str | None
) -> list[Flag]:
    """A job the operator cancelled whose per-arch tag moved anyway (ERROR).

    A cancel is a request: the build may have pushed before the host stopped it (or the cancel
    never got there). ``before`` is what the tag served when the run started, ``now`` what it
    serves after the run; a different ``now`` is an image the operator believes was not built.
    """
    if now is None or now == before:
        return []
    return [
        Flag(
            FlagKind.TAG_OVERWRITE,
            Severity.ERROR,
            arch_tag,
            f"{ref} was pushed although its build was cancelled: it now holds {now} "
            f"(before the run: {_short(before) if before else 'nothing'}); the cancel came after "
            "the push — check that image before anything uses the tag",
            {"ref": ref, "before": before, "now": now, "cancelled": True},
        )
    ]


def duplicate_push_flags(plan: BuildPlan, by_digest: Collection[str] = ()) -> list[Flag]:
    """Two pushes of one plan would land on the same tag (per-arch jobs and the index). A job
    in ``by_digest`` (keys) pushes no tag: it never collides."""
    pushers: dict[str, list[str]] = {}
    for job in plan.jobs:
        if job.key in by_digest:
            continue
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


def missing_source_flags(
    source: IndexSource, repository: str, *, child: str | None = None
) -> list[Flag]:
    """A per-arch image the index would point at is gone from the registry (deleted, or
    garbage-collected, between the build and the publish). ``child`` is the missing image
    manifest when ``source`` is an index (provenance on) that is still there. The index would
    name a manifest the registry cannot serve, so this blocks the publish."""
    arch = source.platform.arch
    missing = child or source.digest
    what = f"the {source.platform} image {_short(missing)}"
    if child is not None:
        what += f" (in {_short(source.digest)})"
    return [
        Flag(
            FlagKind.MISSING_IMAGE,
            Severity.ERROR,
            arch,
            f"{what} is gone from {repository}; rebuild {arch} (`matui build`) and publish "
            "that run",
            {"platform": str(source.platform), "digest": source.digest, "missing": missing},
        )
    ]


# --------------------------------------------------------------------------------------------
