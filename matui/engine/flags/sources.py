"""One source per release: the arches of one index must be built from the same context.

Retrying an arch uploads the context as it is *now*; after an edit (the Dockerfile, a source
file) the index would join images built from two different trees without a word. Each job
records the source it was built from (``build/context.py`` hashes it while the context streams);
this rule compares them. Arches whose sources differ are an ERROR that names the files that
differ, so the publish refuses; an explicit, recorded override (:func:`override_mixed_sources`)
turns it into a WARNING for the one publish that asked for it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from matui.engine.flags.model import Flag, FlagKind, Severity

__all__ = [
    "MIXED_SOURCES_OVERRIDE",
    "JobSource",
    "override_mixed_sources",
    "source_changes",
    "source_mismatch_flags",
]

MIXED_SOURCES_OVERRIDE = "allow-mixed-sources"
"""The override's name, as recorded and as the CLI option (``--allow-mixed-sources``)."""

_NAMED = 5  # files named in the message; the rest are counted
_EVIDENCE = 50  # files kept per list in the flag's evidence (records stay small)


@dataclass(frozen=True)
class JobSource:
    """The source one arch was built from.

    ``digest`` is None when the job recorded none (built by an older matui): such a job is not
    compared. ``files`` is the path → entry manifest (None when it could not be read); it is
    only needed when digests differ.
    """

    arch: str
    digest: str | None
    at: float | None = None
    files: Mapping[str, str] | None = None


def source_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(path, how)`` for each path that differs, sorted by path; ``how`` is ``changed``,
    ``added`` (only in ``after``) or ``removed`` (only in ``before``)."""
    out = []
    for path in sorted(before.keys() | after.keys()):
        if path not in after:
            out.append((path, "removed"))
        elif path not in before:
            out.append((path, "added"))
        elif before[path] != after[path]:
            out.append((path, "changed"))
    return out


def _when(at: float | None, with_date: bool) -> str:
    if at is None:
        return "built at an unrecorded time"
    fmt = "%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S"
    return "built " + time.strftime(fmt, time.localtime(at))


def source_mismatch_flags(sources: Sequence[JobSource]) -> list[Flag]:
    """ERROR for each group of arches built from another source than the first-built group.

    The message names the files that differ (up to five, then ``+N more``) and both groups'
    build times; the evidence holds every arch's digest and the differing paths.
    """
    groups: dict[str, list[JobSource]] = {}
    for source in sources:
        if source.digest:
            groups.setdefault(source.digest, []).append(source)
    if len(groups) < 2:
        return []
    ordered = sorted(groups.values(), key=lambda g: (min(s.at or 0.0 for s in g), g[0].arch))
    reference = ordered[0]
    days = {time.strftime("%Y-%m-%d", time.localtime(s.at)) for s in sources if s.at}
    with_date = len(days) > 1
    all_digests = {s.arch: s.digest for s in sources if s.digest}
    flags = []
    for group in ordered[1:]:
        ref, other = reference[0], group[0]
        if ref.files is not None and other.files is not None:
            changes = source_changes(ref.files, other.files)
            named = ", ".join(f"{path} ({how})" for path, how in changes[:_NAMED])
            more = f" +{len(changes) - _NAMED} more" if len(changes) > _NAMED else ""
            what = f"{named}{more} differ" if len(changes) != 1 else f"{named} differs"
            if not changes:  # same manifest, different digest: cannot happen unless damaged
                what = "the recorded sources differ"
        else:
            changes = []
            what = "the sources differ (which files is not recorded)"
        ref_arches = "+".join(s.arch for s in reference)
        other_arches = "+".join(s.arch for s in group)
        message = (
            f"arches built from different sources: {what} between {ref_arches} "
            f"({_when(ref.at, with_date)}) and {other_arches} ({_when(other.at, with_date)}); "
            f"rebuild every arch from one source (retry {ref_arches} too, or `matui build` "
            f"again), or publish anyway with --{MIXED_SOURCES_OVERRIDE} (recorded)"
        )
        evidence: dict[str, object] = {
            "sources": dict(all_digests),
            "built": {s.arch: s.at for s in (*reference, *group)},
            "reference": ref_arches,
        }
        for how in ("changed", "added", "removed"):
            paths = [p for p, h in changes if h == how]
            evidence[how] = paths[:_EVIDENCE]
            if len(paths) > _EVIDENCE:
                evidence[f"{how}_more"] = len(paths) - _EVIDENCE
        flags.append(
            Flag(FlagKind.SOURCE_MISMATCH, Severity.ERROR, other_arches, message, evidence)
        )
    return flags


def override_mixed_sources(flags: Sequence[Flag]) -> list[Flag]:
    """The flags with every source-mismatch ERROR turned into a WARNING that says it was
    overridden: what a publish with the explicit override checks against (and records)."""
    return [
        replace(
            flag,
            severity=Severity.WARNING,
            message=f"overridden with --{MIXED_SOURCES_OVERRIDE}: {flag.message}",
        )
        if flag.kind is FlagKind.SOURCE_MISMATCH and flag.severity is Severity.ERROR
        else flag
        for flag in flags
    ]
