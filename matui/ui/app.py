"""The matui dashboard: a thin layer over the engine.

Data flows one way: the engine's events (already batched per SSH chunk) go to the panes, which
repaint on their own ~50 ms timer. Everything is reachable by keyboard, and in the palette.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.text import Text
from textual import events, on, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult, SystemCommand
from textual.await_complete import AwaitComplete
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static

from matui.ui.compare_screen import CompareScreen
from matui.ui.confirm_screen import ConfirmScreen
from matui.ui.failure_screen import FailureScreen
from matui.ui.history_screen import ReadOnlyRun, close_read_only, open_history
from matui.ui.hosts_screen import HostsScreen
from matui.ui.release_view import ImageState, ReleaseScreen
from matui.ui.resources import stylesheet
from matui.ui.retry_screen import RetryScreen
from matui.ui.screens import HelpScreen, PublishScreen, QuitScreen
from matui.ui.widgets.arch_pane import ArchPane
from matui.ui.widgets.footer import MatuiFooter
from matui.ui.widgets.log_pane import LogPane
from matui.ui.widgets.panels import FlagsPanel, HostsPanel, PanelHint, message_line, panel_summary

if TYPE_CHECKING:
    from matui.engine.build.retry import RetryOptions
    from matui.engine.build.run import BuildRun, Event
    from matui.engine.config import Config
    from matui.engine.flags import Flag
    from matui.engine.logstore import LogStore
    from matui.engine.plan import BuildJob
    from matui.engine.probe import HostProbe
    from matui.engine.publish import PublishPreview, PublishReport
    from matui.engine.ssh import SshPool

NARROW = 110  # columns below which the side panel moves to a strip on top
COLLAPSE = 100
"""Columns below which the side panel starts collapsed to one line (``p`` opens it)."""
WIDE = 160
"""Columns from which the side panel takes its full width (narrower below, for the panes)."""

MESSAGES = 50
"""Toasts kept for the flags panel's messages (a toast goes away; its reason must not)."""

# The title's status is coloured by what it is, never by its words: a run's verdict by its
# kind (RunRecord.verdict), the dashboard's own states by a tone.
_VERDICT_STYLE = {
    "running": "bold yellow",
    "built": "bold green",
    "published": "bold green",
    "partly published": "bold yellow",
    "blocked": "bold red",
    "failed": "bold red",
    "lost": "bold red",
    "cancelled": "yellow",
}
_TONE_STYLE = {"good": "bold green", "bad": "bold red", "busy": "bold yellow"}


def fit_title(parts: list[tuple[str, Text]], width: int) -> Text:
    """The title's (kind, text) parts joined to fit ``width`` cells. What gives first: the
    wide separators, then the activity, the word matui, the elapsed time and the index digest,
    then the status (cut with an ellipsis, down to 10 cells); image:tag and the run id stay
    whole (a terminal too narrow even for them cuts the end)."""
    line = Text("  ·  ").join(text for _, text in parts)
    if line.cell_len <= width:
        return line
    sep = Text(" · ")
    kept = list(parts)
    for kind in ("activity", "matui", "elapsed", "index"):
        line = sep.join(text for _, text in kept)
        if line.cell_len <= width:
            return line
        kept = [(k, t) for k, t in kept if k != kind]
    line = sep.join(text for _, text in kept)
    over = line.cell_len - width
    for i, (kind, text) in enumerate(kept):
        if kind == "status" and over > 0:
            status = text.copy()
            status.truncate(max(10, text.cell_len - over), overflow="ellipsis")
            kept[i] = (kind, status)
    return sep.join(text for _, text in kept)


_RELEASE_KEYS = frozenset({"build", "publish", "help", "quit_app", "check", "hosts"})


class SearchBox(Input):
    """The search box: always in the DOM, shown by ``/`` (see ``MatuiApp.action_search``).
    Hidden, it takes no focus (Textual would otherwise give it the first focus at start)."""

    def allow_focus(self) -> bool:
        return bool(self.display) and super().allow_focus()


