"""Connection trouble told as it is, on the rig: a changed host key shows the same whole message
in ``matui check`` and the dashboard; two host entries on a server with ``MaxSessions 1`` both
probe and build; a password-only server is "auth failed" with advice that fits, not
"unreachable"; ``matui build`` names the host it passes over; a ``ProxyJump`` in
``~/.ssh/config`` is followed through a bastion whose own log shows the forwarding.

Every server a test changes or reads the log of is a private sshd (``tests/helpers/sshd.py``);
the shared rig's sshds are only connected to.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from matui.engine.config import HostConfig, load_config
from matui.engine.probe import HostState, probe_host
from matui.engine.shell import RemoteScript
from matui.engine.ssh import HostKeyUnknown, SshPool
from matui.ui.app import MatuiApp
from matui.ui.hosts_screen import HostsScreen
from matui.ui.widgets.panels import FlagsPanel, HostsPanel
from tests.helpers.cli import run_matui
from tests.helpers.dashboard import wait_for
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd, private_sshd

pytestmark = pytest.mark.rig

QUICK = """\
ARG BASE
FROM ${BASE}
RUN echo "built-%s on $(uname -m)"
"""


def fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True)
    return out.stdout.split()[1]


def host_entry(name: str, port: int, extra: str = "") -> str:
    return (
        f'[[hosts]]\nname = "{name}"\narch = "amd64"\naddress = "127.0.0.1"\nport = {port}\n'
        f"{extra}\n"
    )


def write_config(
    tmp_path: Path, rig: Rig, known_hosts: Path, hosts: str, *, image: bool = False
) -> Path:
    config = tmp_path / "matui.toml"
    text = (
        f'[defaults]\nuser = "{rig.user}"\nidentity = "{rig.key}"\n'
        f'known_hosts = "{known_hosts}"\n\n{hosts}'
    )
    if image:
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text(QUICK % secrets.token_hex(6))
        text += (
            f'\n[[images]]\nname = "{rig.registry}/honesty/app{secrets.token_hex(4)}"\n'
            'tags = ["1.0"]\ncontext = "ctx"\nplatforms = ["linux/amd64", "linux/arm64"]\n'
            f'build_args = {{ BASE = "{rig.base_image}" }}\n'
        )
    config.write_text(text)
    return config


def log_since(path: Path, start: int) -> str:
    with path.open("rb") as f:
        f.seek(start)
        return f.read().decode("utf-8", "replace")


async def wait_in_log(path: Path, start: int, pattern: str, timeout: float = 10) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, log_since(path, start))
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not in {path}:\n{log_since(path, start)}")
        await asyncio.sleep(0.05)


StartSshd = Callable[[str, list[str]], Sshd]


@pytest.fixture
def start_sshd(rig: Rig, tmp_path: Path) -> Iterator[StartSshd]:
    """Private sshds with extra sshd_config lines, each stopped at the end of the test."""
    started: list[Sshd] = []

    def start(name: str, options: list[str]) -> Sshd:
        server = private_sshd(rig, tmp_path / name, options=options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------------------------
# 1. a changed host key: the same whole message in the CLI and the dashboard


async def test_changed_host_key_shows_the_same_whole_message_in_cli_and_dashboard(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    # The private sshd has the amd64 host's key; this known_hosts maps its port to the
    # bastion's key: what a reinstalled host (or a man in the middle) looks like.
    bastion_key = (rig.sshd_dir("bastion") / "ssh_host_ed25519_key.pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {bastion_key[0]} {bastion_key[1]}\n")
    config = write_config(tmp_path, rig, known, host_entry("moved", sshd.port))
    expected = fingerprint(rig.sshd_dir("bastion") / "ssh_host_ed25519_key.pub")
    actual = fingerprint(rig.sshd_dir("amd64") / "ssh_host_ed25519_key.pub")
    remove = f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {known}"

    result = run_matui("check", "--config", config, "--json", timeout=300)
    assert result.returncode == 1, result.stderr
    (entry,) = json.loads(result.stdout)["hosts"]
    assert entry["state"] == "host-key-changed" and entry["reachable"] is False
    message = entry["error"]
    assert message.startswith(f"HOST KEY CHANGED for host 'moved' (127.0.0.1:{sshd.port})")
    assert expected in message and actual in message and remove in message
    human = run_matui("check", "--config", config, timeout=300)
    assert f"host  moved: {message}" in human.stdout
    assert re.search(r"^moved .* host-key-changed$", human.stdout, re.M), human.stdout

    app = MatuiApp(load_config(config), resume_on_start=False, state_root=tmp_path / "state")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.probes, "the probe on start", timeout=30)
        (probe,) = app.probes
        assert probe.state is HostState.HOST_KEY_CHANGED
        assert probe.error == message  # word for word what the CLI printed
        row = [str(cell) for cell in app.query_one(HostsPanel).get_row("moved")]
        assert row[3:5] == ["no", "KEY CHANGED"]  # not UNREACHABLE, not a wrong hint
        flags = app.query_one(FlagsPanel)
        (line,) = [text.plain for _, text in flags.host_lines]
        assert line == f"ERROR   host moved KEY CHANGED: {message}"
        assert flags.border_subtitle == "h: hosts in full"
        # At 80x24 the strip cuts it: 'h' shows it whole.
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HostsScreen), "the hosts dialog")
        screen = app.screen
        assert isinstance(screen, HostsScreen)
        assert message in screen.text.plain
        await pilot.press("end")
        await pilot.pause()
        shown = " ".join(strip.text.strip(" │") for strip in app.screen._compositor.render_strips())
        assert "trust the new key." in " ".join(shown.split())  # the end of the message
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HostsScreen), "back")


# --------------------------------------------------------------------------------------------
# 2. two host entries on one MaxSessions-1 server; 4. the host passed over is named


def test_two_entries_on_a_maxsessions_1_server_probe_and_build_and_a_dead_host_is_named(
    rig: Rig, tmp_path: Path, start_sshd: StartSshd
) -> None:
    server: Sshd = start_sshd("one-session", ["MaxSessions 1"])
    log_start = server.log.stat().st_size
    config = write_config(
        tmp_path,
        rig,
        server.known_hosts,
        host_entry("native", server.port)
        + host_entry("emu", server.port, "allow_emulation = true")
        + host_entry("dead", 1),
        image=True,
    )
    check = run_matui("check", "--config", config, "--json", timeout=300)
    hosts = {h["name"]: h for h in json.loads(check.stdout)["hosts"]}
    assert hosts["native"]["state"] == hosts["emu"]["state"] == "ok", hosts
    assert hosts["dead"]["state"] == "unreachable"
    # sshd turned a second session on one connection away; matui opened another.
    assert len(re.findall(r"Accepted publickey", log_since(server.log, log_start))) >= 2

    build = run_matui("build", "--config", config, "--json", timeout=300)
    assert build.returncode == 0, build.stderr
    assert "no reachable" not in build.stderr and "allow_emulation" not in build.stderr
    doc = json.loads(build.stdout)
    jobs = {j["arch"]: j for j in doc["jobs"]}
    assert (jobs["amd64"]["host"], jobs["amd64"]["state"]) == ("native", "succeeded")
    assert (jobs["arm64"]["host"], jobs["arm64"]["state"]) == ("emu", "succeeded")
    assert jobs["arm64"]["emulated"] is True
    # The dead host is named, with why, before the build starts.
    (passed,) = doc["passed_over"]
    assert passed["host"] == "dead" and passed["state"] == "unreachable"
    assert passed["reason"].startswith("UNREACHABLE: cannot reach host 'dead' at 127.0.0.1:1")
    lines = build.stderr.splitlines()
    named = next(i for i, line in enumerate(lines) if line.startswith("matui: not using host"))
    run_line = next(i for i, line in enumerate(lines) if line.startswith("matui: run "))
    assert named < run_line
    assert lines[named] == f"matui: not using host dead: {passed['reason']}"


# --------------------------------------------------------------------------------------------
# 3. authentication failures say what the server accepts and are not "unreachable"


def test_password_only_server_is_auth_failed_with_advice_that_fits(
    rig: Rig, tmp_path: Path, start_sshd: StartSshd
) -> None:
    server: Sshd = start_sshd(
        "passwords", ["PubkeyAuthentication no", "PasswordAuthentication yes"]
    )
    log_start = server.log.stat().st_size
    config = write_config(tmp_path, rig, server.known_hosts, host_entry("pw", server.port))
    result = run_matui("check", "--config", config, "--json", timeout=300)
    assert result.returncode == 1
    (entry,) = json.loads(result.stdout)["hosts"]
    assert entry["state"] == "auth-failed" and entry["reachable"] is True
    message = entry["error"]
    assert message.startswith(
        f"host 'pw' (127.0.0.1:{server.port}) is reachable, but authentication failed"
    )
    assert "The server accepts: password" in message and "publickey" not in message
    assert "PubkeyAuthentication yes" in message and "authorized_keys" in message
    assert "unreachable" not in message.lower() and "cannot reach" not in message
    human = run_matui("check", "--config", config, timeout=300)
    assert re.search(r"^pw .* auth-failed$", human.stdout, re.M), human.stdout
    # No login happened and no password was ever sent.
    text = log_since(server.log, log_start)
    assert "Accepted" not in text and "Failed password" not in text


def test_wrong_key_on_a_key_server_says_it_accepts_keys(rig: Rig, tmp_path: Path) -> None:
    other = tmp_path / "id_other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    config = write_config(
        tmp_path, rig, rig.known_hosts, host_entry("k", rig.port_amd64, f'identity = "{other}"')
    )
    check = run_matui("check", "--config", config, "--json", timeout=300)
    (entry,) = json.loads(check.stdout)["hosts"]
    assert entry["state"] == "auth-failed"
    assert "The server accepts: publickey." in entry["error"]
    assert f"ssh-copy-id -i {other}.pub -p {rig.port_amd64}" in entry["error"]
    assert other.read_text().splitlines()[1] not in entry["error"]  # no key material


# --------------------------------------------------------------------------------------------
# 5. ProxyJump in ~/.ssh/config is followed


def known_hosts_line(rig: Rig, name: str, port: int) -> str:
    key_type, data = (rig.sshd_dir(name) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"[127.0.0.1]:{port} {key_type} {data}\n"


async def test_proxyjump_in_ssh_config_goes_through_the_bastion(
    rig: Rig, tmp_path: Path, start_sshd: StartSshd
) -> None:
    bastion: Sshd = start_sshd("bastion", ["LogLevel DEBUG1"])  # DEBUG1 logs each forwarding
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        "Host build1\n  HostName 127.0.0.1\n"
        f"  Port {rig.port_amd64}\n  ProxyJump {rig.user}@127.0.0.1:{bastion.port}\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(
        bastion.known_hosts.read_text() + known_hosts_line(rig, "amd64", rig.port_amd64)
    )
    host = HostConfig("b1", "amd64", "build1", user=rig.user, identity=rig.key, known_hosts=known)
    log_start = bastion.log.stat().st_size
    async with SshPool([host], user_ssh_config=ssh_config) as pool:
        probe = await probe_host(pool, host)
    assert probe.usable and probe.native_arch == "amd64", probe.error
    await wait_in_log(
        bastion.log,
        log_start,
        r"server_request_direct_tcpip: originator [^\n]*, "
        rf"target 127\.0\.0\.1 port {rig.port_amd64}\b",
    )

    # The hop gets the same host-key rules: a known_hosts without the bastion's key stops
    # there, naming the hop and its fingerprint, and nothing is forwarded.
    only_target = tmp_path / "known_hosts_target_only"
    only_target.write_text(known_hosts_line(rig, "amd64", rig.port_amd64))
    strict = HostConfig(
        "b1", "amd64", "build1", user=rig.user, identity=rig.key, known_hosts=only_target
    )
    log_start = bastion.log.stat().st_size
    async with SshPool([strict], user_ssh_config=ssh_config) as pool:
        with pytest.raises(HostKeyUnknown) as err:
            await pool.run(strict, RemoteScript("true"))
    assert err.value.host == f"{rig.user}@127.0.0.1:{bastion.port}"
    assert err.value.port == bastion.port
    assert "direct_tcpip" not in log_since(bastion.log, log_start)


async def test_multi_hop_proxyjump_goes_through_both_bastions(
    rig: Rig, tmp_path: Path, start_sshd: StartSshd
) -> None:
    outer: Sshd = start_sshd("outer", ["LogLevel DEBUG1"])
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host build1\n  HostName 127.0.0.1\n  Port {rig.port_amd64}\n"
        f"  ProxyJump {rig.user}@127.0.0.1:{outer.port},{rig.user}@127.0.0.1:{rig.port_bastion}\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(outer.known_hosts.read_text() + rig.known_hosts.read_text())
    host = HostConfig("b1", "amd64", "build1", user=rig.user, identity=rig.key, known_hosts=known)
    log_start = outer.log.stat().st_size
    async with SshPool([host], user_ssh_config=ssh_config) as pool:
        probe = await probe_host(pool, host)
    assert probe.usable, probe.error
    # The first hop forwarded to the second (the rig's bastion), not to the target.
    await wait_in_log(
        outer.log,
        log_start,
        r"server_request_direct_tcpip: originator [^\n]*, "
        rf"target 127\.0\.0\.1 port {rig.port_bastion}\b",
    )
    assert f"port {rig.port_amd64}" not in log_since(outer.log, log_start)


def test_matui_check_follows_proxyjump_from_the_users_ssh_config(
    rig: Rig, tmp_path: Path, start_sshd: StartSshd
) -> None:
    """The CLI reads ~/.ssh/config (HOME here is a test directory)."""
    bastion: Sshd = start_sshd("bastion", ["LogLevel DEBUG1"])
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        "Host build1\n  HostName 127.0.0.1\n"
        f"  Port {rig.port_amd64}\n  ProxyJump {rig.user}@127.0.0.1:{bastion.port}\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(
        bastion.known_hosts.read_text() + known_hosts_line(rig, "amd64", rig.port_amd64)
    )
    config = tmp_path / "matui.toml"
    config.write_text(
        f'[defaults]\nuser = "{rig.user}"\nidentity = "{rig.key}"\nknown_hosts = "{known}"\n\n'
        '[[hosts]]\nname = "b1"\narch = "amd64"\naddress = "build1"\n'
    )
    log_start = bastion.log.stat().st_size
    env = {**os.environ, "HOME": str(home)}
    result = run_matui("check", "--config", config, "--json", env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = json.loads(result.stdout)["hosts"]
    assert entry["state"] == "ok" and entry["native_arch"] == "amd64"
    assert f"target 127.0.0.1 port {rig.port_amd64}" in log_since(bastion.log, log_start)


# --------------------------------------------------------------------------------------------
# the pool's answer to a refused session: spare connections, retry, then a clear error


def one_session_host(server: Sshd, rig: Rig, name: str = "h") -> HostConfig:
    return HostConfig(
        name,
        "amd64",
        "127.0.0.1",
        port=server.port,
        user=rig.user,
        identity=rig.key,
        known_hosts=server.known_hosts,
    )


async def test_a_refused_session_waits_for_a_free_one_on_the_same_connection(
    rig: Rig, tmp_path: Path, start_sshd: StartSshd
) -> None:
    server = start_sshd("one-session", ["MaxSessions 1"])
    host = one_session_host(server, rig)
    log_start = server.log.stat().st_size
    async with SshPool([host], user_ssh_config=None, max_connections=1, session_wait=60) as pool:
        first = asyncio.create_task(pool.run(host, RemoteScript("sleep 1; echo first")))
        await wait_in_log(server.log, log_start, r"Starting session: command")
        second = await pool.run(host, RemoteScript("echo second"))  # refused, then retried
        assert second.out_text() == "second\n"
        assert (await first).out_text() == "first\n"
    text = log_since(server.log, log_start)
    assert len(re.findall("Accepted publickey", text)) == 1  # one connection
    # sshd refused the second session while the first ran, and started it only once the
    # first had closed: it was retried, and waited for the slot.
    assert "no more sessions" in text
    events = re.findall(r"(Starting|Close) session", text)
    assert events[:3] == ["Starting", "Close", "Starting"], text


async def test_sessions_refused_for_the_whole_wait_is_a_clear_error_not_unreachable(
    rig: Rig, tmp_path: Path, start_sshd: StartSshd
) -> None:
    server = start_sshd("one-session", ["MaxSessions 1"])
    host = one_session_host(server, rig)
    log_start = server.log.stat().st_size
    async with SshPool([host], user_ssh_config=None, max_connections=1, session_wait=1) as pool:
        holder = asyncio.create_task(pool.run(host, RemoteScript("exec sleep 30")))
        await wait_in_log(server.log, log_start, r"Starting session: command")
        probe = await probe_host(pool, host)
        holder.cancel()
    assert probe.state is HostState.SESSIONS_REFUSED and probe.reachable and not probe.usable
    assert probe.error is not None
    assert probe.error.startswith(
        f"host 'h' (127.0.0.1:{server.port}) is reachable but refused to start a command"
    )
    assert "MaxSessions" in probe.error and "unreachable" not in probe.error


async def test_hosts_on_one_server_get_a_connection_each_when_sessions_run_out(
    rig: Rig, tmp_path: Path, start_sshd: StartSshd
) -> None:
    server = start_sshd("one-session", ["MaxSessions 1"])
    a, b = one_session_host(server, rig, "a"), one_session_host(server, rig, "b")
    log_start = server.log.stat().st_size
    async with SshPool([a, b], user_ssh_config=None) as pool:
        results = await asyncio.gather(
            pool.run(a, RemoteScript("sleep 1; echo a")),
            pool.run(b, RemoteScript("sleep 1; echo b")),
        )
    assert [r.out_text() for r in results] == ["a\n", "b\n"]
    assert len(re.findall("Accepted publickey", log_since(server.log, log_start))) == 2
