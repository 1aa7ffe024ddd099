"""Modal screens: publish confirmation, quit while building, help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from matui.ui.publish import render_preview, render_report

if TYPE_CHECKING:
    from matui.engine.publish import PublishPreview, PublishReport


class PublishScreen(ModalScreen["PublishReport | None"]):
    """Shows the engine's publish preview: exactly what will move; `enter` pushes, `esc` backs
    out. Then the per-tag report.

    When publishing is blocked (an arch not built, an error flag open, the registry not
    readable) it says why and offers nothing to confirm — except when the only errors are arches
    built from different sources: then ``A`` (a deliberate capital) asks for the preview again
    with the explicit override (``allow_mixed``), which the publish records in the run. The
    screen knows nothing of the app: ``push`` runs the publish, ``on_report`` hands the report
    back as soon as it is in.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm", "Push", id="publish.confirm"),
        Binding("escape", "dismiss_screen", "Back", id="publish.back"),
        Binding("A", "allow_mixed", "Allow mixed sources", id="publish.allow_mixed", show=False),
    ]

    def __init__(
        self,
        preview: PublishPreview,
        *,
        push: Callable[[PublishPreview], Awaitable[PublishReport]] | None,
        on_report: Callable[[PublishReport], None] | None = None,
        allow_mixed: Callable[[], Awaitable[PublishPreview]] | None = None,
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.on_report = on_report
        self.report: PublishReport | None = None
        self.allow_mixed = allow_mixed
        self._push = push
        self._show(preview)

    def _show(self, preview: PublishPreview) -> None:
        self.preview = preview
        self.summary = render_preview(preview)
        self.blocked = preview.blocked
        self.push = None if preview.blocked else self._push
        self.state = "blocked" if preview.blocked or self._push is None else "confirm"

    @property
    def can_allow_mixed(self) -> bool:
        return (
            self.state == "blocked"
            and self.allow_mixed is not None
            and self.preview.blocked_by_sources
        )

    def compose(self) -> ComposeResult:
        with Vertical(id="publish", classes="dialog"):
            with VerticalScroll():
                yield Static(self.summary, id="publish-summary")
            yield Static(self._prompt(), id="publish-prompt")

    def on_mount(self) -> None:
        dialog = self.query_one("#publish")
        dialog.border_title = "Publish the multi-arch index"
        dialog.set_class(self.state == "blocked", "-blocked")

    def _prompt(self) -> Text:
        if self.state == "blocked":
            text = Text("NOT READY TO PUBLISH\n", style="bold red")
            text.append(self.blocked or "nothing to publish")
            if self.can_allow_mixed:
                text.append("\n\n")
                text.append("A", style="bold reverse")
                text.append(" publish anyway from these different sources (recorded in the run)")
            text.append("\n\nesc: back", style="dim")
            return text
        if self.state == "checking":
            return Text("checking again with mixed sources allowed…", style="bold")
        if self.state == "pushing":
            return Text("pushing the index and verifying what the registry serves…", style="bold")
        if self.state == "done":
            return Text("esc: close", style="dim")
        if self.preview.nothing_to_push:
            return Text.assemble(
                ("enter", "bold reverse"),
                " confirm (every tag already serves this index: nothing to push)   ",
                ("esc", "bold"),
                " back",
            )
        allowed = (
            ("mixed sources allowed: recorded in the run\n", "bold yellow")
            if self.preview.allow_mixed_sources
            else ""
        )
        return Text.assemble(
            allowed, ("enter", "bold reverse"), " push   ", ("esc", "bold"), " back"
        )

    def action_allow_mixed(self) -> None:
        if not self.can_allow_mixed:
            return
        self.state = "checking"
        self.query_one("#publish-prompt", Static).update(self._prompt())
        self._run_allow_mixed()

    @work(exclusive=True, group="push")
    async def _run_allow_mixed(self) -> None:
        assert self.allow_mixed is not None
        self._show(await self.allow_mixed())
        self.query_one("#publish").set_class(self.state == "blocked", "-blocked")
        self.query_one("#publish-summary", Static).update(self.summary)
        self.query_one("#publish-prompt", Static).update(self._prompt())

    def action_confirm(self) -> None:
        if self.state != "confirm" or self.push is None:
            return
        self.state = "pushing"
        self.query_one("#publish-prompt", Static).update(self._prompt())
        self._run_push()

    @work(exclusive=True, group="push")
    async def _run_push(self) -> None:
        assert self.push is not None
        report = await self.push(self.preview)
        self.report = report
        self.state = "done"
        if self.on_report is not None:
            self.on_report(report)
        self.query_one("#publish-summary", Static).update(render_report(report))
        self.query_one("#publish-prompt", Static).update(self._prompt())

    def action_dismiss_screen(self) -> None:
        if self.state not in ("pushing", "checking"):
            self.dismiss(self.report)


class QuitScreen(ModalScreen[str | None]):
    """Quitting while builds run: leave them running on their hosts (default) or cancel them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,l", "choose('leave')", "Leave running", id="quit.leave"),
        Binding("c", "choose('cancel')", "Cancel builds", id="quit.cancel"),
        Binding("escape", "choose(None)", "Back", id="quit.back"),
    ]

    def __init__(self, running: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.running = running

    def compose(self) -> ComposeResult:
        text = Text(f"Builds still running: {', '.join(self.running)}\n\n")
        text.append("enter", style="bold reverse")
        text.append("  quit and leave them running on their hosts (default)\n")
        text.append("c", style="bold")
        text.append("      cancel them on their hosts, then quit\n")
        text.append("esc", style="bold")
        text.append("    back to the dashboard")
        with Vertical(id="quit", classes="dialog"):
            yield Static(text)

    def on_mount(self) -> None:
        self.query_one("#quit").border_title = "Quit matui?"

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)


class HelpScreen(ModalScreen[None]):
    """Every key. At 80x24 the list is taller than the screen: it scrolls (arrows, j/k, page
    keys), and keys that differ only by a digit (1…9) share a row."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close"),
        Binding("down,j", "scroll(1)", "Down", show=False, id="help.down"),
        Binding("up,k", "scroll(-1)", "Up", show=False, id="help.up"),
        Binding("pagedown,space", "scroll(10)", "Page down", show=False, id="help.page_down"),
        Binding("pageup", "scroll(-10)", "Page up", show=False, id="help.page_up"),
    ]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.rows = _digit_rows(rows)

    def compose(self) -> ComposeResult:
        text = Text()
        for key, description in self.rows:
            text.append(f"{key:>10}  ", style="bold")
            text.append(f"{description}\n")
        text.append("\nEvery action is also in the command palette (ctrl+p).", style="dim")
        with Vertical(id="help", classes="dialog"), VerticalScroll():
            yield Static(text)

    def on_mount(self) -> None:
        help = self.query_one("#help")
        help.border_title = "Keys"
        help.border_subtitle = "↑↓ PgUp PgDn scroll · esc closes"

    def action_scroll(self, rows: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=rows, animate=False)


def _digit_rows(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Runs of rows whose key is a digit and whose descriptions differ only by it, as one row:
    ("1…9", "Focus pane N ...")."""
    merged: list[tuple[str, str]] = []
    run: list[tuple[str, str]] = []

    def close() -> None:
        if len(run) > 2:
            merged.append((f"{run[0][0]}…{run[-1][0]}", run[0][1].replace(run[0][0], "N")))
        else:
            merged.extend(run)
        run.clear()

    for key, description in rows:
        same = (
            key.isdigit()
            and run
            and description.replace(key, "N") == run[0][1].replace(run[0][0], "N")
        )
        if not same:
            close()
        if key.isdigit():
            run.append((key, description))
        else:
            merged.append((key, description))
    close()
    return merged
