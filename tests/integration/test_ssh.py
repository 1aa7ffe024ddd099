"""SshPool against the real rig: loopback sshd hosts amd64 (2221), emu (2222) and a bastion (2220).

Proofs come from outside matui where possible: ``ssh-keygen -lf`` for fingerprints, the sshd logs
for logins and sessions, ``ss`` for which process carries a forwarded connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest

from matui.engine.config import HostConfig
from matui.engine.shell import RemoteScript
from matui.engine.ssh import (
    AuthFailed,
    CommandTimedOut,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
    SshPool,
    append_known_host,
)
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd, private_sshd

pytestmark = pytest.mark.rig


# --------------------------------------------------------------------------------------------
# helpers


def sh(script: str) -> RemoteScript:
    return RemoteScript(script)


def host_key_fingerprint(rig: Rig, name: str) -> str:
    """The fingerprint as OpenSSH itself prints it."""
    pub = rig.sshd_dir(name) / "ssh_host_ed25519_key.pub"
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[1]


def known_hosts_entry(rig: Rig, name: str, port: int) -> str:
    key_type, data = (rig.sshd_dir(name) / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"[127.0.0.1]:{port} {key_type} {data}\n"


class SshdLog:
    """The part of one sshd's log written since this object was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size

    @classmethod
    def of_rig(cls, rig: Rig, name: str) -> SshdLog:
        """A shared rig sshd's log: other tests' connections may be in it too."""
        return cls(rig.sshd_dir(name) / "sshd.log")

    def new(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.start)
            return f.read().decode("utf-8", "replace")

    async def wait_for(self, pattern: str, timeout: float = 5) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.new())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} not in the new part of {self.path}:\n{self.new()}"
                )
            await asyncio.sleep(0.05)

    async def closed(self, port: int, timeout: float = 5) -> str:
        """Wait until sshd logs the end of the connection from ``port`` (before or after login);
        return the new text then, which holds every line about that connection."""
        await self.wait_for(
            r"(?:Disconnected from|Connection closed by)(?: user \S+| authenticating user \S+)?"
            rf" 127\.0\.0\.1 port {port}\b",
            timeout,
        )
        return self.new()

    async def all_closed(self, timeout: float = 5) -> str:
        """Wait until every connection in the new text has ended; return the text then."""
        ports = re.findall(r"Connection from 127\.0\.0\.1 port (\d+) ", self.new())
        assert ports, f"no connection in the new part of {self.path}"
        for port in ports:
            await self.closed(int(port), timeout)
        return self.new()


def local_port(conn: asyncssh.SSHClientConnection) -> int:
    return int(conn.get_extra_info("sockname")[1])


def socket_pids(filter_expr: str) -> list[int]:
    """PIDs of processes holding established TCP sockets that match an ``ss`` filter."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", filter_expr],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", out)})


def ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        chain.append(pid)
    return chain


@pytest.fixture
def canary_dir() -> Iterator[Path]:
    """A directory the rig's build user can write to (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="matui-canary-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


@pytest.fixture
def hosts(rig: Rig) -> dict[str, HostConfig]:
    def entry(name: str, port: int, jump: str | None = None) -> HostConfig:
        return HostConfig(
            name, "amd64", "127.0.0.1", port=port, user=rig.user, identity=rig.key,
            known_hosts=rig.known_hosts, jump=jump,
        )  # fmt: skip

    return {
        "amd64": entry("amd64", rig.port_amd64),
        "bastion": entry("bastion", rig.port_bastion),
        "emu": entry("emu", rig.port_emu, jump="bastion"),
    }


@pytest.fixture
async def pool(hosts: dict[str, HostConfig], tmp_path: Path) -> AsyncIterator[SshPool]:
    async with make_pool(hosts.values(), tmp_path) as p:
        yield p


def make_pool(
    hosts: Iterable[HostConfig],
    tmp_path: Path,
    *,
    user_ssh_config: Path | None = None,
    connect_timeout: float = 5,
    login_timeout: float = 5,
    keepalive_interval: float = 5,
    keepalive_count_max: int = 3,
) -> SshPool:
    """A pool that reads no ~/.ssh files of whoever runs the tests."""
    return SshPool(
        list(hosts),
        user_ssh_config=user_ssh_config,
        default_known_hosts=tmp_path / "default_known_hosts",
        connect_timeout=connect_timeout,
        login_timeout=login_timeout,
        keepalive_interval=keepalive_interval,
        keepalive_count_max=keepalive_count_max,
    )


