"""Publishing a release of many images: one preview listing every tag that would move, one
confirmation, then each image's index pushed and verified, reported per tag.

A release is the newest run of each image asked for (every configured image, or the ones
named), whether the images were built together (:func:`~matui.engine.build.start_release`) or
one was rebuilt since. Each image goes through the one publish path
(:func:`~matui.engine.publish.preview_publish` then :func:`~matui.engine.publish.publish`), so a
release refuses exactly what a single image would: an image whose arches did not all succeed,
a tag that moved since the preview, an error flag. A refused image does not stop the others;
the report says per image and per tag what happened, and the release is ``ok`` only when every
image asked for serves its index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matui.engine.flags.diff import Change
from matui.engine.publish import PublishPreview, PublishReport, preview_publish, publish
from matui.engine.records import RunRecord, TagOutcome, list_runs

if TYPE_CHECKING:
    from matui.engine.config import Config, ImageConfig
    from matui.engine.registry import RegistryClient
    from matui.engine.ssh import SshPool


def latest_runs(root: Path, images: Sequence[ImageConfig]) -> tuple[list[RunRecord], list[str]]:
    """The newest run of each image (in the order given), and the images with no run yet."""
    newest: dict[str, RunRecord] = {}
    for record in list_runs(root):  # newest first
        newest.setdefault(record.image, record)
    runs = [newest[image.name] for image in images if image.name in newest]
    missing = [image.name for image in images if image.name not in newest]
    return runs, missing


@dataclass(frozen=True)
class ReleasePreview:
    """What publishing a release would do: each image's own preview, in release order."""

    previews: tuple[PublishPreview, ...]
    missing: tuple[str, ...] = ()
    """Images asked for that have no run to publish."""

    @property
    def ready(self) -> list[PublishPreview]:
        """Images that may be published (some may already serve their index)."""
        return [p for p in self.previews if not p.blocked]

    @property
    def refused(self) -> list[PublishPreview]:
        return [p for p in self.previews if p.blocked]

    @property
    def to_push(self) -> list[str]:
        """Every tag that would move, as ``REPO:TAG``."""
        return [t.ref for p in self.ready for t in p.tags if not t.serves_index]

    @property
    def nothing_to_push(self) -> bool:
        return not self.to_push

    def lines(self) -> list[str]:
        """The confirmation: per image, each tag that would move (what it serves now, the
        platforms of the new index), the tags that already serve it, and each image refused
        with why."""
        lines: list[str] = []
        for preview in self.ready:
            plan = preview.plan
            assert plan is not None  # a preview that is not blocked has a plan
            platforms = ", ".join(str(s.platform) for s in plan.sources)
            lines.append(f"{plan.repository} (run {preview.record.id}): index of {platforms}")
            for tag in preview.tags:
                if tag.serves_index:
                    lines.append(f"  = {tag.ref}: already serves this index (not pushed)")
                    continue
                if tag.now is None:
                    now = "new tag"
                elif tag.now_is_index:
                    now = f"now index {_short(tag.now)}"
                else:
                    now = f"now single-arch {_short(tag.now)}"
                changes = [c for c in tag.changes if c.change is not Change.SAME]
                what = ", ".join(f"{c.platform} {c.change}" for c in changes)
                lines.append(f"  → {tag.ref}: {now}" + (f"; {what}" if what else ""))
            for flag in preview.flags:
                lines.append(f"  {flag.severity} {flag.kind} {flag.subject}: {flag.message}")
        for preview in self.refused:
            lines.append(f"{preview.record.image} (run {preview.record.id}): refused")
            lines.append(f"  {preview.blocked}")
        for image in self.missing:
            lines.append(f"{image}: refused")
            lines.append("  no run to publish: build it first (`matui build --image NAME`)")
        return lines

    def question(self) -> str:
        tags = self.to_push
        images = len(
            {p.record.image for p in self.ready if any(not t.serves_index for t in p.tags)}
        )
        return f"push {len(tags)} tag{_s(len(tags))} of {images} image{_s(images)}?"

    def to_json(self) -> dict[str, Any]:
        return {
            "images": [p.to_json() for p in self.previews],
            "missing": list(self.missing),
            "to_push": self.to_push,
        }


async def preview_release(
    runs: Sequence[RunRecord],
    *,
    registry: RegistryClient,
    config: Config | None,
    tags: Sequence[str] | None = None,
    allow_mixed_sources: bool = False,
    missing: Sequence[str] = (),
) -> ReleasePreview:
    """Each run's publish preview, read concurrently (never raises for an expected failure:
    each image's reason ends in its own ``blocked``)."""
    previews = await asyncio.gather(
        *(
            preview_publish(
                record,
                registry=registry,
                config=config,
                tags=tags,
                allow_mixed_sources=allow_mixed_sources,
            )
            for record in runs
        )
    )
    return ReleasePreview(tuple(previews), tuple(missing))


@dataclass(frozen=True)
class ReleaseReport:
    """What publishing a release did: each ready image's report, and the refused ones."""

    preview: ReleasePreview
    reports: tuple[PublishReport, ...]

    @property
    def ok(self) -> bool:
        """Every image asked for serves its index, verified."""
        return (
            not self.preview.refused
            and not self.preview.missing
            and all(report.ok for report in self.reports)
        )

    def lines(self) -> list[str]:
        """Per tag: verified (pushed, or already served), refused or failed with why; per
        refused image, why."""
        lines: list[str] = []
        for report in self.reports:
            for result in report.results:
                if result.verified:
                    how = "unchanged" if result.outcome is TagOutcome.UNCHANGED else "pushed"
                    lines.append(f"{result.ref}: {how} and verified, index {result.digest}")
                else:
                    why = result.error or report.error or ""
                    lines.append(f"{result.ref}: {result.outcome}" + (f": {why}" if why else ""))
            if not report.results and report.error:
                lines.append(f"{report.preview.record.image}: refused: {report.error}")
        for preview in self.preview.refused:
            lines.append(f"{preview.record.image}: refused: {preview.blocked}")
        for image in self.preview.missing:
            lines.append(f"{image}: refused: no run to publish")
        return lines

    def line(self) -> str:
        published = sum(1 for r in self.reports if r.ok)
        asked = len(self.preview.previews) + len(self.preview.missing)
        if self.ok:
            return f"release published and verified: {published} of {asked} images"
        return (
            f"release incomplete: {published} of {asked} images serve their index; "
            "the lines above say why for each other one"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "line": self.line(),
            "images": [
                {"image": r.preview.record.image, "run": r.preview.record.id, **r.to_json()}
                for r in self.reports
            ],
            "refused": [
                {"image": p.record.image, "run": p.record.id, "reason": p.blocked}
                for p in self.preview.refused
            ],
            "missing": list(self.preview.missing),
        }


async def publish_release(
    preview: ReleasePreview,
    *,
    registry: RegistryClient,
    config: Config | None,
    pool: SshPool | None,
) -> ReleaseReport:
    """Publish every ready image of a confirmed preview (each re-checked as :func:`publish`
    does: a tag that moved since the preview refuses that image); images are published
    concurrently, each its own tags in order."""
    reports = await asyncio.gather(
        *(publish(item, registry=registry, config=config, pool=pool) for item in preview.ready)
    )
    return ReleaseReport(preview, tuple(reports))


def _short(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:19]


def _s(count: int) -> str:
    return "" if count == 1 else "s"