class MatuiApp(App[int]):
    CSS_PATH = str(stylesheet())
    TITLE = "matui"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "b",
            "build",
            "Build",
            tooltip="Build every arch on its host, all at once (a release: every image)",
            id="build",
        ),
        Binding(
            "m",
            "publish",
            "Manifest",
            tooltip="Create and push the index (what moves first); on the release grid: every "
            "image's",
            id="publish",
        ),
        Binding(
            "r",
            "retry",
            "Retry",
            tooltip="Build the focused arch again (the others keep their digests)",
            id="retry",
        ),
        Binding(
            "x",
            "cancel_arch",
            "Cancel",
            tooltip="Cancel the focused arch on its host (asks first)",
            id="cancel",
        ),
        Binding(
            "slash",
            "search",
            "Search",
            # Priority: decided as the key arrives, before the keys queued behind it (a paste,
            # a laggy link) are handed to a widget; see action_search.
            priority=True,
            tooltip="Search the focused pane (regex, case-insensitive)",
            id="search",
        ),
        Binding(
            "n",
            "next_match",
            "Next match",
            show=False,
            tooltip="Next search match",
            id="search.next",
        ),
        Binding(
            "N",
            "previous_match",
            "Previous match",
            show=False,
            tooltip="Previous search match",
            id="search.previous",
        ),
        Binding(
            "e",
            "first_error",
            "Error",
            tooltip="Jump to the first error in the focused pane (its latest attempt)",
            id="first-error",
        ),
        Binding(
            "f",
            "toggle_follow",
            "Follow",
            tooltip="Follow the end of the focused pane on/off",
            id="follow",
        ),
        Binding(
            "z", "zoom", "Zoom", tooltip="Zoom the focused pane / back to all panes", id="zoom"
        ),
        Binding(
            "s", "save_log", "Save", tooltip="Save the focused pane's log to a file", id="save"
        ),
        Binding(
            "tab",
            "focus_pane(1)",
            "Next pane",
            show=False,
            priority=True,
            tooltip="Focus the next pane",
            id="pane.next",
        ),
        Binding(
            "shift+tab",
            "focus_pane(-1)",
            "Previous pane",
            show=False,
            priority=True,
            tooltip="Focus the previous pane",
            id="pane.previous",
        ),
        *(
            Binding(
                str(n),
                f"focus_pane_number({n})",
                f"Pane {n}",
                show=False,
                tooltip=f"Focus pane {n} (in plan order; zoomed: zoom it instead)",
                id=f"pane.{n}",
            )
            for n in range(1, 10)
        ),
        Binding(
            "escape",
            "leave",
            "Leave",
            show=False,
            priority=True,  # see action_leave
            tooltip="Close the search box, else leave the zoom, an old run (H), or an image of "
            "a release",
            id="leave",
        ),
        Binding(
            "w",
            "toggle_wrap",
            "Wrap",
            tooltip="Wrap long lines on/off (off: ←/→ scroll sideways)",
            id="wrap",
        ),
        Binding(
            "p",
            "toggle_panel",
            "Panel",
            tooltip="Show/hide the hosts and flags panel (the panes get the width)",
            id="panel",
        ),
        Binding(
            "c", "check", "Check hosts", show=False, tooltip="Probe the hosts again", id="check"
        ),
        Binding(
            "i",
            "failure_card",
            "Why it failed",
            show=False,
            tooltip="Why the focused arch failed: step, exit code, cause, advice, its lines",
            id="failure-card",
        ),
        Binding(
            "h",
            "hosts",
            "Hosts",
            show=False,
            tooltip="Every host in full: its probe and its whole error",
            id="hosts",
        ),
        Binding(
            "H",
            "history",
            "History",
            show=False,
            tooltip="Earlier runs: open one read-only; d: what changed since green",
            id="history",
        ),
        Binding(
            "v",
            "compare",
            "Compare arches",
            show=False,
            tooltip="The arches side by side: each step's state and time, where they part ways",
            id="compare",
        ),
        Binding(
            "o",
            "release_view",
            "Release",
            tooltip="Back to the release grid (images x arches; esc too); enter there opens a cell",
            id="release",
        ),
        Binding("question_mark", "help", "Help", tooltip="Show the keys", id="help"),
        Binding(
            "q",
            "quit_app",
            "Quit",
            tooltip="Quit (asks whether to leave running builds on their hosts)",
            id="quit",
        ),
    ]

    def __init__(
        self,
        config: Config,
        *,
        image: str | None = None,
        tags: Sequence[str] | None = None,
        probe_on_start: bool = True,
        resume_on_start: bool = True,
        state_root: Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.release: list[ImageState] | None = None
        """A config of several images and no --image: the release view's images (see
        matui.ui.release_view); None: the one image's dashboard."""
        self.release_tags = tuple(tags) if tags else None
        self.release_planning = False
        self.release_shown: str | None = None
        """The release's image whose panes are on the dashboard (its run's events go there)."""
        self.release_id: str | None = None
        self.release_refusal: list[str] | None = None
        if image is None and len(config.images) >= 2:
            self.release = [ImageState(i, self.release_tags or i.tags) for i in config.images]
            image_config = None
        else:
            image_config = config.image(image) if config.images else None
        self.image = image_config
        self.tags = tuple(tags) if tags else (self.image.tags if self.image else ())
        self.probe_on_start = probe_on_start
        self.resume_on_start = resume_on_start
        self.state_root = state_root
        self.run_: BuildRun | None = None
        self.jobs: list[BuildJob] = []
        self.probes: list[HostProbe] = []
        self.run_flags: list[Flag] = []
        """The run's flags (or a refused build's): only a run changes them."""
        self.host_flags: list[Flag] = []
        """The hosts' flags from the last probe."""
        self.messages: deque[Text] = deque(maxlen=MESSAGES)
        self._idle_status: tuple[str, Literal["good", "bad", "busy"]] = ("idle", "busy")
        self.refusal: str | None = None
        """Why the last build did not start (refused by a check, or no plan); until the next b."""
        self.activity: str | None = None
        """What the dashboard is doing meanwhile (probing the hosts), shown after the status."""
        self._planning = False
        self.published: str | None = None
        self.started: float | None = None
        self.ended: float | None = None
        self._pool: SshPool | None = None
        self._search_pane: ArchPane | None = None
        self.viewing: ReadOnlyRun | None = None
        """An old run open read-only from the history (H), over the current run's panes."""
        self.panel_open: bool | None = None
        """The side panel shown (True), collapsed (False), or by the width (None: until p)."""
        self.wrap = False
        """Long lines wrap in every pane (``w``)."""
        self._title_shown: Text | None = None
        """The title last put in the title bar (an unchanged title is not repainted)."""

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="titlebar")
        yield PanelHint()
        with Horizontal(id="body"):
            with Vertical(id="side"):
                yield HostsPanel(self.config.hosts)
                yield FlagsPanel()
            with Container(id="panes"):
                yield Static(
                    "No build yet.\n\nb builds every arch on its host · c probes the hosts again"
                    " · ? lists every key",
                    id="placeholder",
                )
        search = SearchBox(placeholder="search (regex)… enter finds, esc closes", id="search")
        search.display = False  # opened by / (see action_search)
        yield search
        yield MatuiFooter()

    def on_mount(self) -> None:
        if self.console.color_system in ("standard", "windows") or os.environ.get("MATUI_THEME"):
            self.theme = os.environ.get("MATUI_THEME", "ansi-dark")
        self.query_one(FlagsPanel).show_flags([])
        self._layout(self.size.width)
        self._update_title()
        self.set_interval(1.0, self._update_title)
        if self.release is not None:
            self.install_screen(ReleaseScreen(self.release), name="release")
            self.push_screen("release")
        if self.probe_on_start and self.config.hosts:
            self.action_check()
        if self.resume_on_start and self.image is not None:
            self._resume()
        elif self.resume_on_start and self.release is not None:
            from matui.ui.release_view import resume_release

            self.run_worker(resume_release(self, self.release), group="build", exclusive=True)

    def on_resize(self) -> None:
        self._layout(self.size.width)

    def _layout(self, width: int) -> None:
        narrow = width < NARROW
        self.screen.set_class(narrow, "-narrow")
        self.screen.set_class(width >= WIDE, "-wide")
        self.screen.set_class(not self.panel_shown, "-collapsed")
        # Beside the panes, the side panel is as wide as the hosts' badges need, from 36 up to
        # 50 columns (WIDE and up: 50); on top of them, the stylesheet's whole width.
        side = self.query_one("#side")
        if narrow:
            side.styles.width = None
        else:
            needed = self.query_one(HostsPanel).needed_width()
            side.styles.width = 50 if width >= WIDE else max(36, min(50, needed))
        self._update_hint()
        panes = self.query_one("#panes")
        count = len(self.jobs)
        if panes.has_class("-zoomed") or count <= 1:
            columns = 1
        elif narrow:
            columns = 1 if count <= 2 else 2
        else:
            columns = count if count <= 2 else 2
        panes.styles.grid_size_columns = columns

    @property
    def panel_shown(self) -> bool:
        """The side panel is open: as ``p`` left it, else when the screen is wide enough."""
        if self.panel_open is not None:
            return self.panel_open
        return self.size.width >= COLLAPSE

    def action_toggle_panel(self) -> None:
        self.panel_open = not self.panel_shown
        self._layout(self.size.width)

    def _update_hint(self) -> None:
        """The collapsed panel's one line: hosts ready, flags by severity, the worst flag."""
        try:
            hint = self.query_one(PanelHint)
            flags = self.query_one(FlagsPanel)
        except NoMatches:
            return
        every = list(flags.flags) + [f for f in flags.host_flags if f not in flags.flags]
        hint.update(panel_summary(self.probes, len(self.config.hosts), every))

    def action_toggle_wrap(self) -> None:
        """Every pane wraps long lines, or none: one way of reading for the whole screen."""
        self.wrap = not self.wrap
        for view in self.query(LogPane):
            view.set_wrap(self.wrap)

    @property
    def status_text(self) -> str:
        """The title's status: the run's verdict once there is a run (the engine's
        ``RunRecord.verdict``), a refused build's reason, else the dashboard's own state
        (idle, probing hosts, ready or not)."""
        return self._status()[0]

    @status_text.setter
    def status_text(self, text: str) -> None:
        # With a run, its verdict is the status: another word is shown beside it, not instead
        # (and none when the word is the verdict's own, e.g. "published").
        if self.run_ is None and self.refusal is None:
            self._idle_status = (text, "busy")
        elif self.run_ is not None and text == self.run_.verdict().kind:
            self.activity = None
        else:
            self.activity = text

    def set_status(self, text: str, tone: Literal["good", "bad", "busy"] = "busy") -> None:
        """The status when there is no run: ``tone`` is good, bad or busy (its colour)."""
        self._idle_status = (text, tone)
        self._update_title()

    def _status(self) -> tuple[str, str]:
        """(status, style) for the title."""
        if self._planning:  # b was pressed: what the title is about is the run to come
            return "planning", _TONE_STYLE["busy"]
        if self.refusal is not None:
            return self.refusal, _TONE_STYLE["bad"]
        if self.run_ is not None:
            verdict = self.run_.verdict()
            return verdict.line(), _VERDICT_STYLE.get(verdict.kind, "bold yellow")
        text, tone = self._idle_status
        return text, _TONE_STYLE.get(tone, "bold yellow")

    def _update_title(self) -> None:
        # Most important first; what does not fit is shortened by _fit_title, image:tag and
        # the run id last of all.
        if self.viewing is not None:  # an old run, read-only: its title says so, first
            self._title_shown = None  # the run's own title comes back in full after
            for titlebar in self.query("#titlebar").results(Static):
                titlebar.update(self.viewing.title())
            return
        parts = [("matui", Text("matui", style="bold"))]
        status, style = self._status()
        parts.append(("status", Text(status, style=style)))
        if self.activity and (self.run_ is not None or self.refusal is not None):
            parts.append(("activity", Text(self.activity, style="yellow")))
        if self.started is not None:
            end = self.ended if self.ended is not None else time.monotonic()
            elapsed = int(end - self.started)
            parts.append(("elapsed", Text(f"{elapsed // 60}:{elapsed % 60:02d}")))
        if self.published:
            parts.append(("index", Text(f"index {self.published[:19]}", style="green")))
        if self.image:
            parts.append(("image", Text(f"{self.image.name}:{','.join(self.tags)}")))
        if self.run_:
            parts.append(("run", Text(f"run {self.run_.id}", style="dim")))
        try:
            titlebar = self.query_one("#titlebar", Static)
        except NoMatches:
            return  # quitting: the 1 s timer can fire after the screen's widgets are gone
        title = fit_title(parts, self.size.width - 2)
        if title != self._title_shown:
            # One row whatever it says: a repaint, not a layout of the whole screen.
            self._title_shown = title
            titlebar.update(title, layout=False)

    # --- hosts -----------------------------------------------------------------------------

    def pool(self) -> SshPool:
        if self._pool is None:
            from matui.engine.ssh import SshPool

            self._pool = SshPool(self.config.hosts)
        return self._pool

    async def on_unmount(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    def action_check(self) -> None:
        self.status_text = "probing hosts"
        self._update_title()
        self._probe()

    @work(exclusive=True, group="probe")
    async def _probe(self) -> None:
        from matui.engine.flags import check_hosts

        report = await check_hosts(self.pool(), self.config.hosts)
        # The hosts' panel and flags only: a run's flags and verdict are the run's.
        self.show_probes(report.probes, report.flags)
        await self.show_plan()
        if self.release is not None:
            from matui.ui.release_view import plan_states

            plan_states(self.release, self, report.probes)
        self.activity = None
        if report.ok:
            self._idle_status = ("ready: press b to build", "good")
        else:
            self._idle_status = ("hosts not ready", "bad")
        self._update_title()

    def show_probes(self, probes: Iterable[HostProbe], flags: Iterable[Flag]) -> None:
        """A probe's answers and its flags (the hosts' group of the flags panel)."""
        self.probes = list(probes)
        self.host_flags = list(flags)
        hosts = self.query_one(HostsPanel)
        hosts.show_probes(self.probes)
        self.call_after_refresh(self._layout, self.size.width)  # the hosts' width changed
        for panel in self.query(FlagsPanel):
            panel.show_hosts(self.probes, hosts.passed_over)
            panel.show_flags(self.run_flags, self.host_flags)
        self._update_hint()

    async def show_plan(self) -> None:
        """Before any build: one pane per arch where the engine's plan (from the last probe)
        would build it, its host and native or emulated, so the operator sees it before b.
        A run on screen (building, resumed, opened) is never replaced by a plan."""
        from matui.engine.build.start import plan_for
        from matui.engine.plan import PlanError

        if self.image is None or self.run_ is not None or self._planning:
            return
        try:
            # The engine's own planning, warm-cache preference included (as `matui build`).
            plan = plan_for(self.config, self.image, self.tags, self.probes, self.state_root)
        except PlanError as exc:
            for placeholder in self.query("#placeholder").results(Static):
                placeholder.update(
                    "No build yet; no plan either: "
                    + str(exc).strip().splitlines()[0]
                    + "\n\nc probes the hosts again · ? lists every key"
                )
            return
        await self.show_jobs(plan.jobs, planned=True)

    def set_flags(self, flags: Iterable[Flag]) -> None:
        """The run's flags (the run's group of the flags panel)."""
        self.run_flags = list(flags)
        for panel in self.query(FlagsPanel):  # none while the app is tearing down
            panel.show_flags(self.run_flags)
        self._update_hint()

    def remember(self, message: str, severity: SeverityLevel = "information") -> None:
        """A message for the flags panel's messages only, with no toast."""
        self.messages.appendleft(message_line(time.time(), severity, "", message))
        for panel in self.query(FlagsPanel):
            panel.show_messages(self.messages)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A toast, also kept in the flags panel's messages: a reason outlives its toast.
        Plain text by default (a message can quote a host or a registry: never markup)."""
        self.messages.appendleft(message_line(time.time(), severity, title, message))
        for panel in self.query(FlagsPanel):
            panel.show_messages(self.messages)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # --- build -----------------------------------------------------------------------------

    def show_jobs(
        self,
        jobs: Sequence[BuildJob],
        *,
        planned: bool = False,
        stores: Mapping[str, LogStore] | None = None,
    ) -> AwaitComplete:
        """One pane per job, in plan order (``planned``: a plan before any build).

        The first time, the panes are in the DOM on return. A previous run's panes carry the
        same ids and must be gone first: await the result before handling the jobs' events.
        ``stores``: each job's lines so far (a release's image opened again), shown by its pane.
        """
        self.jobs = list(jobs)
        panes = self.query_one("#panes")
        self._zoom(None)  # a zoom of the previous run would hide every new pane
        self._search_pane = None
        old = list(panes.children)  # the placeholder, or a previous run's panes
        new = [
            ArchPane(
                job.key,
                job.arch,
                job.host,
                emulated=job.emulated,
                planned=planned,
                store=(stores or {}).get(job.key),
            )
            for job in jobs
        ]
        for pane in new:
            pane.view.set_wrap(self.wrap)
        for pane, job in zip(new, jobs, strict=True):
            # A host chosen from a pool: the subtitle says why (the engine's reason).
            if planned and job.reason and job.candidates > 1 and not job.emulated:
                pane.set_state("planned", f"{job.reason} · b builds it")
        self.query_one(HostsPanel).mark_emulating(j.host for j in jobs if j.emulated)
        self._layout(self.size.width)

        async def replace() -> None:
            await panes.remove_children(old)
            await panes.mount_all(new)
            self.call_after_refresh(self.action_focus_pane, 0)

        if any(isinstance(widget, ArchPane) for widget in old):
            return AwaitComplete(replace())
        panes.remove_children(old)
        self.call_after_refresh(self.action_focus_pane, 0)
        return AwaitComplete(panes.mount_all(new))

    def _read_only(self, what: str) -> bool:
        """While an old run is open read-only, a command that changes a run is refused."""
        if self.viewing is None:
            return False
        self.notify(self.viewing.refusal(what), severity="warning", timeout=6)
        return True

    def action_build(self) -> None:
        if self._read_only("build"):
            return
        if self.release is not None:
            self._build_release()
            return
        if self.run_ is not None and self.run_.running:
            self.notify("a build is running; x cancels the focused arch", severity="warning")
            return
        if self.image is None:
            self.notify("no [[images]] in the config", severity="error")
            return
        self.refusal = None
        self._planning = True
        self.published = None
        self._update_title()
        self._build()

    @work(exclusive=True, group="build")
    async def _build(self) -> None:
        from matui.engine.build import BuildRefused, start_build
        from matui.engine.flags import host_arch_flags
        from matui.engine.plan import PlanError

        try:
            prepared = await start_build(
                self.config,
                self.pool(),
                image=self.image.name if self.image else None,
                tags=self.tags,
                state_root=self.state_root,
            )
        except PlanError as exc:
            self._planning = False  # before the title shows the refusal
            if isinstance(exc, BuildRefused):
                self.set_flags(exc.flags)
                errors = [f for f in exc.flags if f.severity == "error"] or exc.flags
                more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
                first = errors[0]
                self.refusal = f"refused: {first.kind} {first.subject}: {first.message}{more}"
            else:
                self.refusal = "cannot plan: " + str(exc).strip().splitlines()[-1]
            self._update_title()
            self.notify(str(exc), title="Cannot plan the build", severity="error", timeout=15)
            return
        finally:
            # Whatever start_build raised (or a cancelled worker): the title leaves "planning".
            self._planning = False
        self.run_ = prepared.run
        self.started = time.monotonic()
        self.ended = None
        await self.show_jobs(prepared.plan.jobs)
        self.query_one(HostsPanel).mark_passed_over(prepared.plan.passed_over)
        self.set_flags(prepared.run.flags)
        self.show_probes(prepared.run.probes, host_arch_flags(prepared.run.probes))
        self._update_title()
        async for event in prepared.run.events(until_finished=False):
            self.handle_event(event)

    @work(exclusive=True, group="build")
    async def _resume(self) -> None:
        """Builds an earlier matui left running on their hosts: follow them again, from the
        exact byte each pane had reached. The run replays the lines already received as
        ordinary line events before the live ones."""
        from matui.engine.build.run import BuildRun
        from matui.engine.records import state_dir, unfinished_runs
        from matui.engine.registry import RegistryClient

        assert self.image is not None
        found = unfinished_runs(self.state_root or state_dir(), self.image.name)
        if not found:
            await self._open_last_run()
            return
        record = found[0]
        try:
            run = BuildRun.resume(record, self.config, self.pool(), registry=RegistryClient())
        except Exception as exc:  # a record from another config: say so, do not crash
            self.notify(f"cannot resume run {record.id}: {exc}", severity="warning")
            return
        self.run_ = run
        self.started = time.monotonic()
        self.ended = None
        await self.show_jobs(run.plan.jobs)
        self.set_flags(run.flags)
        for key, status in run.status.items():
            self._pane(key).set_state(str(status.state), status.outcome_line, status.failure)
        self._update_title()
        self.notify(f"run {record.id} was still building: reattached", timeout=8)
        run.start_resumed()
        async for event in run.events(until_finished=False):
            self.handle_event(event)

    async def _open_last_run(self) -> None:
        """After a restart: the last run of this image, when it finished and was not
        published, opened from its record (its panes, states, stored logs and verdict) through
        the engine's resume path, so r retries an arch and m publishes, as the CLI can."""
        from matui.engine.build.run import BuildRun
        from matui.engine.records import RunState, VerdictKind, list_runs, state_dir
        from matui.engine.registry import RegistryClient

        assert self.image is not None
        runs = [r for r in list_runs(self.state_root or state_dir()) if r.image == self.image.name]
        if not runs or runs[0].state is RunState.RUNNING or not runs[0].jobs:
            return
        record = runs[0]
        verdict = record.verdict()
        if verdict.kind is VerdictKind.PUBLISHED:
            return
        try:
            run = BuildRun.resume(record, self.config, self.pool(), registry=RegistryClient())
        except Exception as exc:  # a record from another config: say so, do not crash
            self.notify(f"cannot open run {record.id}: {exc}", severity="warning")
            return
        if self.run_ is not None or self._planning:
            return  # b was pressed meanwhile
        self.run_ = run
        self.started = self.ended = time.monotonic()
        self.started -= max(0.0, (record.finished or record.created) - record.created)
        await self.show_jobs(run.plan.jobs)
        self.set_flags(run.flags)
        for key, status in run.status.items():
            self._pane(key).set_state(str(status.state), status.outcome_line)
        self._update_title()
        what = "r retries the focused arch" if not verdict.can_publish else "m publishes"
        self.notify(
            f"run {record.id} ({verdict.line()}) opened from its record: {what}, b builds anew",
            timeout=8,
        )
        run.replay()
        async for event in run.events(until_finished=False):
            self.handle_event(event)

    def handle_event(self, event: Event) -> None:
        from matui.engine.build.run import (
            FlagsEvent,
            LinesEvent,
            NoteEvent,
            RunFinished,
            StateEvent,
            StepChange,
        )

        if isinstance(event, LinesEvent):
            self._pane(event.job).view.add_lines(event.lines)
        elif isinstance(event, StepChange):
            self._pane(event.job).set_step(event.step)
        elif isinstance(event, StateEvent):
            self._pane(event.job).set_state(str(event.state), event.detail, event.failure)
        elif isinstance(event, NoteEvent):
            self.notify(event.text, title=self._pane(event.job).arch, timeout=8)
        elif isinstance(event, FlagsEvent):
            self.set_flags(event.flags)
        elif isinstance(event, RunFinished):
            self._finished()
        if not isinstance(event, LinesEvent):  # lines change no part of the title
            self._update_title()

    def _finished(self) -> None:
        """The run ended: the title shows the engine's verdict (``_update_title``); the toast
        says what to do next, and the messages keep it."""
        if self.run_ is None:
            return
        self.ended = time.monotonic()
        verdict = self.run_.verdict()
        if verdict.can_publish:
            self.notify("every arch built; m publishes the index", timeout=8)
        elif verdict.kind in ("failed", "lost"):
            # No toast: it would cover the failed pane's error lines. The title says the
            # verdict, the pane's frame the failure; the messages keep what to do next.
            self.remember(f"{verdict.line()} — e jumps to the error, r retries", "error")
        elif verdict.kind == "blocked":
            self.notify(f"not publishable: {verdict.reason}", severity="error", timeout=10)
        elif verdict.kind != "published":
            self.notify(verdict.line(), severity="warning", timeout=8)

    def _pane(self, key: str) -> ArchPane:
        return self.query_one(f"#pane-{key}", ArchPane)

    def focused_pane(self) -> ArchPane | None:
        node = self.focused
        while node is not None:
            if isinstance(node, ArchPane):
                return node
            node = node.parent  # type: ignore[assignment]
        panes = list(self.query(ArchPane))
        return panes[0] if panes else None

    def action_focus_pane(self, step: int) -> None:
        panes = [p for p in self.query(ArchPane) if p.display]
        if not panes:
            return
        current = self.focused_pane()
        index = panes.index(current) if current in panes else -step
        if not isinstance(self.focused, LogPane):
            index -= step  # first press lands on the current pane
        panes[(index + step) % len(panes)].view.focus()

    def action_retry(self) -> None:
        if self._read_only("retry"):
            return
        pane = self.focused_pane()
        if self.run_ is None or pane is None:
            self.notify("nothing to retry yet: b builds", severity="warning")
            return
        run = self.run_
        status = run.status.get(pane.key)
        if status is None or not status.state.finished:
            what = "not started" if status is None else str(status.state)
            self.notify(f"{pane.arch} is {what}: x cancels it first", severity="warning")
            return
        # The engine's choices, the one that fits the failure's cause first: r opens them.
        suggestion, choices = run.retry_choices(pane.key)
        cause = f" ({status.failure.cause})" if status.failure is not None else ""
        headline = f"{pane.arch} {status.state}{cause} on {status.job.host}"

        def chosen(options: RetryOptions | None) -> None:
            if options is not None and self.run_ is run:
                self._retry(run, pane, options)

        self.push_screen(RetryScreen(pane.arch, headline, suggestion, choices), chosen)

    def _retry(self, run: BuildRun, pane: ArchPane, options: RetryOptions) -> None:
        try:
            run.retry(pane.key, no_cache=options.no_cache, pull=options.pull, host=options.host)
        except (RuntimeError, ValueError) as exc:  # ValueError: RetryError, a host refused
            self.notify(str(exc), severity="warning")
            return
        job = run.status[pane.key].job
        pane.host, pane.emulated = job.host, job.emulated  # a retry on another host moved it
        self.ended = None
        self.activity = None
        self._update_title()

    def action_failure_card(self) -> None:
        """The focused pane's failure card (the engine's record of why it failed)."""
        pane = self.focused_pane()
        failure = None if pane is None else pane.failure
        status = None if self.run_ is None or pane is None else self.run_.status.get(pane.key)
        if status is not None:
            # The run's own record: it gains the same step's seconds on the arches that
            # passed when the run ends, after the failed state went by.
            failure = status.failure
        if pane is None or failure is None:
            what = "no build yet" if pane is None else f"{pane.arch} has not failed"
            self.notify(f"{what}: i shows why a failed arch failed", timeout=4)
            return
        self.push_screen(FailureScreen(pane.arch, pane.host, pane.state, failure))

    def action_cancel_arch(self) -> None:
        if self._read_only("cancel"):
            return
        """Ask first (a dialog: y/enter cancels, esc keeps), then ask the host to stop it."""
        pane = self.focused_pane()
        if self.run_ is None or pane is None or not self.run_.running:
            self.notify("nothing is running", severity="warning")
            return
        run = self.run_

        def answered(yes: bool | None) -> None:
            status = run.status.get(pane.key)
            if not yes or self.run_ is not run or status is None:
                return
            if status.state.finished:  # it ended while the dialog was up: nothing to stop
                self.notify(f"{pane.arch} already ended: {status.state}", severity="warning")
                return
            self.notify(f"asking {pane.host} to stop {pane.arch}…")
            self.run_worker(self._cancel_arch(pane.key), group="cancel")

        self.push_screen(
            ConfirmScreen(
                "Cancel a build?",
                f"Cancel {pane.arch} on host {pane.host}? Its build stops there; the other "
                "arches go on.",
                yes="cancel",
                no="keep",
            ),
            answered,
        )

    async def _cancel_arch(self, key: str) -> None:
        """A cancel is a request: the pane shows how the job ends (the host's word); a cancel
        that never reached the host is said here too, since the build may still be running."""
        from matui.engine.records import JobState

        if self.run_ is None:
            return
        await self.run_.cancel(key)
        status = self.run_.status[key]
        if status.state is JobState.LOST:
            self.notify(status.error or f"{status.job.arch}: state unknown", severity="error")

    # --- log pane actions ------------------------------------------------------------------

    @property
    def search_open(self) -> bool:
        """The search box is on screen (it always exists, hidden when closed)."""
        return bool(self.query_one("#search", Input).display)

    def action_search(self) -> None:
        """Open the search box, focused at once: every key typed after ``/`` goes into it.

        Keys that arrive in one burst (a paste, a laggy SSH link) sit in the app's queue
        behind the ``/``; each is handed to whatever is focused when its turn comes. So the
        binding is a priority one (run as ``/`` arrives, not after it went round the focused
        pane), the box always exists (shown, not mounted) and the focus moves to it here,
        synchronously: the next key already finds the box. ``esc`` closes it the same way.
        Typed into a text field (the box itself) or on a dialog, ``/`` is that field's own
        character (SkipAction hands the key on)."""
        pane = self.focused_pane()
        if pane is None or len(self.screen_stack) > 1 or isinstance(self.focused, Input):
            raise SkipAction()
        self._search_pane = pane
        search = self.query_one("#search", Input)
        search.value = ""
        search.display = True
        self.screen.set_focus(search)

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        pane = self._search_pane
        self._close_search()
        if pane is None or not event.value:
            return
        pane.view.search(event.value)  # in a worker: _search_done says how it ended

    @on(LogPane.SearchDone)
    def _search_done(self, message: LogPane.SearchDone) -> None:
        """A search (``/``, ``n``, ``N``) found nothing, or failed: an invalid pattern, or one
        stopped at the time limit."""
        if message.error is not None:
            self.notify(message.error, severity="error")
        elif message.line is None:
            arch = next((p.arch for p in self.query(ArchPane) if p.view is message.pane), "log")
            self.notify(f"not found in {arch}: {message.pattern}", severity="warning")

    def _close_search(self) -> None:
        """Hide the box and focus the searched pane at once (keys behind an ``esc`` or an
        ``enter`` in a burst find the pane, see :meth:`action_search`)."""
        search = self.query_one("#search", Input)
        search.display = False
        search.value = ""
        pane = self._search_pane
        if pane is not None and pane.is_attached:
            self.screen.set_focus(pane.view)
        elif self.focused is search:
            self.action_focus_pane(0)

    @on(events.DescendantFocus)
    def _remember_pane(self, event: events.DescendantFocus) -> None:
        # From the event's widget, not app.focused: the event can arrive as the app shuts down,
        # when there is no screen left to ask.
        pane = event.widget.parent
        if isinstance(event.widget, LogPane) and isinstance(pane, ArchPane):
            self._search_pane = pane

    def action_leave(self) -> None:
        """``esc``: close the search box when it is open, else leave the zoom, else leave an
        old run open read-only (back to the current run). A priority
        binding, like ``/``: decided as it arrives. On a dialog, or with nothing to leave,
        the key goes on as if unbound."""
        if len(self.screen_stack) > 1:
            raise SkipAction()
        if self.search_open:
            self._close_search()
        elif self.query_one("#panes").has_class("-zoomed"):
            self.action_zoom()
        elif close_read_only(self):
            self.notify("back to the current run", timeout=3)
        elif self.release is not None:
            self.action_release_view()
        else:
            raise SkipAction()

    def action_next_match(self) -> None:
        if pane := self.focused_pane():
            pane.view.action_next_match()

    def action_previous_match(self) -> None:
        if pane := self.focused_pane():
            pane.view.action_previous_match()

    def action_first_error(self) -> None:
        if pane := self.focused_pane():
            pane.view.action_first_error()

    def action_toggle_follow(self) -> None:
        if pane := self.focused_pane():
            pane.view.action_toggle_follow()

    def action_zoom(self) -> None:
        """The focused pane's log gets the whole screen between the title and the footer (no
        side panel, no other pane), or everything comes back."""
        pane = self.focused_pane()
        if pane is None:
            return
        zoomed = not self.query_one("#panes").has_class("-zoomed")
        self._zoom(pane if zoomed else None)
        pane.view.focus()

    def _zoom(self, pane: ArchPane | None) -> None:
        """Zoom ``pane`` (None: no zoom)."""
        panes = self.query_one("#panes")
        panes.set_class(pane is not None, "-zoomed")
        # Zoomed, the side panel goes (an inline style; back to the stylesheet's say after).
        # Not a class on the Screen: that restyles every widget on it, ~100x the cost.
        self.query_one("#side").styles.display = "none" if pane is not None else None
        for other in self.query(ArchPane):
            other.set_class(other is pane, "-zoom")
        self._layout(self.size.width)

    def action_focus_pane_number(self, number: int) -> None:
        """Focus pane ``number`` (1 = the first in plan order); while zoomed, zoom it."""
        panes = list(self.query(ArchPane))
        if not 1 <= number <= len(panes):
            self.bell()
            return
        pane = panes[number - 1]
        if self.query_one("#panes").has_class("-zoomed"):
            self._zoom(pane)
        pane.view.focus()

    def action_save_log(self) -> None:
        pane = self.focused_pane()
        if pane is None:
            return
        run = self.viewing.id if self.viewing else self.run_.id if self.run_ else "no-run"
        path = Path.cwd() / f"matui-{run}-{pane.key}.log"
        pane.view.store.save(path)
        self.notify(f"saved {len(pane.view.store)} lines to {path}")

    # --- publish ---------------------------------------------------------------------------

    def action_publish(self) -> None:
        if self._read_only("publish"):
            return
        if self.release is not None and isinstance(self.screen, ReleaseScreen):
            from matui.ui.release_publish import publish_release_view

            self.run_worker(
                publish_release_view(self, self.release), group="publish", exclusive=True
            )
            return
        self._publish()

    @work(exclusive=True, group="publish")
    async def _publish(self) -> None:
        from matui.engine.publish import preview_publish, publish
        from matui.engine.registry import RegistryClient

        if self.run_ is None:
            self.notify("nothing built yet: b builds every arch", severity="warning")
            return
        registry = RegistryClient()
        preview = await preview_publish(self.run_.record, registry=registry, config=self.config)

        async def push(confirmed: PublishPreview) -> PublishReport:
            return await publish(confirmed, registry=registry, config=self.config, pool=self.pool())

        async def allow_mixed() -> PublishPreview:
            assert self.run_ is not None
            return await preview_publish(
                self.run_.record, registry=registry, config=self.config, allow_mixed_sources=True
            )

        await self.push_screen_wait(
            PublishScreen(
                preview, push=push, on_report=self._take_publish_report, allow_mixed=allow_mixed
            )
        )

    def _take_publish_report(self, report: PublishReport) -> None:
        """The app's own state from the engine's report: the title shows what was decided."""
        if report.ok:
            self.published = report.digest
            self.status_text = "published"
        elif report.moved:
            self.status_text = "partly published"
        else:
            self.status_text = "publish failed"
        if report.record_error:
            self.notify(report.record_error, severity="warning", timeout=15)
        self._update_title()

    # --- a release of several images (matui.ui.release_view) ---------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """On the release grid only the release's keys act (the panes' keys wait for an image
        to be opened); ``o`` goes back to the grid from an image of a release."""
        if self.release is None:
            return action != "release_view"
        # The screen under any dialog: the grid, or the panes.
        base = next(s for s in reversed(self.screen_stack) if not isinstance(s, ModalScreen))
        if action == "release_view":
            return not isinstance(base, ReleaseScreen)
        if isinstance(base, ReleaseScreen):
            return action not in _PANE_ACTIONS
        return True

    def _build_release(self) -> None:
        from matui.ui.release_view import build_release

        assert self.release is not None
        if self.release_planning or any(s.run and s.run.running for s in self.release):
            self.notify(
                "the release is building; enter opens an image, x there cancels an arch",
                severity="warning",
            )
            return
        self.release_planning = True
        self.release_refusal = None
        self.refresh_release()
        self.run_worker(build_release(self, self.release), group="build", exclusive=True)

    def release_refused(self, reasons: Sequence[str]) -> None:
        """The release did not start: the grid's title and lines say why."""
        self.release_refusal = list(reasons) or ["refused"]
        self.show_release_lines([Text(f"refused: {r}", style="bold red") for r in reasons])
        self.refresh_release()

    def release_started(self, release_id: str | None) -> None:
        self.release_id = release_id
        self.started, self.ended = time.monotonic(), None
        self.show_release_lines([Text(f"release {release_id} started", style="dim")])
        if self.release_shown is not None and not isinstance(self.screen, ReleaseScreen):
            self.open_release_image(self.release_shown, None)  # its new run's panes
        else:
            self.release_shown = None  # reopened (enter) from the new run
        self.refresh_release()

    def release_status(self) -> tuple[str, str]:
        """The release grid's status: planning, refused, building (how many images are
        done), the images' verdicts, else the dashboard's idle state."""
        if self.release_planning:
            return "planning the release", _TONE_STYLE["busy"]
        if self.release_refusal:
            more = len(self.release_refusal) - 1
            extra = f" (+{more} more)" if more > 0 else ""
            return f"refused: {self.release_refusal[0]}{extra}", _TONE_STYLE["bad"]
        states = self.release or []
        if any(s.run is not None for s in states):
            verdicts = [s.verdict() for s in states]
            if "running" in verdicts:
                done = sum(1 for v in verdicts if v != "running")
                return f"building: {done} of {len(states)} images done", _TONE_STYLE["busy"]
            counts: dict[str, int] = {}
            for verdict in verdicts:
                counts[verdict] = counts.get(verdict, 0) + 1
            good = all(v in ("built", "published") for v in verdicts)
            line = ", ".join(f"{n} {v}" for v, n in counts.items())
            if good and "built" in counts:
                line += ": m publishes the release"
            return line, _TONE_STYLE["good" if good else "bad"]
        text, tone = self._idle_status
        return text, _TONE_STYLE.get(tone, "bold yellow")

    @property
    def release_screen(self) -> ReleaseScreen | None:
        if self.release is None or not self.is_screen_installed("release"):
            return None
        screen = self.get_screen("release")
        return screen if isinstance(screen, ReleaseScreen) else None

    def refresh_release(self) -> None:
        if (screen := self.release_screen) is not None and screen.is_mounted:
            screen.refresh_grid()

    def show_release_lines(self, lines: Sequence[Text]) -> None:
        if (screen := self.release_screen) is not None:
            screen.show_lines(lines)

    def open_release_image(self, image: str, arch: str | None) -> None:
        """The release's ``image`` on the dashboard's panes (``arch``'s focused)."""
        from matui.ui.release_view import open_image

        state = next(s for s in self.release or [] if s.name == image)

        async def opened() -> None:
            await open_image(self, state, arch)
            if isinstance(self.screen, ReleaseScreen):
                self.pop_screen()
            self._layout(self.size.width)

        self.run_worker(opened(), group="release-open", exclusive=True)

    def action_release_view(self) -> None:
        """``o`` (or ``esc`` with nothing else to leave): back to the release grid."""
        if self.release is None or len(self.screen_stack) > 1:
            return
        self.push_screen("release")
        self.refresh_release()

    # --- help, quit, palette ---------------------------------------------------------------

    def action_hosts(self) -> None:
        hosts = self.query_one(HostsPanel)
        self.push_screen(HostsScreen(self.config.hosts, hosts.probes, hosts.passed_over))

    def action_history(self) -> None:
        open_history(self)

    def action_compare(self) -> None:
        """The run on screen (an old one open read-only, else the current one, else the
        image's latest recorded run) with its arches side by side."""
        from matui.engine.records import find_run, state_dir

        viewing = getattr(self, "viewing", None)
        observed = None
        if viewing is not None:
            record = viewing.record
        elif self.run_ is not None:
            record = self.run_.record
            # Step times seen live are saved when a job's state changes: hand over the latest.
            observed = {key: s.steps.to_json() for key, s in self.run_.status.items()}
        else:
            try:
                image = self.image.name if self.image is not None else None
                record = find_run(self.state_root or state_dir(), None, image)
            except LookupError:
                self.notify("no run to compare yet: b builds", severity="warning")
                return
        self.push_screen(CompareScreen(record, observed))

    def action_help(self) -> None:
        """Every key: the dashboard's, then the log pane's (one list, so a key added to
        either shows up here)."""
        rows = []
        for binding in [*self.BINDINGS, *ReleaseScreen.BINDINGS, *LogPane.BINDINGS]:
            if isinstance(binding, Binding):
                key = self.get_key_display(binding)
                rows.append((key, binding.tooltip or binding.description))
        self.push_screen(HelpScreen(rows))

    def _live_runs(self) -> list[BuildRun]:
        """The runs still building: the release's, else the one on the panes."""
        runs = [s.run for s in self.release or [] if s.run is not None]
        if self.run_ is not None and self.run_ not in runs:
            runs.append(self.run_)
        return [run for run in runs if run.running]

    def action_quit_app(self) -> None:
        live = self._live_runs()
        if not live:
            self.exit(0)
            return
        running = [
            s.job.arch
            if len(live) == 1
            else f"{run.plan.image.name.rsplit('/', 1)[-1]} {s.job.arch}"
            for run in live
            for s in run.status.values()
            if not s.state.finished
        ]

        def chosen(choice: str | None) -> None:
            if choice == "leave":
                self.exit(0)
            elif choice == "cancel":
                self._cancel_and_quit()

        self.push_screen(QuitScreen(running), chosen)

    @work(exclusive=True, group="quit")
    async def _cancel_and_quit(self) -> None:
        live = self._live_runs()
        if live:
            self.notify("cancelling the remote builds…")
            for run in live:
                await run.cancel()
            for run in live:
                await run.wait()
        self.exit(0)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if isinstance(binding, Binding):
                action = binding.action
                key = self.get_key_display(binding)
                yield SystemCommand(
                    binding.description,
                    f"{binding.tooltip or binding.description} (key: {key})",
                    lambda action=action: self.run_action(action),
                )


_PANE_ACTIONS = frozenset(
    binding.action.split("(")[0]
    for binding in MatuiApp.BINDINGS
    if isinstance(binding, Binding) and binding.action.split("(")[0] not in _RELEASE_KEYS
)
"""The dashboard's keys that act on an image's panes: not on the release grid."""
