"""Arch-mismatch rules: pure functions over host facts, image configs and log evidence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from matui.engine.arch import Platform
from matui.engine.flags.diff import _UNKNOWN, _entry_label, _join, _one_line, _short
from matui.engine.flags.model import Flag, FlagKind, Severity
from matui.engine.registry import Manifest

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.plan import BuildPlan, IndexPlan
    from matui.engine.probe import HostProbe
    from matui.engine.registry import ImageConfigFacts


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
