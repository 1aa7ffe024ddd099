"""What the publish confirmation shows, and the push it runs: both straight from the engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    from matui.engine.build.run import BuildRun
    from matui.ui.app import MatuiApp

PushFn = Callable[[], Awaitable[Text]]


async def prepare_publish(app: MatuiApp, run: BuildRun) -> tuple[Text, str | None, PushFn | None]:
    """(summary, why it is blocked or None, the push to run on enter)."""
    from matui.engine.flags import has_errors, index_diffs, read_tags
    from matui.engine.publish import (
        ManifestRefused,
        VerifyError,
        check_index,
        index_host,
        open_flags,
        plan_index,
        push_index,
    )
    from matui.engine.registry import RegistryClient, RegistryError

    summary = Text()
    if run.running:
        busy = [s.job.arch for s in run.status.values() if not s.state.finished]
        return summary, f"still building: {', '.join(busy)}; wait for every arch to end", None
    try:
        plan = plan_index(run.record)
    except ManifestRefused as exc:
        return summary, str(exc), None
    registry = RegistryClient()
    try:
        before = await read_tags(registry, plan.repository, plan.tags)
    except RegistryError as exc:
        return (
            summary,
            f"cannot read what the tags hold now, so cannot show what moves: {exc}",
            None,
        )

    confirmed = {t: (m.digest if m else None) for t, m in before.items()}
    host = index_host(run.record, app.config)
    try:
        diffs = await index_diffs(plan, registry, state=before)
        flags = await check_index(
            run.record, plan, registry, confirmed, config=app.config, host=host
        )
    except RegistryError as exc:
        return summary, f"cannot check the registry, so nothing is pushed: {exc}", None
    styles = {"added": "green", "changed": "yellow", "dropped": "bold red", "same": "dim"}
    for tag in plan.tags:
        summary.append(f"{plan.target(tag)}\n", style="bold")
        now = before[tag]
        summary.append("  now: ", style="dim")
        if now is None:
            summary.append("nothing (new tag)\n")
        elif now.is_index:
            summary.append(f"index {now.digest[:19]}\n")
        else:
            summary.append(f"single-arch manifest {now.digest[:19]}\n", style="yellow")
        summary.append("  platform       now                  new\n", style="dim")
        for change in diffs[tag]:
            summary.append(f"  {change.platform:14} {(change.before or '-')[:19]:20} ")
            summary.append(f"{(change.after or '-')[:19]:20} ")
            summary.append(f"{change.change}\n", style=styles.get(str(change.change), ""))
    shown = open_flags(run.record, flags)
    if shown:
        summary.append("\nOpen flags:\n", style="bold")
        for flag in shown:
            style = "bold red" if flag.severity == "error" else ""
            summary.append(f"  {flag.severity}: {flag.kind} {flag.subject}: ", style=style)
            summary.append(f"{flag.message}\n")
    if has_errors(shown):
        return summary, "an error flag is open (listed above); fix it and build again", None

    async def push() -> Text:
        try:
            results = await push_index(
                run.record, registry, config=app.config, pool=app.pool(), expected_before=confirmed
            )
        except (ManifestRefused, VerifyError, RegistryError, RuntimeError) as exc:
            app.status_text = "publish failed"
            return Text(f"NOT PUBLISHED\n\n{exc}", style="bold red")
        app.published = results[0].digest
        app.status_text = "published"
        text = Text("PUBLISHED AND VERIFIED\n\n", style="bold green")
        for result in results:
            text.append(f"{result.ref}\n", style="bold")
            text.append(f"  index {result.digest}\n")
            text.append(f"  serves {', '.join(result.platforms)}\n")
        return text

    return summary, None, push
