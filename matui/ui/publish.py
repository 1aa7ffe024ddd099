"""What the publish confirmation shows, and the push it runs: both straight from the engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    from matui.engine.runner import BuildRun
    from matui.ui.app import MatuiApp

PushFn = Callable[[], Awaitable[Text]]


async def prepare_publish(app: MatuiApp, run: BuildRun) -> tuple[Text, str | None, PushFn | None]:
    """(summary, why it is blocked or None, the push to run on enter)."""
    from matui.engine.manifest import (
        ManifestRefused,
        VerifyError,
        current_state,
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
        before = await current_state(plan, registry)
    except RegistryError as exc:
        return (
            summary,
            f"cannot read what the tags hold now, so cannot show what moves: {exc}",
            None,
        )

    for tag in plan.tags:
        summary.append(f"{plan.target(tag)}\n", style="bold")
        now = before[tag]
        summary.append("  now: ", style="dim")
        if now is None:
            summary.append("nothing (new tag)\n")
        elif now.is_index:
            summary.append(f"index {now.digest[:19]}\n")
            for entry in now.entries:
                if not entry.attestation:
                    summary.append(f"         {entry.platform!s:14} {entry.digest[:19]}\n")
        else:
            summary.append(f"single-arch manifest {now.digest[:19]}\n", style="yellow")
        summary.append("  new: ", style="dim")
        summary.append("index of\n")
        current = (
            {str(e.platform): e.digest for e in now.entries if not e.attestation}
            if now is not None and now.is_index
            else {}
        )
        for source in plan.sources:
            name = str(source.platform)
            if name not in current:
                mark, style = "+ added  ", "green"
            elif current[name] != source.digest:
                mark, style = "~ changed", "yellow"
            else:
                mark, style = "= same   ", "dim"
            summary.append(f"         {name:14} {source.digest[:19]}  ", style="")
            summary.append(f"{mark}\n", style=style)
        for name in sorted(set(current) - {str(s.platform) for s in plan.sources}):
            summary.append(f"         {name:14} {current[name][:19]}  ", style="")
            summary.append("- dropped\n", style="bold red")
    flags = run.record.data.get("flags", [])
    if flags:
        summary.append("\nOpen flags:\n", style="bold")
        for flag in flags:
            summary.append(f"  {flag['severity']}: {flag['kind']} {flag['subject']}: ")
            summary.append(f"{flag['message']}\n")
    confirmed = {t: (m.digest if m else None) for t, m in before.items()}

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
