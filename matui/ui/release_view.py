"""The dashboard's release view: a grid of images x arches for a config of several images.

Each cell is one job: before ``b`` where the engine's joint plan
(:func:`~matui.engine.plan.plan_release`) puts it, then its state, elapsed time and host as the
engine's :class:`~matui.engine.build.run.JobStatus` says; the last column is each image's
verdict. ``enter`` on a cell opens that image's panes (the per-image dashboard, focused on that
arch), ``esc`` or ``o`` there comes back.

:class:`ImageState` is the per-image model (its plan or run, each job's log lines while its
panes are not on screen, the last detail of each job) and knows nothing of Textual; the
:class:`ReleaseScreen` only lays out what the states say. The app (``matui.ui.app``) owns the
states and drives the engine (:func:`build_release`, :func:`follow`, :func:`open_image`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Static

from matui.engine.logstore import LogStore
from matui.engine.records import JobState
from matui.ui.widgets.arch_pane import ArchPane
from matui.ui.widgets.footer import MatuiFooter

if TYPE_CHECKING:
    from matui.engine.build.run import BuildRun, Event, JobStatus
    from matui.engine.config import ImageConfig
    from matui.engine.plan import BuildJob
    from matui.engine.probe import HostProbe
    from matui.ui.app import MatuiApp

__all__ = [
    "ImageState",
    "ReleaseScreen",
    "build_release",
    "cell_text",
    "elapsed",
    "follow",
    "open_image",
    "plan_states",
    "resume_release",
    "take_release",
]

_VERDICT_STYLE = {
    "running": "yellow",
    "built": "green",
    "published": "bold green",
    "partly published": "yellow",
    "blocked": "bold red",
    "failed": "bold red",
    "lost": "bold red",
    "cancelled": "yellow",
    "refused": "bold red",
    "planned": "dim",
    "no plan": "red",
}


def elapsed(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour)."""
    whole = max(0, int(seconds))
    minutes, secs = divmod(whole, 60)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def cell_text(status: JobStatus, detail: str, now: float) -> Text:
    """One job's cell: ``running 1:23 amd64-2``, ``queued (slot)``, ``✓ 0:41 amd64-1``,
    ``✗ exit 3 arm64-1``; ``detail`` is the job's last state line (a queued job's says it
    waits for a slot)."""
    host = status.job.host
    state = status.state
    seconds: float | None = None
    if status.started is not None and (status.finished is not None or not state.finished):
        seconds = (status.finished or now) - status.started
    elif state.finished:  # opened from its record: the host's own time, when it said
        seconds = status.host_seconds
    taken = elapsed(seconds) if seconds is not None else ""
    if state is JobState.QUEUED:
        slot = detail.startswith("waiting for a slot")
        return Text("queued (slot)" if slot else "queued", style="dim")
    if state is JobState.UPLOADING:
        return Text(f"uploading {host}", style="yellow")
    if state is JobState.RUNNING:
        return Text(" ".join(p for p in ("running", taken, host) if p), style="yellow")
    if state is JobState.SUCCEEDED:
        return Text(" ".join(p for p in ("✓", taken, host) if p), style="green")
    if state is JobState.FAILED:
        # The step's own exit code (the failure card's), else buildx's.
        step = status.failure.exit_code if status.failure is not None else None
        code = step if step is not None else status.exit_code
        why = f"exit {code}" if code is not None else "failed"
        return Text(f"✗ {why} {host}", style="bold red")
    if state is JobState.LOST:
        return Text(f"✗ lost {host}", style="bold red")
    return Text(str(state), style="yellow")  # cancelled


