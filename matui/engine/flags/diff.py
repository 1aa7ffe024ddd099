"""Small helpers every flag rule shares, and the platform-by-platform diff that the dry run and
the publish confirmation render."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from matui.engine.arch import Platform
from matui.engine.refs import Repository
from matui.engine.registry import Manifest

if TYPE_CHECKING:
    from matui.engine.plan import IndexPlan
    from matui.engine.registry import ImageConfigFacts


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
        after.setdefault(str(source.platform), source.platform_digest)
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