# --------------------------------------------------------------------------------------------
# one connection per host


async def test_run_on_amd64_reuses_one_connection(
    rig: Rig, pool: SshPool, hosts: dict[str, HostConfig]
) -> None:
    log = SshdLog.of_rig(rig, "amd64")
    amd64 = hosts["amd64"]
    conns = []
    for _ in range(3):
        result = await pool.run(amd64, sh("uname -m; id -un"))
        assert result.ok, result
        assert result.out_text().split() == ["x86_64", rig.user]
        conns.append(await pool.connect(amd64))
    assert conns[0] is conns[1] is conns[2]
    port = local_port(conns[0])
    conns[0].close()
    text = await log.closed(port)  # every line about this connection is logged by then
    from_us = rf"for {rig.user} from 127\.0\.0\.1 port {port} "
    assert len(re.findall(rf"Starting session: command {from_us}", text)) == 3
    assert len(re.findall(rf"Accepted publickey {from_us}", text)) == 1


async def test_concurrent_callers_share_one_connect(
    rig: Rig, pool: SshPool, hosts: dict[str, HostConfig]
) -> None:
    log = SshdLog.of_rig(rig, "amd64")
    results = await asyncio.gather(*(pool.run(hosts["amd64"], sh("echo $$")) for _ in range(6)))
    assert all(r.ok for r in results)
    assert len({r.out_text() for r in results}) == 6  # six separate remote shells ...
    conn = await pool.connect(hosts["amd64"])
    port = local_port(conn)
    conn.close()
    text = await log.closed(port)
    # ... over one login: all six sessions came over the same TCP connection.
    from_us = rf"for {rig.user} from 127\.0\.0\.1 port {port} "
    assert len(re.findall(rf"Starting session: command {from_us}", text)) == 6
    assert len(re.findall(rf"Accepted publickey {from_us}", text)) == 1


async def test_exit_status_input_and_stderr(pool: SshPool, hosts: dict[str, HostConfig]) -> None:
    failed = await pool.run(hosts["amd64"], sh("echo out; echo err >&2; exit 3"))
    assert failed.exit_status == 3 and not failed.ok and not failed.lost
    assert (failed.stdout, failed.stderr) == (b"out\n", b"err\n")
    echoed = await pool.run(hosts["amd64"], sh("cat; printf end"), input=b"\x00abc\n")
    assert echoed.ok and echoed.stdout == b"\x00abc\nend"
    # Without input, stdin is at EOF at once: a reader does not hang.
    assert (await pool.run(hosts["amd64"], sh("cat"), timeout=10)).ok


async def test_closed_connection_is_replaced(pool: SshPool, hosts: dict[str, HostConfig]) -> None:
    first = await pool.connect(hosts["amd64"])
    first.close()
    await first.wait_closed()
    assert (await pool.run(hosts["amd64"], sh("true"))).ok
    second = await pool.connect(hosts["amd64"])
    assert second is not first and not second.is_closed()


async def test_timeout_raises_with_partial_output(
    pool: SshPool, hosts: dict[str, HostConfig]
) -> None:
    with pytest.raises(CommandTimedOut) as err:
        await pool.run(hosts["amd64"], sh("echo started; exec sleep 5"), timeout=0.5)
    assert err.value.stdout == b"started\n"
    assert "may still be running" in str(err.value)
    assert (await pool.run(hosts["amd64"], sh("echo next"))).out_text() == "next\n"


async def test_sftp(pool: SshPool, hosts: dict[str, HostConfig], rig: Rig) -> None:
    sftp = await pool.sftp(hosts["amd64"])
    try:
        assert await sftp.exists(str(rig.known_hosts))
    finally:
        sftp.exit()


# --------------------------------------------------------------------------------------------
# host keys