@dataclass
class ImageState:
    """One image of the release: its planned jobs (before ``b``) or its run, and what the
    release view needs of the run's events while the image's panes are not on screen."""

    image: ImageConfig
    tags: tuple[str, ...]
    jobs: list[BuildJob] = field(default_factory=list)
    """In plan order: the plan's before a build, the run's after."""
    run: BuildRun | None = None
    refusal: str | None = None
    """Why this image has no plan, or why its build did not start."""
    stores: dict[str, LogStore] = field(default_factory=dict)
    """Each job's log lines, kept whether or not its pane is on screen (the pane shows the
    store itself when the image is opened)."""
    details: dict[str, str] = field(default_factory=dict)
    """Each job's last state line (the engine's :attr:`StateEvent.detail`)."""

    @property
    def name(self) -> str:
        return self.image.name

    def job(self, key: str) -> BuildJob | None:
        return next((job for job in self.jobs if job.key == key), None)

    def start(self, run: BuildRun) -> None:
        """A build of this image started: its run's jobs, fresh logs."""
        self.run = run
        self.jobs = list(run.plan.jobs)
        self.refusal = None
        self.stores = {job.key: LogStore() for job in self.jobs}
        self.details = {}

    def take(self, event: Event, *, shown: bool) -> None:
        """An event of the image's run. ``shown``: the image's panes are on screen and take
        the lines themselves (into the same stores); else the lines go to the stores here."""
        from matui.engine.build.run import LinesEvent, StateEvent

        if isinstance(event, LinesEvent) and not shown:
            self.stores.setdefault(event.job, LogStore()).append(event.lines)
        elif isinstance(event, StateEvent):
            self.details[event.job] = event.detail

    def cell(self, key: str, now: float) -> Text:
        """The grid's cell for arch ``key``: the plan, or the job's state, time and host."""
        job = self.job(key)
        if job is None:
            return Text("-", style="dim")
        status = self.run.status.get(key) if self.run is not None else None
        if status is None:
            return Text(f"plan {job.host}" + (" (QEMU)" if job.emulated else ""), style="dim")
        return cell_text(status, self.details.get(key, ""), now)

    def verdict(self) -> str:
        """The image's status column: the run's verdict, else planned, refused or no plan."""
        if self.run is not None:
            return str(self.run.verdict().kind)
        if self.refusal is not None:
            return "refused" if self.jobs else "no plan"
        return "planned" if self.jobs else "no plan"

    def verdict_text(self) -> Text:
        verdict = self.verdict()
        return Text(verdict, style=_VERDICT_STYLE.get(verdict, ""))


def plan_states(
    states: Sequence[ImageState],
    app: MatuiApp,
    probes: Sequence[HostProbe],
) -> None:
    """Before a build: each image's jobs as the engine would plan the release now (jointly,
    warm hosts preferred, as :func:`~matui.engine.build.start_release` plans it). An image that
    cannot be planned keeps the reason."""
    from matui.engine.build.start import warm_hosts
    from matui.engine.plan import PlanError, plan_release

    pending = [s for s in states if s.run is None]
    if not pending:
        return
    try:
        plans = plan_release(
            [(s.image, s.tags) for s in pending],
            app.config.hosts,
            probes,
            warm=lambda image: warm_hosts(image.name, app.state_root),
        )
    except PlanError as exc:
        # One error naming every image that cannot be planned: each gets the whole reason.
        reason = str(exc).strip().splitlines()[0]
        for state in pending:
            state.jobs, state.refusal = [], reason
        return
    for state, plan in zip(pending, plans, strict=True):
        state.jobs, state.refusal = list(plan.jobs), None


