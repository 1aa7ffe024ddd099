"""The hosts panel and the flags panel.

The flags panel keeps the run's flags and the hosts' apart: probing the hosts again changes
only the hosts' group, so a run's emulation warning or a blocking tag-overwrite error stays in
view as long as the run does.

A host that cannot build shows what is wrong in both: a badge naming the kind (UNREACHABLE,
AUTH FAILED, KEY CHANGED, ...) in the hosts table, and the engine's whole message (both
fingerprints of a changed key, the command that fixes it) in the flags panel, the same text
``matui check`` prints. ``h`` opens every host's details (:mod:`matui.ui.hosts_screen`).
"""

from __future__ import annotations

import time
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

    def needed_width(self) -> int:
        """Cells the table needs to show every column up to its badges, frame included (the
        BUILDX column after them may be cut)."""
        columns = list(self.columns.values())[: self.COLUMNS.index("BADGES") + 1]
        return sum(column.get_render_width(self) for column in columns) + 2

    def mark_emulating(self, hosts: Iterable[str]) -> None:
        self._emulating = set(hosts)

    def mark_passed_over(self, passed_over: Iterable[PassedOver]) -> None:
        """Hosts the plan did not use though they can build: an UNUSED badge (the reason is in
        the flags panel and the host details)."""
        self.passed_over = list(passed_over)
        self._unused = {p.host for p in self.passed_over if p.state in self.UNUSED}


def flag_line(flag: Flag) -> Text:
    severity = str(flag.severity)
    line = Text()
    line.append(f"{severity.upper():7} ", style=_SEVERITY_STYLE.get(severity, ""))
    line.append(f"{flag.kind} {flag.subject}: ", style="bold")
    line.append(flag.message)
    return line


def message_line(at: float, severity: str, title: str, text: str) -> Text:
    """One message the dashboard showed as a toast: when, and what (plain text, never markup)."""
    style = {"error": "bold red", "warning": "yellow"}.get(severity, "")
    line = Text(time.strftime("%H:%M:%S ", time.localtime(at)), style="dim")
    line.append(f"{title}: " if title else "", style="bold")
    line.append(text, style=style)
    return line


_ORDER = {"error": 0, "warning": 1, "info": 2}


class FlagsPanel(Static):
    """Flags in two groups that never replace each other: the run's (pre-flight and post-build
    checks: they decide whether it may be published) and the hosts' (the last probe: every host
    that cannot build, with its whole message, and the probe's own flags), most severe first,
    one entry each (long ones wrap; ``h`` shows hosts in a dialog of their own). Then the
    newest messages the dashboard showed as toasts, so a reason outlives its toast."""

    MESSAGES = 5
    """Messages shown, newest first."""

    def __init__(self) -> None:
        super().__init__("", id="flags")
        self.border_title = "Flags"
        self.flags: list[Flag] = []
        """The run's open flags."""
        self.host_flags: list[Flag] = []
        """The hosts' flags from the last probe."""
        self.host_lines: list[tuple[str, Text]] = []
        self.messages: list[Text] = []

    def show_hosts(
        self, probes: Iterable[HostProbe], passed_over: Iterable[PassedOver] = ()
    ) -> None:
        self.host_lines = host_problem_lines(probes, passed_over)
        self._render_lines()

    def show_flags(self, flags: Iterable[Flag], host_flags: Iterable[Flag] | None = None) -> None:
        """The run's flags; the hosts' too when given (else those shown stay)."""
        self.flags = sorted(flags, key=lambda f: _ORDER.get(str(f.severity), 3))
        if host_flags is not None:
            self.host_flags = sorted(host_flags, key=lambda f: _ORDER.get(str(f.severity), 3))
        self._render_lines()

    def show_messages(self, messages: Iterable[Text]) -> None:
        """The newest messages first (the dashboard keeps more; the panel shows a few)."""
        self.messages = list(messages)[: self.MESSAGES]
        self._render_lines()

    def _render_lines(self) -> None:
        run = [(str(f.severity), flag_line(f)) for f in self.flags]
        # A probe flag the run holds too (a host's arch) is shown once, with the run's.
        hosts = list(self.host_lines) + [
            (str(f.severity), flag_line(f)) for f in self.host_flags if f not in self.flags
        ]
        hosts.sort(key=lambda entry: _ORDER.get(entry[0], 3))  # stable: host problems first
        count = len(run) + len(hosts)
        self.border_title = f"Flags ({count})" if count else "Flags"
        # A host's whole message may not fit the panel: say where it is shown in full.
        self.border_subtitle = "h: hosts in full" if self.host_lines else ""
        lines: list[Text] = []
        if run:
            lines += [Text("this run", style="bold underline")] if hosts else []
            lines += [line for _, line in run]
        if hosts:
            lines += [Text("hosts (last probe)", style="bold underline")] if run else []
            lines += [line for _, line in hosts]
        if not count:
            lines.append(Text("no flags", style="dim"))
        if self.messages:
            lines += [Text("messages", style="bold underline"), *self.messages]
        self.update(Text("\n").join(lines))


def panel_summary(probes: Sequence[HostProbe], hosts: int, flags: Sequence[Flag]) -> Text:
    """The side panel in one line, for when it is collapsed: how many hosts can build, the
    flags by severity (a host that cannot build is an error of its own, as in the panel) and
    the first error's subject, so nothing that blocks a build or a publish is out of sight."""
    broken = [probe for probe in probes if host_badge(probe) is not None]
    line = Text.assemble(("p", "bold reverse"), " ")  # the key that opens the panel
    if probes:
        ready = sum(1 for probe in probes if probe.state is HostState.OK)
        style = "green" if ready == len(probes) else "bold red"
        line.append(f"hosts {ready}/{hosts} ready", style=style)
    else:
        line.append(f"hosts {hosts}: not probed", style="dim")
    counts: dict[str, int] = {"error": len(broken)}
    for flag in flags:
        counts[str(flag.severity)] = counts.get(str(flag.severity), 0) + 1
    shown = [(severity, counts.get(severity, 0)) for severity in _ORDER]
    line.append(" · ")
    if not any(count for _, count in shown):
        line.append("no flags", style="dim")
    else:
        line.append("flags ")
        line.append_text(
            Text(" ").join(
                Text(f"{count} {severity}", style=_SEVERITY_STYLE[severity])
                for severity, count in shown
                if count
            )
        )
        worst = sorted(flags, key=lambda f: _ORDER.get(str(f.severity), 3))
        if broken and (not worst or str(worst[0].severity) == "error"):
            line.append(f" (host {broken[0].name} {broken[0].state.label})", style="bold")
        elif worst:
            line.append(f" ({worst[0].kind} {worst[0].subject})", style="bold")
    return line


class PanelHint(Static):
    """One line standing in for the collapsed side panel (:func:`panel_summary`)."""

    def __init__(self) -> None:
        super().__init__("", id="panel-hint")
