"""A run's arches side by side (key ``v``): where they part ways, which arch and which step is
slow, and what one step printed on each arch.

When arm64 fails and amd64 passes, the panes show two logs that the engineer has to line up by
eye. This screen shows the engine's :class:`~matui.engine.build.steps.Comparison` instead: one
row per buildx step in build order, its state and seconds on each arch, the first row where the
arches part ways marked and under the cursor, and each arch's bar on one time axis in the same
row (the engine draws the bars, sized to the columns this screen has). ``enter`` on a row shows
that step's own output from each arch in columns side by side; ``esc`` closes.

Reading the logs can take a moment for a big run: it happens in a worker thread, never on the
UI thread. Every string shown is inert already (the engine made it so) and goes in as
:class:`~rich.text.Text`, never as markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from matui.engine.build.steps import (
    CompareRow,
    Comparison,
    RowState,
    StepOutput,
    compare_run,
    run_step_output,
)

if TYPE_CHECKING:
    from matui.engine.records import RunRecord

_STATE_STYLE = {
    RowState.DONE: "green",
    RowState.CACHED: "dim",
    RowState.ERROR: "bold red",
    RowState.CANCELED: "yellow",
    RowState.RUNNING: "bold yellow",
    RowState.NOT_REACHED: "dim",
    RowState.NO_END: "yellow",
}

STATE_WIDTH = 11
"""``error 12.3s``, ``not reached``: a state cell's columns."""


