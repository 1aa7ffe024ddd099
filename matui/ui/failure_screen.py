"""Why an arch failed, on one screen: the failure card of the focused failed pane (key ``i``).

An on-call engineer on a bastion's 80x24 terminal needs the failing step, its own exit code
(not buildx's), the cause with advice and whether a retry is worth it, the host it ran on, and
that step's last lines — the pane's subtitle has room for one line of it. The card shows the
engine's :class:`~matui.engine.build.failure.FailureRecord` field by field as
:meth:`~matui.engine.build.failure.FailureRecord.card` lists them (the CLI prints the same
fields): long values and log lines wrap, nothing is cut, and the card scrolls when it is taller
than the screen. Every string in it is inert already (the engine made it so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from matui.engine.build.failure import FailureRecord

_VALUE_STYLE = {
    "exit code": "bold",
    "cause": "bold red",
    "moved": "bold yellow",  # its host failed under it: it was built elsewhere after
}


def render_card(failure: FailureRecord) -> RenderableType:
    """The card's fields as a two-column grid (a wrapped value stays in its column), then the
    failing step's own last lines, each wrapped whole."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold", ratio=1)
    for label, value in failure.card():
        style = _VALUE_STYLE.get(label, "")
        if label == "retry worth it":
            style = "bold green" if failure.retry else "bold yellow"
        grid.add_row(label, Text(value, style=style, overflow="fold"))
    parts: list[RenderableType] = [grid, Text("")]
    if failure.lines:
        parts.append(Text(f"the step's last {len(failure.lines)} lines", style="bold"))
        parts += [Text(line, overflow="fold") for line in failure.lines]
    else:
        parts.append(Text("the step printed no lines of its own", style="dim"))
    return Group(*parts)


class FailureScreen(ModalScreen[None]):
    """The failure card of one arch; arrows and page keys scroll, `esc` (or ``i``) closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,i,q", "dismiss", "Close", id="failure.close"),
    ]

    def __init__(self, arch: str, host: str, state: str, failure: FailureRecord) -> None:
        super().__init__(classes="dialog-screen")
        self.arch = arch
        self.host = host
        self.state = state
        self.failure = failure

    def compose(self) -> ComposeResult:
        with Vertical(id="failure-card", classes="dialog"), VerticalScroll():
            yield Static(render_card(self.failure), id="failure-card-text")

    def on_mount(self) -> None:
        card = self.query_one("#failure-card")
        card.border_title = Text(f"Why {self.arch} {self.state} · {self.host}")
        card.border_subtitle = "esc closes · ↑↓ PgUp PgDn scroll"
        self.query_one(VerticalScroll).focus()  # arrows and page keys scroll a long card
