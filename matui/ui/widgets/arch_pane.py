"""One build's pane: a titled frame around its live log.

Before a build it shows the plan (``planned``): the arch, the host the engine's plan puts it on
and whether natively or under emulation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical

from matui.ui.widgets.log_pane import LogPane

if TYPE_CHECKING:
    from matui.engine.build.failure import FailureRecord
    from matui.engine.logstore import LogStore

STATE_CLASSES = (
    "planned",
    "queued",
    "uploading",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "lost",
)


class ArchPane(Vertical):
    """The title says arch, state and host; the subtitle the current step, digest or failing
    step."""

    DEFAULT_CSS = """
    ArchPane {
        border: round $panel-lighten-2;
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(
        self,
        key: str,
        arch: str,
        host: str,
        *,
        emulated: bool = False,
        planned: bool = False,
        store: LogStore | None = None,
    ) -> None:
        state = "planned" if planned else "queued"
        super().__init__(id=f"pane-{key}", classes=f"arch-pane -{state}")
        self.key = key
        self.arch = arch
        self.host = host
        self.emulated = emulated
        self.state = state
        self.detail = ""
        if planned:
            self.detail = "planned, under QEMU: b builds it" if emulated else "planned: b builds it"
        self.failure: FailureRecord | None = None
        """Why the job failed (its card, key i), while it is failed or lost."""
        self.view = LogPane(store, id=f"log-{key}")  # store: lines logged before it showed
        self._retitle()

    def compose(self) -> ComposeResult:
        yield self.view

    def on_log_pane_view_changed(self, message: LogPane.ViewChanged) -> None:
        self._retitle()  # wrap on/off, or the column scrolled to, in the subtitle

    def set_state(self, state: str, detail: str = "", failure: FailureRecord | None = None) -> None:
        for name in STATE_CLASSES:
            self.set_class(name == state, f"-{name}")
        self.state = state
        self.detail = detail
        self.failure = failure if state in ("failed", "lost") else None
        self._retitle()

    def on_resize(self, event: events.Resize) -> None:
        if self.failure is not None:
            self._retitle()  # the failure's one line is made to fit the pane's width

    def set_step(self, step: str | None) -> None:
        if self.state == "running":
            self.detail = step or ""
            self._retitle()

    def _retitle(self) -> None:
        host = f"{self.host} (QEMU)" if self.emulated else self.host
        state = self.state.upper() if self.state in ("failed", "lost") else self.state
        # State before host: a narrow pane cuts the end of its title, and the state matters
        # most (at 120 columns, "arm64 · emu-1 (QEMU) · succeeded" lost its state).
        # Text, not str: a str title is read as markup, and the detail is host text.
        if self.state == "planned":  # where the plan puts it, and how
            how = "emulated" if self.emulated else "native"
            self.border_title = Text(f"{self.arch} · {how} on {self.host}")
        else:
            self.border_title = Text(f"{self.arch} · {state} · {host}")
        if self.failure is not None:
            # The step's own exit code and the cause, the step's name shortened to fit:
            # "exit 3 at [3/4] RUN … · build-error" (the engine's one line, as the CLI's).
            width = self.size.width - 6 if self.size.width > 26 else 60
            subtitle = Text(self.failure.headline(width, self.detail))
        else:
            subtitle = Text(_short(self.detail))
        # How long lines are shown, before the detail: wrapped, or from which column.
        view = self.view
        if view.wrap or view.scroll_column:
            shown = "wrap" if view.wrap else f"col {view.scroll_column + 1}→"
            subtitle = Text(f"{shown} · " if subtitle.plain else shown).append_text(subtitle)
        self.border_subtitle = subtitle


def _short(detail: str, width: int = 60) -> str:
    if detail.startswith("sha256:"):  # a digest, then how it was pushed (builder, node)
        digest, _, how = detail.partition(" ")
        return f"{digest[:19]} {how}" if how else digest[:19]
    return detail if len(detail) <= width else detail[: width - 1] + "…"