def column_widths(width: int, arches: int) -> tuple[int, int]:
    """(step name, one bar) columns for a table ``width`` wide: the bars get about two fifths
    of what is left after the fixed columns, the name the rest (at least 16)."""
    columns = 3 + 2 * arches
    fixed = 1 + 4 + STATE_WIDTH * arches + 2 * columns + 2  # cell padding, scrollbar
    free = max(16 + 6 * arches, width - fixed)
    bar = max(6, min(40, (free * 2 // 5) // max(arches, 1)))
    return max(16, free - bar * arches), bar


class CompareScreen(ModalScreen[None]):
    """The arches of one run side by side."""

    DEFAULT_CSS = """
    CompareScreen {
        align: center middle;
    }
    #compare {
        width: 100%;
        height: 100%;
        border: round $accent;
        border-title-align: left;
        padding: 0 1;
        background: $surface;
    }
    #compare-head {
        height: auto;
    }
    #compare-table {
        height: 1fr;
    }
    #compare-foot {
        height: auto;
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,v,q", "dismiss", "Close", id="compare.close"),
    ]

    def __init__(
        self,
        record: RunRecord,
        observed: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        super().__init__()
        self.record = record
        self.observed = observed
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="compare"):
            yield Static(Text("reading the logs…", style="dim"), id="compare-head")
            yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=False)
            yield Static("", id="compare-foot")

    def on_mount(self) -> None:
        self.query_one("#compare").border_title = f"Arches side by side · run {self.record.id}"
        self.query_one(DataTable).focus()
        self._load()

    @work(thread=True, exclusive=True, group="compare")
    def _load(self) -> None:
        comparison = compare_run(self.record, self.observed)
        self.app.call_from_thread(self._show, comparison)

    def _show(self, comparison: Comparison) -> None:
        self.comparison = comparison
        self.query_one("#compare-head", Static).update(self._head(comparison))
        self._fill()

    def on_resize(self) -> None:
        if self.comparison is not None:
            self._fill()

    def _head(self, comparison: Comparison) -> Text:
        jobs = Text(" · ").join(
            Text(f"{arch} {state}" + ("" if sec is None else f" {sec:.1f}s"))
            for arch, state, sec in comparison.jobs
        )
        head = Text.assemble(jobs, "\n")
        diverging = comparison.diverging
        if diverging is None:
            head.append(comparison.why, style="bold green" if comparison.rows else "dim")
        else:
            head.append(f"* parts ways at #{diverging.number}: ", style="bold red")
            head.append(comparison.why, style="bold")
        return head

    def _fill(self) -> None:
        comparison = self.comparison
        assert comparison is not None
        table = self.query_one(DataTable)
        name_width, bar_width = column_widths(
            table.size.width or self.size.width, len(comparison.arches)
        )
        cursor = table.cursor_row if table.row_count else comparison.first_divergence or 0
        table.clear(columns=True)
        table.add_column("", key="mark", width=1)
        table.add_column("#", key="number", width=4)
        table.add_column("step", key="step", width=name_width)
        for arch in comparison.arches:
            table.add_column(arch, key=f"state-{arch}", width=STATE_WIDTH)
        for arch in comparison.arches:
            table.add_column(f"{arch} time", key=f"bar-{arch}", width=bar_width)
        lanes = comparison.timeline(bar_width)
        for i, row in enumerate(comparison.rows):
            style = "bold red" if row.diverges else ""
            cells: list[Text] = [
                Text("*" if row.diverges else "", style="bold red"),
                Text(f"#{row.number}", style=style),
                Text(row.name, style=style, no_wrap=True, overflow="ellipsis"),
            ]
            for arch in comparison.arches:
                cell = row.cell(arch)
                cells.append(Text(cell.label(), style=_STATE_STYLE.get(cell.state, "")))
            for lane in lanes:
                state = row.cell(lane.arch).state
                cells.append(Text(lane.bars[i], style=_STATE_STYLE.get(state, "")))
            table.add_row(*cells, key=str(i))
        if comparison.rows:
            table.move_cursor(row=min(cursor, len(comparison.rows) - 1))
        estimated = (
            f" (estimated from durations: {', '.join(comparison.estimated)})"
            if comparison.estimated
            else ""
        )
        foot = Text(f"time axis 0 to {comparison.span:.1f}s{estimated}", no_wrap=True)
        foot.append("\nenter: the step's output on each arch · esc: close")
        self.query_one("#compare-foot", Static).update(foot)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        if self.comparison is None or event.row_key.value is None:
            return
        self._open_step(self.comparison.rows[int(event.row_key.value)])

    @work(thread=True, exclusive=True, group="compare-step")
    def _open_step(self, row: CompareRow) -> None:
        outputs = run_step_output(self.record, row)
        self.app.call_from_thread(self.app.push_screen, StepOutputScreen(row, outputs))


class StepOutputScreen(ModalScreen[None]):
    """One step's own lines from each arch, in columns; each column scrolls on its own and
    wraps long lines (never cuts them). ``esc`` closes."""

    DEFAULT_CSS = """
    StepOutputScreen {
        align: center middle;
    }
    #step-output {
        width: 100%;
        height: 100%;
        border: round $accent;
        border-title-align: left;
        background: $surface;
    }
    #step-output Horizontal {
        height: 1fr;
    }
    #step-output VerticalScroll {
        width: 1fr;
        height: 100%;
        border-left: vkey $primary;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="step-output.close"),
    ]

    def __init__(self, row: CompareRow, outputs: Sequence[StepOutput]) -> None:
        super().__init__()
        self.row = row
        self.outputs = tuple(outputs)

    def compose(self) -> ComposeResult:
        with Vertical(id="step-output"), Horizontal():
            for output in self.outputs:
                with VerticalScroll(id=f"step-output-{output.arch.replace('/', '-')}"):
                    yield Static(render_output(self.row, output))

    def on_mount(self) -> None:
        frame = self.query_one("#step-output")
        frame.border_title = f"#{self.row.number} {self.row.name}"
        frame.border_subtitle = "esc: back to the steps"
        scrolls = list(self.query(VerticalScroll))
        if scrolls:
            scrolls[0].focus()


def render_output(row: CompareRow, output: StepOutput) -> Text:
    """One arch's column: its state at the step, then the step's lines, each wrapped whole."""
    cell = row.cell(output.arch)
    text = Text(f"{output.arch}: {cell.label()}", style=f"bold {_STATE_STYLE.get(cell.state, '')}")
    if output.dropped:
        text.append(f"\n({output.dropped} earlier lines not shown)", style="dim")
    if not output.lines:
        text.append("\n(no lines)", style="dim")
    for line in output.lines:
        text.append("\n")
        text.append(line)
    text.overflow = "fold"
    return text
