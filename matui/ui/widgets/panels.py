"""The hosts panel and the flags panel."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable, Static

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.flags import Flag
    from matui.engine.probe import HostProbe

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


class HostsPanel(DataTable[Text | str]):
    """One row a host: declared and native arch, reachability, badges, buildx."""

    # Badges before the buildx version: a narrow panel cuts the last column, and a cut
    # "UNREACHABLE" or "MISMATCH" hides what matters most.
    COLUMNS = ("HOST", "ARCH", "NATIVE", "UP", "BADGES", "BUILDX")

    def __init__(self, hosts: Sequence[HostConfig]) -> None:
        super().__init__(id="hosts", cursor_type="none", zebra_stripes=False)
        self.can_focus = False
        self.border_title = "Hosts"
        self._hosts = list(hosts)
        self._emulating: set[str] = set()

    def on_mount(self) -> None:
        self.add_columns(*self.COLUMNS)
        for host in self._hosts:
            self.add_row(host.name, host.arch, "?", "…", "", "", key=host.name)

    def show_probes(self, probes: Iterable[HostProbe]) -> None:
        for probe in probes:
            badges = []
            if not probe.reachable:
                badges.append(Text("UNREACHABLE", style="bold red"))
            elif probe.error:
                badges.append(Text("BROKEN", style="bold red"))
            if probe.native_arch and probe.native_arch != probe.arch:
                badges.append(Text("MISMATCH", style="bold red"))
            if probe.name in self._emulating:
                badges.append(Text("EMULATED", style="yellow"))
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


class FlagsPanel(Static):
    """Every open flag, most severe first, one line each."""

    def __init__(self) -> None:
        super().__init__("", id="flags")
        self.border_title = "Flags"
        self.flags: list[Flag] = []

    def show_flags(self, flags: Iterable[Flag]) -> None:
        order = {"error": 0, "warning": 1, "info": 2}
        self.flags = sorted(flags, key=lambda f: order.get(str(f.severity), 3))
        self.border_title = f"Flags ({len(self.flags)})" if self.flags else "Flags"
        if not self.flags:
            self.update(Text("no flags", style="dim"))
            return
        lines = Text()
        for i, flag in enumerate(self.flags):
            if i:
                lines.append("\n")
            severity = str(flag.severity)
            lines.append(f"{severity.upper():7} ", style=_SEVERITY_STYLE.get(severity, ""))
            lines.append(f"{flag.kind} {flag.subject}: ", style="bold")
            lines.append(flag.message)
        self.update(lines)
