"""The history (key ``H``): earlier runs of the image, an old run opened read-only in the
dashboard's own panes, and "what changed since the last green run" of an arch.

The rows, trends and comparisons are the engine's (:mod:`matui.engine.history`): this module
renders them. An old run's logs come through the engine's replay of a stored run
(``BuildRun.resume`` + ``replay``: the one decoder, nothing launched, nothing written), into
panes mounted beside the current run's, which stay mounted but hidden so a live build goes on
filling them; ``esc`` brings them back.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Static

from matui.ui.widgets.arch_pane import ArchPane

if TYPE_CHECKING:
    from matui.engine.build.run import BuildRun
    from matui.engine.history import Changes, HistoryRow
    from matui.engine.records import RunRecord
    from matui.ui.app import MatuiApp

_OPENED = itertools.count(1)
"""Old runs opened so far (their panes' ids)."""

READ_ONLY_GROUP = "history-replay"
"""The worker group of an old run's replay (cancelled when the view closes)."""

_VERDICT_STYLE = {
    "built": "green",
    "published": "bold green",
    "partly published": "yellow",
    "blocked": "red",
    "failed": "bold red",
    "lost": "bold red",
    "cancelled": "yellow",
    "running": "yellow",
}


def when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _ascii_only(app: MatuiApp) -> bool:
    """A 16-colour console (the Linux console, a bare serial line) often has no block glyphs."""
    return app.console.color_system in ("standard", "windows")


class HistoryScreen(ModalScreen[str | None]):
    """Earlier runs of the image, newest first; ``enter`` opens one read-only, ``d`` shows what
    changed for an arch since its last green run, ``esc`` closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,H", "dismiss(None)", "Close", id="history.close"),
        Binding("d", "changes", "What changed", id="history.changes"),
    ]

    DEFAULT_CSS = """
    #history { width: 98%; max-width: 180; }
    #history DataTable { height: auto; max-height: 70vh; }
    #history-hint { color: $text-muted; }
    """

    def __init__(
        self, rows: Sequence[HistoryRow], runs: Sequence[RunRecord], arch: str | None = None
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.rows = list(rows)
        self.runs = {r.id: r for r in runs}
        self.every = list(runs)
        self.arch = arch
        """The arch ``d`` compares (the dashboard's focused pane when H was pressed)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="history", classes="dialog"):
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
            yield Static(
                "enter opens the run read-only (esc returns) · d what changed since the last "
                "green run · esc closes",
                id="history-hint",
            )

    def on_mount(self) -> None:
        box = self.query_one("#history")
        image = self.rows[0].image if self.rows else ""
        box.border_title = f"History of {image}" if image else "History"
        table: DataTable[Text | str] = self.query_one(DataTable)
        ascii_only = _ascii_only(self.app)  # type: ignore[arg-type]
        # What an on-call engineer scans first, first: the run id last (the title shows it).
        table.add_columns("WHEN", "VERDICT", "FAILED", "TIME AND TREND", "PUBLISHED", "WHO", "RUN")
        for row in self.rows:
            kind = str(row.verdict.kind)
            table.add_row(
                when(row.started),
                Text(kind, style=_VERDICT_STYLE.get(kind, "")),
                Text(row.failed_text(), style="red"),
                row.time_text(ascii_only=ascii_only),
                row.published_text(),
                row.who or "-",
                row.run,
                key=row.run,
            )
        if not self.rows:
            self.query_one("#history-hint", Static).update(
                "No run of this image recorded yet: b builds one · esc closes"
            )
        table.focus()

    def selected(self) -> HistoryRow | None:
        table: DataTable[Text | str] = self.query_one(DataTable)
        if not self.rows or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.dismiss(str(event.row_key.value))

    def action_changes(self) -> None:
        from matui.engine.history import changes_since_green

        row = self.selected()
        if row is None:
            self.app.bell()
            return
        names = [a.arch for a in row.arches]
        failed = [a.arch for a in row.failed]
        choices = [self.arch] if self.arch in names else failed + names
        arch = choices[0] if choices else None
        if arch is None:
            self.notify("this run has no arch", severity="warning")
            return
        changes = changes_since_green(self.runs[row.run], arch, self.every)
        self.app.push_screen(ChangesScreen(changes))


def short(value: str | None) -> str:
    """A digest as the panes show one (``sha256:`` and 12 hex digits); the comparison itself
    is the engine's, on whole values."""
    if value is None:
        return "unknown"
    if value.startswith("sha256:") and len(value) > 19:
        return value[:19] + "…"
    return value


def render_changes(changes: Changes) -> Group:
    """The comparison side by side: one row per input, a changed one marked and bold."""
    head = Text(changes.message(), style="bold")
    if changes.green_run is None:
        return Group(head, Text("\nnothing to compare with: no earlier run of this image built it"))
    table = Table(box=None, padding=(0, 1), expand=False, show_edge=False)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("WHAT", overflow="fold")
    table.add_column("GREEN RUN", min_width=20, overflow="fold")
    table.add_column("THIS RUN", min_width=20, overflow="fold")
    for change in changes.rows:
        style = "bold yellow" if change.changed else ""
        table.add_row(
            "*" if change.changed else "",
            Text(change.what, style=style),
            Text(short(change.green), style="dim" if change.changed else ""),
            Text(short(change.now), style=style),
        )
    green = f"green run {changes.green_run} ({when(changes.green_started or 0)})"
    runs = Text(f"{green} · this run {changes.run}", style="dim")
    return Group(head, runs, Text(""), table)


class ChangesScreen(ModalScreen[None]):
    """What changed for one arch since its last green run; ``esc`` closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,d", "dismiss", "Close", id="changes.close"),
    ]

    def __init__(self, changes: Changes) -> None:
        super().__init__(classes="dialog-screen")
        self.changes = changes

    def compose(self) -> ComposeResult:
        with Vertical(id="changes", classes="dialog"), VerticalScroll():
            yield Static(render_changes(self.changes), id="changes-text")

    def on_mount(self) -> None:
        box = self.query_one("#changes")
        box.border_title = f"What changed: {self.changes.arch} · run {self.changes.run}"
        self.query_one(VerticalScroll).focus()


# --- an old run, read-only, in the dashboard's panes ------------------------------------------


@dataclass
class ReadOnlyRun:
    """An old run open in the dashboard: its record, the engine's replay of it, its panes, and
    the widgets it hid (the current run's panes, or the placeholder)."""

    record: RunRecord
    run: BuildRun
    panes: dict[str, ArchPane]
    hidden: list[Widget] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.record.id

    def title(self) -> Text:
        """Read-only first (the one thing that must not be missed), then the verdict."""
        verdict = self.record.verdict()
        parts = [
            Text(f"read-only: run {self.record.id}, {when(self.record.created)}", "bold reverse"),
            Text(verdict.line(), _VERDICT_STYLE.get(str(verdict.kind), "")),
            Text("esc returns to the current run", "dim"),
            Text(f"{self.record.image}:{','.join(self.record.tags)}"),
        ]
        return Text(" · ").join(parts)

    def refusal(self, what: str) -> str:
        return (
            f"{what}: not on an old run — run {self.record.id} is open read-only; esc returns "
            "to the current run"
        )


def open_history(app: MatuiApp) -> None:
    """``H``: the history of the dashboard's image; enter opens a run read-only."""
    from matui.engine.history import history
    from matui.engine.records import list_runs, state_dir

    if app.image is None:
        app.notify("no [[images]] in the config: no history to show", severity="warning")
        return
    runs = [r for r in list_runs(app.state_root or state_dir()) if r.image == app.image.name]
    pane = app.focused_pane()
    arch = pane.arch if pane is not None else None

    def chosen(run_id: str | None) -> None:
        if run_id is not None:
            record = next(r for r in runs if r.id == run_id)
            app.run_worker(open_read_only(app, record), group="history-open", exclusive=True)

    app.push_screen(HistoryScreen(history(runs), runs, arch), chosen)


async def open_read_only(app: MatuiApp, record: RunRecord) -> None:
    """Open ``record`` in the dashboard's panes, read-only: its stored logs replayed by the
    engine; the current run's panes hidden (a live build keeps filling them)."""
    from matui.engine.build.run import BuildRun

    if app.run_ is not None and record.id == app.run_.id:
        close_read_only(app)
        app.notify(f"run {record.id} is the current run", timeout=4)
        return
    try:
        run = BuildRun.resume(record, app.config, app.pool())
    except Exception as exc:  # a record from another config: say so, do not crash
        app.notify(f"cannot open run {record.id}: {exc}", severity="warning")
        return
    previous = app.viewing
    close_read_only(app)
    # Another old run's panes are on their way out: not to be hidden, nor brought back later.
    leaving = set(previous.panes.values()) if previous is not None else set()
    container = app.query_one("#panes")
    if container.has_class("-zoomed"):
        app.action_zoom()  # the zoom belongs to the current run's panes
    hidden = [w for w in container.children if w.display and w not in leaving]
    for widget in hidden:
        widget.styles.display = "none"
    panes: dict[str, ArchPane] = {}
    serial = next(_OPENED)
    for key, status in run.status.items():
        job = status.job
        # Ids of their own: the panes of an old run opened before may still be leaving.
        pane = ArchPane(f"old{serial}-{key}", job.arch, job.host, emulated=job.emulated)
        pane.add_class("-read-only")
        pane.set_state(
            str(status.state),
            status.digest or status.failing_step or status.error or "",
            status.failure,
        )
        panes[key] = pane
    await container.mount_all(list(panes.values()))
    app.viewing = ReadOnlyRun(record, run, panes, hidden)
    app._update_title()
    first = next(iter(panes.values()), None)
    if first is not None:
        first.view.focus()
    app.notify(
        f"run {record.id} opened read-only: its stored logs; esc returns to the current run",
        timeout=6,
    )
    run.replay()
    app.run_worker(_replay(app, run, panes), group=READ_ONLY_GROUP, exclusive=True)


async def _replay(app: MatuiApp, run: BuildRun, panes: dict[str, ArchPane]) -> None:
    """The engine's replay of the old run's stored lines into its panes (until the view
    closes: the replay then waits for events that never come, and is cancelled)."""
    from matui.engine.build.run import LinesEvent, StepChange

    async for event in run.events(until_finished=False):
        pane = panes.get(getattr(event, "job", ""))
        if pane is None:
            continue
        if isinstance(event, LinesEvent):
            pane.view.add_lines(event.lines)
        elif isinstance(event, StepChange):
            pane.set_step(event.step)


def close_read_only(app: MatuiApp) -> bool:
    """Back to the current run (False: no old run was open)."""
    viewing = app.viewing
    if viewing is None:
        return False
    app.workers.cancel_group(app, READ_ONLY_GROUP)
    app.viewing = None
    for pane in viewing.panes.values():
        if pane.is_attached:
            pane.remove()
    for widget in viewing.hidden:
        if widget.is_attached:  # a new build replaced the panes meanwhile: nothing to restore
            widget.styles.clear_rule("display")
            widget.refresh(layout=True)
    app._layout(app.size.width)
    app._update_title()
    try:
        current = next(p for p in app.query(ArchPane) if p not in viewing.panes.values())
    except (StopIteration, NoMatches):
        return True
    current.view.focus()
    return True
