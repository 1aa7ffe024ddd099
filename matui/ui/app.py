"""The matui dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from matui.ui.resources import stylesheet

if TYPE_CHECKING:
    from matui.engine.check import CheckReport
    from matui.engine.config import Config


class MatuiApp(App[int]):
    CSS_PATH = str(stylesheet())
    TITLE = "matui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "check", "Check hosts", id="check"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, config: Config, *, probe_on_start: bool = True) -> None:
        super().__init__()
        self.config = config
        self.probe_on_start = probe_on_start

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str] = DataTable(id="hosts", cursor_type="row")
        table.border_title = "Hosts"
        yield table
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#hosts", DataTable)
        table.add_columns("HOST", "ARCH", "NATIVE", "REACHABLE", "BUILDX", "BADGES")
        for host in self.config.hosts:
            table.add_row(host.name, host.arch, "?", "…", "", "", key=host.name)
        if self.probe_on_start and self.config.hosts:
            self.action_check()

    def action_check(self) -> None:
        self.query_one("#status", Static).update("probing hosts…")
        self.run_check()

    @work(exclusive=True, group="probe")
    async def run_check(self) -> None:
        from matui.engine.check import check_hosts
        from matui.engine.ssh import SshPool

        async with SshPool(self.config.hosts) as pool:
            report = await check_hosts(pool, self.config.hosts)
        self.show_report(report)

    def show_report(self, report: CheckReport) -> None:
        table = self.query_one("#hosts", DataTable)
        for probe in report.probes:
            badges = []
            if not probe.reachable:
                badges.append("UNREACHABLE")
            if probe.native_arch and probe.native_arch != probe.arch:
                badges.append("MISMATCH")
            row = (
                probe.name,
                probe.arch,
                probe.native_arch or "-",
                "yes" if probe.reachable else "no",
                probe.buildx_version or "-",
                " ".join(badges),
            )
            for column, value in zip(table.columns, row, strict=True):
                table.update_cell(probe.name, column, value)
        errors = sum(1 for flag in report.flags if flag.severity == "error")
        self.query_one("#status", Static).update(
            "all hosts ready" if report.ok else f"{errors} error flag(s); see `matui check`"
        )
