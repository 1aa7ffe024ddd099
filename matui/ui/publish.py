"""The dashboard's rendering of a publish: the engine's preview and report as Rich text.

The engine decides (:func:`matui.engine.publish.preview_publish` and
:func:`~matui.engine.publish.publish`); this module only lays out what they returned. It knows
nothing of the app: :class:`~matui.ui.screens.PublishScreen` shows these texts and calls back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    from matui.engine.publish import PublishPreview, PublishReport

_CHANGE_STYLES = {"added": "green", "changed": "yellow", "dropped": "bold red", "same": "dim"}


def render_preview(preview: PublishPreview) -> Text:
    """Each tag: what it serves now, the new index platform by platform; then the open flags."""
    summary = Text()
    plan = preview.plan
    if plan is not None and (by_digest := [str(s.platform) for s in plan.sources if s.by_digest]):
        summary.append(f"{', '.join(by_digest)}: pushed by digest (no per-arch tag)\n", style="dim")
    for tag in preview.tags:
        summary.append(f"{tag.ref}\n", style="bold")
        summary.append("  now: ", style="dim")
        if tag.now is None:
            summary.append("nothing (new tag)\n")
        elif tag.now_is_index:
            summary.append(f"index {tag.now[:19]}\n")
        else:
            summary.append(f"single-arch manifest {tag.now[:19]}\n", style="yellow")
        if tag.serves_index:
            summary.append("  already serves this index: not pushed again\n", style="green")
        summary.append("  platform       now                  new\n", style="dim")
        for change in tag.changes:
            summary.append(f"  {change.platform:14} {(change.before or '-')[:19]:20} ")
            summary.append(f"{(change.after or '-')[:19]:20} ")
            summary.append(f"{change.change}\n", style=_CHANGE_STYLES.get(str(change.change), ""))
    if preview.flags:
        summary.append("\nOpen flags:\n", style="bold")
        for flag in preview.flags:
            style = "bold red" if flag.severity == "error" else ""
            summary.append(f"  {flag.severity}: {flag.kind} {flag.subject}: ", style=style)
            summary.append(f"{flag.message}\n")
    return summary


def render_report(report: PublishReport) -> Text:
    """The headline (published, already published, partly, not published), then each tag."""
    if report.no_op:
        tags = ", ".join(r.tag for r in report.results)
        verb = "serves" if len(report.results) == 1 else "serve"
        text = Text(f"ALREADY PUBLISHED: {tags} already {verb} this index\n\n", style="bold green")
    elif report.ok:
        text = Text("PUBLISHED AND VERIFIED\n\n", style="bold green")
    elif report.moved:
        text = Text("PARTLY PUBLISHED\n\n", style="bold yellow")
    else:
        text = Text("NOT PUBLISHED\n\n", style="bold red")
    text.append(f"{report.line()}\n\n")
    for result in report.results:
        text.append(f"{result.ref}\n", style="bold")
        style = "green" if result.verified else "bold red"
        text.append(f"  {result.outcome}", style=style)
        if result.outcome == "unchanged":
            text.append(": already serves this index")
        text.append("\n")
        if result.verified:
            text.append(f"  index {result.digest}\n")
            text.append(f"  serves {', '.join(result.platforms)}\n")
        elif result.error:
            text.append(f"  {result.error}\n")
    if report.record_error:
        text.append(f"\n{report.record_error}\n", style="yellow")
    return text