class ReleaseScreen(Screen[None]):
    """The grid of images x arches; ``enter`` opens the cell's image on its arch."""

    DEFAULT_CSS = """
    ReleaseScreen {
        layout: vertical;
    }
    ReleaseScreen #release-title {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    ReleaseScreen #release-grid {
        height: auto;
        max-height: 1fr;
    }
    ReleaseScreen #release-log {
        height: 1fr;
        padding: 0 1;
        border-top: solid $panel-lighten-2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "open_cell",
            "Open",
            tooltip="Release grid: open the image's panes on the arch under the cursor",
            id="release.open",
        ),
    ]

    def __init__(self, states: Sequence[ImageState]) -> None:
        super().__init__(id="release")
        self.states = list(states)
        self.arches: list[str] = []
        for state in self.states:
            for platform in state.image.platforms:
                if platform.tag_arch not in self.arches:
                    self.arches.append(platform.tag_arch)
        self.log_lines: list[Text] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="release-title")
        table: DataTable[Text] = DataTable(
            id="release-grid", cursor_type="cell", zebra_stripes=False
        )
        yield table
        yield Static(self._log(), id="release-log")
        yield MatuiFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("image", key="image")
        for arch in self.arches:
            table.add_column(arch, key=arch)
        table.add_column("status", key="status")
        for state in self.states:
            table.add_row(*self._row(state, time.time()), key=state.name)
        if self.arches:
            table.move_cursor(column=1)
        self.set_interval(1.0, self.refresh_grid)
        table.focus()

    def _row(self, state: ImageState, now: float) -> list[Text]:
        label = state.name.rsplit("/", 1)[-1]
        cells = [Text(label, style="bold")]
        cells += [state.cell(arch, now) for arch in self.arches]
        cells.append(state.verdict_text())
        return cells

    def refresh_grid(self) -> None:
        """Every cell from the states (the 1 s timer keeps running jobs' times moving)."""
        try:
            table = self.query_one(DataTable)
        except NoMatches:  # torn down meanwhile
            return
        now = time.time()
        columns = ["image", *self.arches, "status"]
        for state in self.states:
            for column, text in zip(columns, self._row(state, now), strict=True):
                table.update_cell(state.name, column, text, update_width=True)
        self.query_one("#release-title", Static).update(self._title())

    def _title(self) -> Text:
        app: MatuiApp = self.app  # type: ignore[assignment]
        text = Text("matui", style="bold")
        text.append(f" · release of {len(self.states)} images · ")
        status = app.release_status()
        text.append(status[0], style=status[1])
        return text

    def _log(self) -> Text:
        if not self.log_lines:
            return Text(
                "b builds every image · enter opens a cell's image · m publishes the release"
                " · ? lists every key",
                style="dim",
            )
        return Text("\n").join(self.log_lines)

    def show_lines(self, lines: Sequence[Text]) -> None:
        """What the release's last action said (a publish report, a refusal)."""
        self.log_lines = list(lines)
        self.query_one("#release-log", Static).update(self._log())

    def cursor_cell(self) -> tuple[str, str | None]:
        """(image, arch) under the cursor; arch None on the image or status column."""
        table = self.query_one(DataTable)
        row = max(0, min(table.cursor_row, len(self.states) - 1))
        column = table.cursor_column - 1
        arch = self.arches[column] if 0 <= column < len(self.arches) else None
        return self.states[row].name, arch

    def on_data_table_cell_selected(self, message: DataTable.CellSelected) -> None:
        message.stop()
        self.action_open_cell()

    def action_open_cell(self) -> None:
        image, arch = self.cursor_cell()
        app: MatuiApp = self.app  # type: ignore[assignment]
        app.open_release_image(image, arch)


async def build_release(app: MatuiApp, states: Sequence[ImageState]) -> None:
    """``b`` on a release: :func:`~matui.engine.build.start_release` for every image, then one
    worker per run following its events (:func:`follow`)."""
    from matui.engine.build import BuildRefused, start_release
    from matui.engine.flags import host_arch_flags
    from matui.engine.plan import PlanError

    try:
        prepared = await start_release(
            app.config,
            app.pool(),
            images=[s.name for s in states],
            tags=app.release_tags,
            state_root=app.state_root,
        )
    except PlanError as exc:
        if isinstance(exc, BuildRefused):
            errors = [f for f in exc.flags if f.severity == "error"] or exc.flags
            reasons = [f"{f.kind} {f.subject}: {f.message}" for f in errors]
        else:
            reasons = str(exc).strip().splitlines()
        app.release_refused(reasons)
        app.notify(str(exc), title="Cannot build the release", severity="error", timeout=15)
        return
    finally:
        app.release_planning = False
    app.show_probes(prepared.probes, host_arch_flags(prepared.probes))
    take_release(app, states, prepared.id, prepared.runs)


def take_release(
    app: MatuiApp, states: Sequence[ImageState], release: str | None, runs: Sequence[BuildRun]
) -> None:
    """The release's runs started (one per image): each image's state takes its run and a
    worker follows the run's events."""
    by_name = {s.name: s for s in states}
    for run in runs:
        by_name[run.plan.image.name].start(run)
    app.release_started(release)
    for state in states:
        if state.run is not None:
            app.run_worker(
                follow(app, state, state.run), group=f"release-{state.name}", exclusive=True
            )


async def resume_release(app: MatuiApp, states: Sequence[ImageState]) -> None:
    """After a restart, each image's last run, as the one-image dashboard does: a run an
    earlier matui left building is reattached; else the last run, when it finished
    unpublished, is opened from its record (its states and stored lines), so the grid shows
    it, ``r`` retries an arch of it and ``m`` publishes it. ``b`` builds the release anew."""
    from matui.engine.build.run import BuildRun
    from matui.engine.records import RunState, VerdictKind, list_runs, state_dir
    from matui.engine.registry import RegistryClient

    records = list_runs(app.state_root or state_dir())  # newest first
    for state in states:
        record = next((r for r in records if r.image == state.name), None)
        if record is None or not record.jobs or state.run is not None:
            continue
        building = record.state is RunState.RUNNING
        if not building and record.verdict().kind is VerdictKind.PUBLISHED:
            continue
        try:
            run = BuildRun.resume(record, app.config, app.pool(), registry=RegistryClient())
        except Exception as exc:  # a record from another config: say so, do not crash
            app.notify(f"cannot open run {record.id} of {state.name}: {exc}", severity="warning")
            continue
        if app.release_planning or state.run is not None:
            return  # b was pressed meanwhile
        state.start(run)
        if building:
            run.start_resumed()
        else:
            run.replay()
        app.run_worker(follow(app, state, run), group=f"release-{state.name}", exclusive=True)
        what = "still building: reattached" if building else f"{run.verdict().line()}"
        app.remember(f"{state.name}: run {record.id} {what}")
    app.refresh_release()


async def follow(app: MatuiApp, state: ImageState, run: BuildRun) -> None:
    """Every event of one image's run: to its panes when they are on screen (the app's own
    event handling), else into the image's state; the grid repaints on each job's change."""
    from matui.engine.build.run import RunFinished, StateEvent

    async for event in run.events(until_finished=False):
        if state.run is not run:
            return  # a newer build of the release replaced this run
        shown = app.release_shown == state.name and app.run_ is run
        state.take(event, shown=shown)
        if shown:
            app.handle_event(event)
        if isinstance(event, StateEvent | RunFinished):
            app.refresh_release()


async def open_image(app: MatuiApp, state: ImageState, arch: str | None) -> None:
    """The per-image dashboard for ``state``: its run's panes (with the lines its jobs logged
    so far) or its plan, the app's single-image state pointed at it; ``arch``'s pane focused."""
    app.release_shown = None  # events go to the state until the new panes hold its stores
    app.image = state.image
    app.tags = state.tags
    app.refusal = None
    app.published = None
    run = state.run
    app.run_ = run
    if run is not None:
        await app.show_jobs(run.plan.jobs, stores=state.stores)
        for key, status in run.status.items():
            pane = app._pane(key)
            pane.set_state(str(status.state), state.details.get(key, ""), status.failure)
            if status.state is JobState.RUNNING:
                pane.set_step(status.current_step)
        app.set_flags(run.flags)
    elif state.jobs:
        await app.show_jobs(state.jobs, planned=True)
    app.release_shown = state.name
    app._update_title()
    if arch is not None:
        for pane in app.query(ArchPane):
            if pane.key == arch:
                app.call_after_refresh(pane.view.focus)
