"""Connection trouble told honestly, without a network: what an authentication failure, a
refused session or a host-key error says, the host state a probe records for each, and how a
``ProxyJump`` in ``~/.ssh/config`` is resolved into hops the pool opens itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.config import HostConfig
from matui.engine.probe import HostProbe, HostState, failed_probe, ssh_state
from matui.engine.ssh import (
    AuthFailed,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
    SessionLost,
    SessionsRefused,
    SshError,
    SshPool,
)

KEY = Path("/home/op/.ssh/id_build")


def entry(name: str, address: str = "127.0.0.1", **kw: object) -> HostConfig:
    return HostConfig(name, "amd64", address, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# authentication failures say what the server accepts


def auth(methods: list[str] | None, **kw: object) -> AuthFailed:
    return AuthFailed(
        "b1",
        "10.0.0.5",
        2221,
        "builder",
        f"key {KEY}",
        server_methods=methods,
        key_file=KEY,
        **kw,  # type: ignore[arg-type]
    )


def test_auth_failure_is_reachable_and_names_host_user_key_and_fix() -> None:
    message = str(auth(["publickey", "password"]))
    assert "\n" not in message
    assert message.startswith("host 'b1' (10.0.0.5:2221) is reachable, but authentication failed")
    assert "'builder'" in message and str(KEY) in message
    assert "The server accepts: publickey, password." in message
    assert "Fix: add your public key to ~builder/.ssh/authorized_keys on the host" in message
    assert f"ssh-copy-id -i {KEY}.pub -p 2221 builder@10.0.0.5" in message
    assert "unreachable" not in message.lower()


def test_password_only_server_gets_advice_that_fits() -> None:
    message = str(auth(["password", "keyboard-interactive"]))
    assert "The server accepts: password, keyboard-interactive" in message
    assert "takes no keys for this user" in message and "keys only" in message
    # Adding a key alone would not help: the server must accept keys first.
    fix = message.split("Fix: ", 1)[1]
    assert fix.startswith("on the host, allow keys (`PubkeyAuthentication yes` in sshd_config")
    assert "authorized_keys" in fix and "ssh-copy-id" in fix


def test_auth_failure_without_known_methods_or_behind_a_jump() -> None:
    unknown = str(auth(None))
    assert "server accepts" not in unknown and "authorized_keys" in unknown
    # ssh-copy-id cannot go through the jump host: no command that would not work.
    behind = str(auth(["publickey"], via="bastion"))
    assert "ssh-copy-id" not in behind and "authorized_keys" in behind


def test_sessions_refused_names_host_and_maxsessions() -> None:
    message = str(
        SessionsRefused(
            "b1", "10.0.0.5", 22, "start a command", "open failed", connections=8, waited=20.2
        )
    )
    assert "host 'b1' (10.0.0.5:22) is reachable but refused to start a command" in message
    assert "for 20s on each of 8 connection(s) (open failed)" in message
    assert "MaxSessions" in message and "Fix:" in message


# --------------------------------------------------------------------------------------------
# the probe's state comes from the error's kind


def test_each_ssh_error_gives_its_own_state(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    cases: list[tuple[SshError, HostState, bool]] = [
        (HostUnreachable("h", "a", 22, "Connection refused"), HostState.UNREACHABLE, False),
        (SessionLost("h", "a", 22, "lost"), HostState.UNREACHABLE, False),
        (auth(["password"]), HostState.AUTH_FAILED, True),
        (
            HostKeyUnknown("h", "a", 22, "ssh-ed25519", "SHA256:x", known, "a ssh-ed25519 AAA"),
            HostState.HOST_KEY_UNKNOWN,
            False,
        ),
        (
            HostKeyChanged("h", "a", 22, "ssh-ed25519", ["SHA256:old"], "SHA256:new", known),
            HostState.HOST_KEY_CHANGED,
            False,
        ),
        (
            SessionsRefused("h", "a", 22, "start", "open failed", connections=8, waited=20),
            HostState.SESSIONS_REFUSED,
            True,
        ),
        (SshError("h", "identity /k cannot be read"), HostState.SSH_ERROR, False),
    ]
    host = entry("h")
    for error, state, reachable in cases:
        assert ssh_state(error) is state
        probe = failed_probe(host, ssh_state(error), str(error))
        assert probe.state is state, error
        assert probe.reachable is reachable, error
        assert not probe.usable
        assert probe.error == str(error)  # whole, never cut
        # Through a run record and back.
        again = HostProbe.from_json(probe.to_json())
        assert again.state is state and again.to_json()["state"] == str(state)


def test_changed_key_probe_keeps_both_fingerprints_and_the_command(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    error = HostKeyChanged("h", "a", 2221, "ssh-ed25519", ["SHA256:old"], "SHA256:new", known)
    probe = failed_probe(entry("h"), ssh_state(error), str(error))
    assert probe.error is not None
    assert "SHA256:old" in probe.error and "SHA256:new" in probe.error
    assert error.remove_command in probe.error
    assert probe.state.label == "KEY CHANGED"


def test_older_records_and_probes_that_ran_keep_their_state() -> None:
    # A record written before `failure` existed: unreachable stays unreachable.
    old = HostProbe.from_json({"name": "h", "arch": "amd64", "reachable": False, "error": "x"})
    assert old.state is HostState.UNREACHABLE
    assert HostProbe("h", "amd64", reachable=True).state is HostState.OK
    broken = HostProbe("h", "amd64", reachable=True, error="docker buildx plugin missing")
    assert broken.state is HostState.BROKEN
    newer = HostProbe("h", "amd64", reachable=False, error="x", failure="from-the-future")
    assert newer.state is HostState.UNREACHABLE


# --------------------------------------------------------------------------------------------
# ProxyJump in ~/.ssh/config is followed, hop by hop


def ssh_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config"
    path.write_text(text)
    return path


def test_proxyjump_becomes_a_jump_the_pool_opens(tmp_path: Path) -> None:
    config = ssh_config(
        tmp_path,
        "Host build1\n  HostName 10.0.0.5\n  Port 2221\n  ProxyJump ops@gate.example:2200\n",
    )
    kh = tmp_path / "kh"
    host = entry("b1", "build1", user="builder", identity=KEY, known_hosts=kh)
    pool = SshPool([host], user_ssh_config=config)
    target = pool._resolve(host)
    assert (target.address, target.port, target.user) == ("10.0.0.5", 2221, "builder")
    assert target.ignored_proxy is None
    jump = target.jump
    assert jump is not None and jump.jump is None
    assert (jump.address, jump.port, jump.user) == ("gate.example", 2200, "ops")
    # Same host-key rules: the hop is checked against the host entry's known_hosts.
    assert jump.known_hosts == kh
    # No IdentityFile of its own: it logs in with the host entry's identity.
    assert jump.identities == (KEY,)


def test_proxyjump_hop_uses_its_own_alias(tmp_path: Path) -> None:
    hop_key = tmp_path / "id_gate"
    hop_key.write_text("not read here")
    config = ssh_config(
        tmp_path,
        "Host build1\n  HostName 10.0.0.5\n  ProxyJump gate\n"
        f"Host gate\n  HostName 192.0.2.1\n  Port 2200\n  User gateuser\n"
        f"  IdentityFile {hop_key}\n",
    )
    host = entry("b1", "build1", identity=KEY)
    jump = SshPool([host], user_ssh_config=config)._resolve(host).jump
    assert jump is not None
    assert (jump.address, jump.port, jump.user) == ("192.0.2.1", 2200, "gateuser")
    assert jump.identities == (hop_key,)


def test_multi_hop_proxyjump_chains_in_order(tmp_path: Path) -> None:
    config = ssh_config(
        tmp_path, "Host build1\n  HostName 10.0.0.5\n  ProxyJump a@outer:2201,b@inner:2202\n"
    )
    host = entry("b1", "build1")
    target = SshPool([host], user_ssh_config=config)._resolve(host)
    inner = target.jump
    assert inner is not None and (inner.address, inner.port, inner.user) == ("inner", 2202, "b")
    outer = inner.jump
    assert outer is not None and (outer.address, outer.port, outer.user) == ("outer", 2201, "a")
    assert outer.jump is None


def test_a_hosts_own_jump_wins_over_proxyjump(tmp_path: Path) -> None:
    config = ssh_config(tmp_path, "Host build1\n  ProxyJump elsewhere\n")
    host = entry("b1", "build1", jump="me@gate:2200")
    jump = SshPool([host], user_ssh_config=config)._resolve(host).jump
    assert jump is not None and jump.address == "gate"


def test_bad_proxyjump_and_loops_are_clear_errors(tmp_path: Path) -> None:
    config = ssh_config(
        tmp_path,
        "Host bad\n  ProxyJump ok@gate,user@\n"
        "Host loop1\n  ProxyJump loop2\nHost loop2\n  ProxyJump loop1\n",
    )
    pool = SshPool([], user_ssh_config=config)
    with pytest.raises(SshError) as err:
        pool._resolve(entry("b1", "bad"))
    message = str(err.value)
    assert "host 'b1'" in message and "ProxyJump ok@gate,user@" in message
    assert "'user@'" in message and "Fix: correct that ProxyJump" in message
    with pytest.raises(SshError, match="loop"):
        pool._resolve(entry("b2", "loop1"))


def test_proxycommand_is_still_not_followed(tmp_path: Path) -> None:
    config = ssh_config(tmp_path, "Host build1\n  ProxyCommand nc %h %p\n")
    target = SshPool([], user_ssh_config=config)._resolve(entry("b1", "build1"))
    assert target.jump is None and target.ignored_proxy == "ProxyCommand"
