"""The hosts panel and the flags panel.

A host that cannot build shows what is wrong in both: a badge naming the kind (UNREACHABLE,
AUTH FAILED, KEY CHANGED, ...) in the hosts table, and the engine's whole message (both
fingerprints of a changed key, the command that fixes it) in the flags panel, the same text
``matui check`` prints. ``h`` opens every host's details (:mod:`matui.ui.hosts_screen`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable, Static

from matui.engine.probe import HostState

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.flags import Flag
    from matui.engine.plan import PassedOver
    from matui.engine.probe import HostProbe

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}

# Not usable, but the host answered with its trusted key: an amber badge, not red.
_AMBER = {HostState.AUTH_FAILED, HostState.SESSIONS_REFUSED, HostState.BROKEN}


def host_badge(probe: HostProbe) -> Text | None:
    """The badge for a host that cannot build, named by what is wrong; None when it can."""
    state = probe.state
    if state is HostState.OK:
        return None
    return Text(state.label, style="bold yellow" if state in _AMBER else "bold red")


def host_problem_lines(
    probes: Iterable[HostProbe], passed_over: Iterable[PassedOver] = ()
) -> list[tuple[str, Text]]:
    """(severity, line) for each host that cannot build (its whole error) and each host the
    last plan passed over for another reason (wrong arch, not needed)."""
    lines: list[tuple[str, Text]] = []
    for probe in probes:
        badge = host_badge(probe)
        if badge is None:
            continue
        line = Text()
        line.append(f"{'ERROR':7} ", style=_SEVERITY_STYLE["error"])
        line.append(f"host {probe.name} ", style="bold")
        line.append_text(badge)
        line.append(f": {probe.error or 'no answer'}")
        lines.append(("error", line))
    for passed in passed_over:
        if passed.state in {str(s) for s in HostState}:
            continue  # a failed probe: its error is shown above
        line = Text()
        line.append(f"{'INFO':7} ", style=_SEVERITY_STYLE["info"])
        line.append(f"host {passed.host}: ", style="bold")
        line.append(f"not used by this build: {passed.reason}")
        lines.append(("info", line))
    return lines


class HostsPanel(DataTable[Text | str]):
    """One row a host: declared and native arch, reachability, badges, buildx."""

    # Badges before the buildx version: a narrow panel cuts the last column, and a cut
    # "UNREACHABLE" or "MISMATCH" hides what matters most.
    COLUMNS = ("HOST", "ARCH", "NATIVE", "UP", "BADGES", "BUILDX")
    UNUSED = frozenset({"wrong-arch", "not-needed", "not-probed"})

    def __init__(self, hosts: Sequence[HostConfig]) -> None:
        super().__init__(id="hosts", cursor_type="none", zebra_stripes=False)
        self.can_focus = False
        self.border_title = "Hosts"
        self._hosts = list(hosts)
        self._emulating: set[str] = set()
        self._unused: set[str] = set()
        self.probes: list[HostProbe] = []
        self.passed_over: list[PassedOver] = []

    def on_mount(self) -> None:
        self.add_columns(*self.COLUMNS)
        for host in self._hosts:
            self.add_row(host.name, host.arch, "?", "…", "", "", key=host.name)

    def show_probes(self, probes: Iterable[HostProbe]) -> None:
        self.probes = list(probes)
        for probe in self.probes:
            badges = []
            badge = host_badge(probe)
            if badge is not None:
                badges.append(badge)
            if probe.native_arch and probe.native_arch != probe.arch:
                badges.append(Text("MISMATCH", style="bold red"))
            if probe.name in self._emulating:
                badges.append(Text("EMULATED", style="yellow"))
            if badge is None and probe.name in self._unused:
                badges.append(Text("UNUSED", style="dim"))
            up = Text("yes", style="green") if probe.reachable else Text("no", style="bold red")
            row: tuple[Text | str, ...] = (
                probe.name,
                probe.arch,
                probe.native_arch or "-",
                up,
                Text(" ").join(badges),
                (probe.buildx_version or "-").split("+")[0],
            )
            for column, value in zip(self.columns, row, strict=True):
                self.update_cell(probe.name, column, value, update_width=True)

    def mark_emulating(self, hosts: Iterable[str]) -> None:
        self._emulating = set(hosts)

    def mark_passed_over(self, passed_over: Iterable[PassedOver]) -> None:
        """Hosts the plan did not use though they can build: an UNUSED badge (the reason is in
        the flags panel and the host details)."""
        self.passed_over = list(passed_over)
        self._unused = {p.host for p in self.passed_over if p.state in self.UNUSED}


class FlagsPanel(Static):
    """Every open flag and every host that cannot build (its whole message), most severe
    first, one entry each (long ones wrap; ``h`` shows them in a dialog of their own)."""

    def __init__(self) -> None:
        super().__init__("", id="flags")
        self.border_title = "Flags"
        self.flags: list[Flag] = []
        self.host_lines: list[tuple[str, Text]] = []

    def show_hosts(
        self, probes: Iterable[HostProbe], passed_over: Iterable[PassedOver] = ()
    ) -> None:
        self.host_lines = host_problem_lines(probes, passed_over)
        self._render_lines()

    def show_flags(self, flags: Iterable[Flag]) -> None:
        order = {"error": 0, "warning": 1, "info": 2}
        self.flags = sorted(flags, key=lambda f: order.get(str(f.severity), 3))
        self._render_lines()

    def _render_lines(self) -> None:
        order = {"error": 0, "warning": 1, "info": 2}
        entries: list[tuple[str, Text]] = list(self.host_lines)
        for flag in self.flags:
            severity = str(flag.severity)
            line = Text()
            line.append(f"{severity.upper():7} ", style=_SEVERITY_STYLE.get(severity, ""))
            line.append(f"{flag.kind} {flag.subject}: ", style="bold")
            line.append(flag.message)
            entries.append((severity, line))
        entries.sort(key=lambda entry: order.get(entry[0], 3))  # stable: hosts first
        self.border_title = f"Flags ({len(entries)})" if entries else "Flags"
        # A host's whole message may not fit the panel: say where it is shown in full.
        self.border_subtitle = "h: hosts in full" if self.host_lines else ""
        if not entries:
            self.update(Text("no flags", style="dim"))
            return
        self.update(Text("\n").join(line for _, line in entries))