async def test_unknown_host_key_is_refused_and_nothing_runs(
    rig: Rig, sshd: Sshd, hosts: dict[str, HostConfig], tmp_path: Path, canary_dir: Path
) -> None:
    """On a private sshd (the amd64 host's key, a port of its own), whose log holds only this
    test's connections."""
    touch = sh(f"touch {shlex.quote(str(canary_dir / 'ran'))}")
    target = replace(hosts["amd64"], port=sshd.port)
    # Positive control: with a known_hosts that knows it, the same command does create the file.
    trusted = replace(target, known_hosts=sshd.known_hosts)
    async with make_pool([trusted], tmp_path) as good:
        assert (await good.run(trusted, sh(f"touch {canary_dir / 'control'}"))).ok
    assert (canary_dir / "control").exists()

    for label, known in [
        ("missing file", tmp_path / "absent"),
        ("other hosts only", tmp_path / "kh"),
    ]:
        (tmp_path / "kh").write_text(known_hosts_entry(rig, "bastion", rig.port_bastion))
        amd64 = replace(target, known_hosts=known)
        log = SshdLog(sshd.log)
        async with make_pool([amd64], tmp_path) as pool:
            with pytest.raises(HostKeyUnknown) as err:
                await pool.run(amd64, touch)
        e = err.value
        assert e.host == "amd64", label
        assert e.fingerprint == host_key_fingerprint(rig, "amd64"), label
        assert e.key_type == "ssh-ed25519"
        assert f"-p {sshd.port}" in e.trust_command and str(known) in e.trust_command
        assert e.fingerprint in str(e) and str(known) in str(e)
        assert e.known_hosts_line == known_hosts_entry(rig, "amd64", sshd.port).strip()
        assert not (canary_dir / "ran").exists(), label
        # Every connection it made has ended, and none of them ever logged in.
        text = await log.all_closed()
        assert "Accepted publickey" not in text and "Starting session" not in text, label


