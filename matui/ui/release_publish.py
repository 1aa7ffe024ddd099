"""``m`` on the release view: publish every image of the release after one confirmation.

The engine decides (:func:`~matui.engine.release.preview_release`, then
:func:`~matui.engine.release.publish_release`); this module shows its preview's lines (every tag
that would move, every image refused and why) in one dialog, and its report's lines (each tag
pushed and verified, refused or failed) on the release view and in the messages.

The release is each image's run built in this dashboard, else the image's newest recorded run
(:func:`~matui.engine.release.latest_runs`), as ``matui manifest`` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from matui.engine.release import ReleasePreview, ReleaseReport
    from matui.ui.app import MatuiApp
    from matui.ui.release_view import ImageState

__all__ = ["ReleasePublishScreen", "preview_text", "publish_release_view", "report_text"]


def preview_text(preview: ReleasePreview) -> Text:
    """The engine's confirmation lines, an image's line in bold, a refusal in red."""
    text = Text()
    refused = False
    for line in preview.lines():
        if not line.startswith(" "):
            refused = line.endswith(": refused")
            text.append(line + "\n", style="bold red" if refused else "bold")
        elif line.startswith("  = "):
            text.append(line + "\n", style="dim")
        else:
            text.append(line + "\n", style="red" if refused else "")
    return text


def report_text(report: ReleaseReport) -> list[Text]:
    """The engine's report, one line per tag (verified green, else red), then its verdict."""
    lines = [
        Text(line, style="green" if "and verified" in line else "bold red")
        for line in report.lines()
    ]
    lines.append(Text(report.line(), style="bold green" if report.ok else "bold red"))
    return lines


class ReleasePublishScreen(ModalScreen[bool]):
    """The release's preview in one scrolling dialog: ``y``/``enter`` pushes every listed
    tag, ``esc``/``n`` backs out (dismissed with True or False)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Push", id="release-publish.yes"),
        Binding("escape,n", "answer(False)", "Back", id="release-publish.no"),
        Binding("down,j", "scroll(1)", "Down", show=False, id="release-publish.down"),
        Binding("up,k", "scroll(-1)", "Up", show=False, id="release-publish.up"),
    ]

    def __init__(self, preview: ReleasePreview) -> None:
        super().__init__(classes="dialog-screen")
        self.preview = preview

    def compose(self) -> ComposeResult:
        prompt = Text()
        if self.preview.nothing_to_push:
            prompt.append("every tag already serves its index: nothing to push\n", style="green")
        else:
            prompt.append(self.preview.question() + "\n", style="bold")
        prompt.append("y", style="bold reverse")
        prompt.append("/")
        prompt.append("enter", style="bold reverse")
        prompt.append(" = push and verify    ")
        prompt.append("esc", style="bold")
        prompt.append(" = back")
        with Vertical(id="release-publish", classes="dialog"):
            with VerticalScroll():
                yield Static(preview_text(self.preview), id="release-publish-summary")
            yield Static(prompt, id="release-publish-prompt")

    def on_mount(self) -> None:
        self.query_one("#release-publish").border_title = "Publish the release"

    def action_scroll(self, rows: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=rows, animate=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


async def publish_release_view(app: MatuiApp, states: Sequence[ImageState]) -> None:
    """Preview the release, ask once, publish, and show the report (run in a worker: it waits
    for the dialog)."""
    from matui.engine.records import RunRecord, state_dir
    from matui.engine.registry import RegistryClient
    from matui.engine.release import latest_runs, preview_release, publish_release

    recorded, missing = latest_runs(
        app.state_root or state_dir(), [s.image for s in states if s.run is None]
    )
    newest = {record.image: record for record in recorded}
    runs: list[RunRecord] = []
    for state in states:
        if state.run is not None:
            runs.append(state.run.record)
        elif state.name in newest:
            runs.append(newest[state.name])
    registry = RegistryClient()
    app.show_release_lines([Text("reading the registry for each image…", style="yellow")])
    preview = await preview_release(runs, registry=registry, config=app.config, missing=missing)
    if not preview.ready:
        lines = [Text("nothing to publish:", style="bold red")]
        lines += [Text(line) for line in preview.lines()]
        app.show_release_lines(lines)
        app.notify("nothing to publish: the release view says why", severity="warning")
        return
    if not await app.push_screen_wait(ReleasePublishScreen(preview)):
        app.show_release_lines([Text("publish cancelled: nothing pushed", style="dim")])
        return
    app.show_release_lines([Text("pushing each index and verifying it…", style="yellow")])
    report = await publish_release(preview, registry=registry, config=app.config, pool=app.pool())
    lines = report_text(report)
    app.show_release_lines(lines)
    for line in lines:
        app.remember(line.plain, "information" if report.ok else "error")
    app.notify(report.line(), severity="information" if report.ok else "error", timeout=10)
    app.refresh_release()
