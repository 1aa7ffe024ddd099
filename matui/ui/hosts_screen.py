"""Every host in full: what its probe found and, when it cannot build, the engine's whole
message, wrapped and scrollable.

The hosts table and the flags panel share an 80x24 strip of a few lines: a changed host key's
message (both fingerprints, the `ssh-keygen -R` command) or an authentication failure's advice
does not fit there. This dialog shows it whole, word for word as ``matui check`` prints it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from matui.ui.widgets.panels import host_badge

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.plan import PassedOver
    from matui.engine.probe import HostProbe


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def render_hosts(
    hosts: Sequence[HostConfig],
    probes: Iterable[HostProbe],
    passed_over: Iterable[PassedOver] = (),
) -> Text:
    """One block per configured host, in config order."""
    by_name = {p.name: p for p in probes}
    unused = {p.host: p for p in passed_over}
    text = Text()
    for i, host in enumerate(hosts):
        if i:
            text.append("\n\n")
        probe = by_name.get(host.name)
        text.append(host.name, style="bold")
        text.append(f"  {host.label().removeprefix(host.name).strip()}", style="dim")
        if probe is None:
            text.append("\n  not probed yet (c probes the hosts)", style="dim")
            continue
        badge = host_badge(probe)
        text.append("  ")
        text.append_text(badge if badge is not None else Text("OK", style="bold green"))
        text.append(
            f"\n  declared {probe.arch} · native {probe.native_arch or '-'}"
            f" · docker {probe.docker_version or '-'}"
            f" · buildx {(probe.buildx_version or '-').split('+')[0]}"
            f" · QEMU {','.join(probe.emulation) or '-'} · free {_size(probe.free_bytes)}"
        )
        if probe.builder_line:
            text.append(f"\n  {probe.builder_line}")
        if probe.error:
            text.append("\n  ")
            text.append(probe.error)
        passed = unused.get(host.name)
        if passed is not None and not probe.error:
            text.append("\n  not used by this build: ", style="bold")
            text.append(passed.reason)
    return text


class HostsScreen(ModalScreen[None]):
    """Every host's probe and whole error; `esc` closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,h,q", "dismiss", "Close", id="hosts.close"),
    ]

    def __init__(
        self,
        hosts: Sequence[HostConfig],
        probes: Iterable[HostProbe],
        passed_over: Iterable[PassedOver] = (),
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.text = render_hosts(hosts, probes, passed_over)

    def compose(self) -> ComposeResult:
        with Vertical(id="hosts-detail", classes="dialog"), VerticalScroll():
            yield Static(self.text, id="hosts-detail-text")

    def on_mount(self) -> None:
        self.query_one("#hosts-detail").border_title = "Hosts"
        self.query_one(VerticalScroll).focus()  # arrows and page keys scroll a long message