async def test_trusting_an_unknown_key(
    rig: Rig, hosts: dict[str, HostConfig], tmp_path: Path
) -> None:
    known = tmp_path / "sub" / "known_hosts"
    amd64 = replace(hosts["amd64"], known_hosts=known)
    async with make_pool([amd64], tmp_path) as pool:
        with pytest.raises(HostKeyUnknown) as err:
            await pool.connect(amd64)
        # The operator's way: the suggested command, which prints the fingerprint to compare.
        done = subprocess.run(["sh", "-c", err.value.trust_command], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert err.value.fingerprint in done.stdout
        assert (await pool.run(amd64, sh("echo trusted"))).out_text() == "trusted\n"
    # The UI's way: append the exact line that was shown.
    known.unlink()
    append_known_host(known, err.value.known_hosts_line)
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    async with make_pool([amd64], tmp_path) as pool:
        assert (await pool.run(amd64, sh("echo trusted"))).ok


async def test_changed_host_key_is_a_hard_stop(
    rig: Rig, hosts: dict[str, HostConfig], tmp_path: Path, canary_dir: Path
) -> None:
    known = tmp_path / "known_hosts"
    # [127.0.0.1]:2221 mapped to the bastion's key: what a MITM or a reinstall looks like.
    known.write_text(
        known_hosts_entry(rig, "bastion", rig.port_bastion).replace(
            f":{rig.port_bastion} ", f":{rig.port_amd64} "
        )
    )
    amd64 = replace(hosts["amd64"], known_hosts=known)
    async with make_pool([amd64], tmp_path) as pool:
        with pytest.raises(HostKeyChanged) as err:
            await pool.run(amd64, sh(f"touch {canary_dir / 'ran'}"))
    e = err.value
    assert e.expected == [host_key_fingerprint(rig, "bastion")]
    assert e.actual == host_key_fingerprint(rig, "amd64")
    message = str(e)
    assert e.expected[0] in message and e.actual in message
    assert "man-in-the-middle" in message
    assert f"ssh-keygen -R '[127.0.0.1]:2221' -f {known}" in message
    assert not (canary_dir / "ran").exists()


async def test_user_ssh_config_cannot_turn_off_host_key_checks(rig: Rig, tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        "Host rig-amd64\n"
        "  HostName 127.0.0.1\n"
        f"  Port {rig.port_amd64}\n"
        f"  User {rig.user}\n"
        f"  IdentityFile {rig.key}\n"
        "  UserKnownHostsFile none\n"
        "  StrictHostKeyChecking no\n"
    )
    alias = HostConfig("alias", "amd64", "rig-amd64", known_hosts=tmp_path / "empty")
    async with make_pool([alias], tmp_path, user_ssh_config=ssh_config) as pool:
        with pytest.raises(HostKeyUnknown) as err:
            await pool.connect(alias)
        assert err.value.fingerprint == host_key_fingerprint(rig, "amd64")
        assert err.value.port == rig.port_amd64  # the alias was resolved
    # With a known_hosts that has the key, the alias alone (HostName/Port/User/IdentityFile) works.
    trusted = replace(alias, known_hosts=rig.known_hosts)
    async with make_pool([trusted], tmp_path, user_ssh_config=ssh_config) as pool:
        assert (await pool.run(trusted, sh("id -un"))).out_text().strip() == rig.user


# --------------------------------------------------------------------------------------------
# jump hosts


async def _assert_forwarded_by_bastion(
    rig: Rig, bastion_log: SshdLog, emu_log: SshdLog, pool: SshPool, bastion: HostConfig
) -> None:
    """The emu sshd's client is a socket held by the bastion sshd serving our bastion login."""
    our_port = local_port(await pool.connect(bastion))
    child = await bastion_log.wait_for(
        rf"Accepted publickey for {rig.user} from 127\.0\.0\.1 port {our_port} .*\n"
        r"User child is on pid (\d+)"
    )
    login = await emu_log.wait_for(
        rf"Accepted publickey for {rig.user} from 127\.0\.0\.1 port (\d+) "
    )
    forward_port = int(login.group(1))
    assert forward_port != our_port
    pids = socket_pids(f"( sport = :{forward_port} and dport = :{rig.port_emu} )")
    assert pids, "no socket from the bastion to emu"
    bastion_master = int((rig.sshd_dir("bastion") / "sshd.pid").read_text())
    for pid in pids:
        assert pid == int(child.group(1)) or bastion_master in ancestors(pid)


@pytest.mark.parametrize("jump_form", ["entry name", "user@host:port"])
async def test_jump_host(
    rig: Rig, hosts: dict[str, HostConfig], tmp_path: Path, jump_form: str
) -> None:
    bastion_log, emu_log = SshdLog.of_rig(rig, "bastion"), SshdLog.of_rig(rig, "emu")
    bastion = hosts["bastion"]
    jump = "bastion" if jump_form == "entry name" else f"{rig.user}@127.0.0.1:{rig.port_bastion}"
    emu = replace(hosts["emu"], jump=jump)
    # amd64 reached through the same bastion too: both share one bastion connection.
    amd64 = replace(hosts["amd64"], name="amd64-via-bastion", jump=jump)
    pool_hosts = [emu, amd64] + ([bastion] if jump_form == "entry name" else [])
    async with make_pool(pool_hosts, tmp_path) as pool:
        assert (await pool.run(emu, sh("echo via; uname -m"))).out_text() == "via\nx86_64\n"
        assert (await pool.run(amd64, sh("echo also"))).ok
        if jump_form == "user@host:port":
            bastion = replace(bastion, name=jump)  # same endpoint and files: same cached connection
        await _assert_forwarded_by_bastion(rig, bastion_log, emu_log, pool, bastion)
        logins = re.findall(
            r"Accepted publickey for \S+ from 127\.0\.0\.1 port (\d+) ", bastion_log.new()
        )
        assert logins.count(str(local_port(await pool.connect(bastion)))) == 1
        assert local_port(await pool.connect(emu)) == local_port(await pool.connect(bastion))


async def test_unknown_bastion_key_is_refused(
    rig: Rig, sshd: Sshd, hosts: dict[str, HostConfig], tmp_path: Path
) -> None:
    """A private bastion and a private host behind it (both with the amd64 host's key, each on
    a port of its own), so their logs hold only this test's connections."""
    bastion_sshd = private_sshd(rig, tmp_path / "bastion")
    try:
        known = tmp_path / "known_hosts"  # knows the host behind, not the bastion
        known.write_text(known_hosts_entry(rig, "amd64", sshd.port))
        bastion_log, behind_log = SshdLog(bastion_sshd.log), SshdLog(sshd.log)
        for jump in ["bastion", f"{rig.user}@127.0.0.1:{bastion_sshd.port}"]:
            bastion = replace(hosts["bastion"], port=bastion_sshd.port, known_hosts=known)
            behind = replace(hosts["emu"], port=sshd.port, known_hosts=known, jump=jump)
            async with make_pool([behind, bastion], tmp_path) as pool:
                with pytest.raises(HostKeyUnknown) as err:
                    await pool.run(behind, sh("true"))
            assert err.value.host == jump
            assert err.value.fingerprint == host_key_fingerprint(rig, "amd64")
            assert f"-p {bastion_sshd.port}" in err.value.trust_command
        # Every bastion connection has ended without a login, so nothing was forwarded; and
        # nothing went to the host behind it directly.
        assert "Accepted publickey" not in await bastion_log.all_closed()
        assert "Connection from" not in behind_log.new()
    finally:
        bastion_sshd.stop()


async def test_unknown_key_behind_trusted_bastion(
    rig: Rig, hosts: dict[str, HostConfig], tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"  # knows the bastion, not emu
    known.write_text(known_hosts_entry(rig, "bastion", rig.port_bastion))
    emu = replace(hosts["emu"], known_hosts=known, jump=f"{rig.user}@127.0.0.1:{rig.port_bastion}")
    async with make_pool([emu], tmp_path) as pool:
        with pytest.raises(HostKeyUnknown) as err:
            await pool.run(emu, sh("true"))
        e = err.value
        assert e.host == "emu" and e.fingerprint == host_key_fingerprint(rig, "emu")
        # ssh-keyscan cannot go through a bastion: the exact line is offered instead.
        subprocess.run(["sh", "-c", e.trust_command], check=True)
        assert (await pool.run(emu, sh("echo ok"))).ok


# --------------------------------------------------------------------------------------------
# bytes, lost connections, failures


async def test_non_utf8_output_keeps_the_connection(
    pool: SshPool, hosts: dict[str, HostConfig]
) -> None:
    amd64 = hosts["amd64"]
    conn = await pool.connect(amd64)
    result = await pool.run(
        amd64, sh(r"printf '\377\376 bad \303\050 end\n'; printf '\377err \340\200\n' >&2")
    )
    assert result.ok
    assert result.stdout == b"\xff\xfe bad \xc3\x28 end\n"
    assert result.stderr == b"\xfferr \xe0\x80\n"
    assert "\ufffd" in result.out_text() and "\ufffd" in result.err_text()
    after = await pool.run(amd64, sh("echo still here"))
    assert after.out_text() == "still here\n"
    assert await pool.connect(amd64) is conn and not conn.is_closed()


async def test_lost_connection_is_not_success(
    rig: Rig, pool: SshPool, hosts: dict[str, HostConfig]
) -> None:
    amd64 = hosts["amd64"]
    log = SshdLog.of_rig(rig, "amd64")
    conn = await pool.connect(amd64)
    port = local_port(conn)
    running = asyncio.create_task(pool.run(amd64, sh("echo started; exec sleep 30")))
    await log.wait_for(rf"Starting session: command for {rig.user} from 127\.0\.0\.1 port {port} ")
    # Only the sshd processes serving this one connection.
    pids = socket_pids(f"( sport = :{rig.port_amd64} and dport = :{port} )")
    assert pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    result = await asyncio.wait_for(running, timeout=10)
    assert result.exit_status is None and result.lost and not result.ok
    # The dead connection is dropped; the next command gets a new one.
    assert (await pool.run(amd64, sh("echo again"))).out_text() == "again\n"
    assert await pool.connect(amd64) is not conn


async def test_unreachable_port(hosts: dict[str, HostConfig], tmp_path: Path) -> None:
    dead = replace(hosts["amd64"], name="dead", port=1)
    async with make_pool([dead], tmp_path) as pool:
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as err:
            await pool.run(dead, sh("true"))
    assert time.monotonic() - started < 3
    assert err.value.host == "dead"
    assert "127.0.0.1:1" in str(err.value) and "refused" in str(err.value).lower()


async def test_unresolvable_name(hosts: dict[str, HostConfig], tmp_path: Path) -> None:
    nowhere = replace(hosts["amd64"], name="nowhere", address="nowhere.invalid", port=None)
    async with make_pool([nowhere], tmp_path) as pool:
        with pytest.raises(HostUnreachable) as err:
            await pool.connect(nowhere)
    assert "nowhere.invalid:22" in str(err.value) and "resolve" in str(err.value)


async def test_silent_server_times_out(hosts: dict[str, HostConfig], tmp_path: Path) -> None:
    """A port that accepts TCP but never speaks SSH: the login timeout ends the wait."""
    stalls: list[asyncio.StreamWriter] = []

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        stalls.append(w)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = replace(hosts["amd64"], name="silent", port=port)
    try:
        async with make_pool([silent], tmp_path, login_timeout=1, connect_timeout=3) as pool:
            started = time.monotonic()
            with pytest.raises(HostUnreachable) as err:
                await pool.connect(silent)
        assert time.monotonic() - started < 2.5
        assert f"127.0.0.1:{port}" in str(err.value) and "timeout" in str(err.value)
    finally:
        for w in stalls:
            w.close()
        server.close()
        await server.wait_closed()


async def test_wrong_user_or_key_is_auth_failed(
    rig: Rig, hosts: dict[str, HostConfig], tmp_path: Path
) -> None:
    stranger = replace(hosts["amd64"], name="stranger", user="nosuchuser")
    other_key = tmp_path / "id_other"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    wrong_key = replace(hosts["amd64"], name="wrong-key", identity=other_key)
    async with make_pool([stranger, wrong_key], tmp_path) as pool:
        with pytest.raises(AuthFailed) as err:
            await pool.run(stranger, sh("true"))
        assert "'nosuchuser'" in str(err.value) and str(rig.key) in str(err.value)
        with pytest.raises(AuthFailed) as err:
            await pool.run(wrong_key, sh("true"))
        assert str(other_key) in str(err.value) and "authorized_keys" in str(err.value)
        # No key material in the message.
        assert other_key.read_text().splitlines()[1] not in str(err.value)


async def test_cancelled_run_leaves_the_connection_usable(
    pool: SshPool, hosts: dict[str, HostConfig]
) -> None:
    # The remote `sleep` lives on (closing a channel without a PTY does not stop it, and sshd
    # keeps the session until it exits): callers kill remote work with a command of their own.
    amd64 = hosts["amd64"]
    conn = await pool.connect(amd64)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pool.run(amd64, sh("exec sleep 3")), timeout=0.3)
    assert (await pool.run(amd64, sh("echo fine"))).out_text() == "fine\n"
    assert await pool.connect(amd64) is conn


async def test_blackholed_path_is_detected_by_keepalive(
    rig: Rig, hosts: dict[str, HostConfig], tmp_path: Path
) -> None:
    """A relay to amd64 that silently stops passing bytes, like a dead route: no FIN, no RST."""
    blackhole = asyncio.Event()
    pumps: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            if not blackhole.is_set():
                dst.write(data)
                await dst.drain()

    async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", rig.port_amd64)
        writers.extend([w, uw])
        pumps.extend([asyncio.create_task(pump(r, uw)), asyncio.create_task(pump(ur, w))])

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_entry(rig, "amd64", rig.port_amd64).replace(
        f":{rig.port_amd64} ", f":{port} "
    ))  # fmt: skip
    relayed = replace(hosts["amd64"], name="relayed", port=port, known_hosts=known)
    try:
        async with make_pool(
            [relayed], tmp_path, keepalive_interval=0.5, keepalive_count_max=2
        ) as pool:
            assert (await pool.run(relayed, sh("echo up"))).ok
            running = asyncio.create_task(pool.run(relayed, sh("exec sleep 30")))
            await asyncio.sleep(0.3)
            blackhole.set()
            started = time.monotonic()
            result = await asyncio.wait_for(running, timeout=10)
            assert result.exit_status is None and not result.ok
            assert time.monotonic() - started < 4
    finally:
        for task in pumps:
            task.cancel()
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


async def test_bastion_cannot_reach_target(
    rig: Rig, hosts: dict[str, HostConfig], tmp_path: Path
) -> None:
    behind = replace(hosts["emu"], name="behind", port=1)
    async with make_pool([behind, hosts["bastion"]], tmp_path) as pool:
        with pytest.raises(HostUnreachable) as err:
            await pool.run(behind, sh("true"))
        assert err.value.host == "behind" and err.value.via == "bastion"
        assert "127.0.0.1:1 through jump host 'bastion'" in str(err.value)
        # The bastion connection itself is fine and stays cached.
        assert (await pool.run(hosts["bastion"], sh("echo ok"))).ok
