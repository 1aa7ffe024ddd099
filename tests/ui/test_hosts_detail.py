"""The dashboard names what is wrong with a host, and every host a build passed over: badges
in the hosts table, the whole message in the flags panel, every host in full behind `h` (no
host is dialled: probes and the plan's passed-over list are given)."""

from __future__ import annotations

from dataclasses import replace

from matui.engine.plan import PassedOver
from matui.engine.probe import HostState, failed_probe
from matui.ui.app import MatuiApp
from matui.ui.hosts_screen import HostsScreen
from matui.ui.widgets.panels import FlagsPanel, HostsPanel
from tests.helpers.dashboard import FOUR, fake_config, fake_probes, settle, wait_for

AUTH = (
    "host 'arm64-1' (192.0.2.11:22) is reachable, but authentication failed: it refused login "
    "as user 'build' with ssh-agent and default keys (~/.ssh/id_*). The server accepts: "
    "password; it takes no keys for this user, and matui logs in with keys only. Fix: on the "
    "host, allow keys (`PubkeyAuthentication yes` in sshd_config; check "
    "`AuthenticationMethods` and `Match` blocks too), then add your public key to "
    "~build/.ssh/authorized_keys on the host; or set the right `user` / `identity` in the "
    "host entry."
)


def rows(app: MatuiApp) -> dict[str, list[str]]:
    table = app.query_one(HostsPanel)
    return {str(key.value): [str(cell) for cell in table.get_row(key)] for key in table.rows}


async def test_auth_failed_and_passed_over_hosts_are_named_everywhere() -> None:
    config = fake_config(FOUR)
    app = MatuiApp(config, probe_on_start=False, resume_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        probes = fake_probes(FOUR)
        probes[1] = failed_probe(config.hosts[1], HostState.AUTH_FAILED, AUTH)
        probes[3] = replace(probes[3], native_arch="amd64", uname="x86_64")
        passed = [
            PassedOver("arm64-1", "auth-failed", f"AUTH FAILED: {AUTH}"),
            PassedOver("ppc64le-1", "not-needed", "not needed: linux/ppc64le is built on x"),
        ]
        app.query_one(HostsPanel).mark_passed_over(passed)
        app.show_probes(probes, [])
        await settle(pilot)
        table = rows(app)
        assert table["arm64-1"][3:5] == ["yes", "AUTH FAILED"]  # reachable: not UNREACHABLE
        assert table["ppc64le-1"][4] == "UNUSED"
        assert table["s390x-1"][4] == "MISMATCH"
        flags = app.query_one(FlagsPanel)
        lines = [text.plain for _, text in flags.host_lines]
        assert lines == [
            f"ERROR   host arm64-1 AUTH FAILED: {AUTH}",
            "INFO    host ppc64le-1: not used by this build: not needed: linux/ppc64le is "
            "built on x",
        ]
        assert str(flags.border_title) == "Flags (2)"
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HostsScreen), "the hosts dialog")
        screen = app.screen
        assert isinstance(screen, HostsScreen)
        text = screen.text.plain
        assert AUTH in text
        assert "not used by this build: not needed: linux/ppc64le is built on x" in text
        for host in config.hosts:
            assert host.name in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HostsScreen), "closed")


async def test_h_before_any_probe_says_so() -> None:
    app = MatuiApp(fake_config(), probe_on_start=False, resume_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HostsScreen), "the hosts dialog")
        assert isinstance(app.screen, HostsScreen)
        assert app.screen.text.plain.count("not probed yet") == 2
