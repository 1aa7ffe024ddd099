"""The pure parts of matui.engine.ssh: jump specs, fingerprints, trust commands, resolving."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import asyncssh
import pytest

from matui.engine.config import HostConfig
from matui.engine.ssh import (
    AuthFailed,
    CommandResult,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
    JumpSpec,
    SessionLost,
    SshError,
    SshPool,
    append_known_host,
    fingerprint,
    known_hosts_line,
    known_hosts_pattern,
    parse_jump_spec,
    trust_command,
)

# --------------------------------------------------------------------------------------------
# jump specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bastion", JumpSpec("bastion")),
        ("bastion.example.com:2220", JumpSpec("bastion.example.com", port=2220)),
        ("matuibuild@127.0.0.1:2220", JumpSpec("127.0.0.1", "matuibuild", 2220)),
        ("me@bastion", JumpSpec("bastion", "me")),
        ("[::1]:2220", JumpSpec("::1", port=2220)),
        ("me@[2001:db8::1]", JumpSpec("2001:db8::1", "me")),
        ("::1", JumpSpec("::1")),
        ("ssh://me@bastion:22", JumpSpec("bastion", "me", 22)),
        ("a@b@bastion", JumpSpec("bastion", "a@b")),  # the last @ splits, as in OpenSSH
    ],
)
def test_parse_jump_spec(spec: str, expected: JumpSpec) -> None:
    assert parse_jump_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "@bastion",
        "me@",
        "bastion:",
        "bastion:0",
        "bastion:65536",
        "bastion:22x",
        "bastion:\uff12\uff12",  # fullwidth digits are not a port
        "[::1",
        "[::1]x",
        "[::1]:",
        "a,b",
        "bas tion",
        "bastion\n",
        "bastion\x1b[2J",
    ],
)
def test_parse_jump_spec_refuses(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_jump_spec(spec)


# --------------------------------------------------------------------------------------------
# keys, known_hosts lines, fingerprints


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[asyncssh.SSHKey, Path]:
    key = asyncssh.generate_private_key("ssh-ed25519", comment="host-comment")
    pub = tmp_path_factory.mktemp("key") / "ssh_host_ed25519_key.pub"
    key.write_public_key(str(pub))
    return key.convert_to_public(), pub


def test_fingerprint_matches_ssh_keygen(host_key: tuple[asyncssh.SSHKey, Path]) -> None:
    key, pub = host_key
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert fingerprint(key) == printed
    assert printed.startswith("SHA256:")


def test_known_hosts_pattern() -> None:
    assert known_hosts_pattern("build1", 22) == "build1"
    assert known_hosts_pattern("127.0.0.1", 2221) == "[127.0.0.1]:2221"
    assert known_hosts_pattern("::1", 2221) == "[::1]:2221"


def test_known_hosts_line_has_no_comment_and_round_trips(
    host_key: tuple[asyncssh.SSHKey, Path],
) -> None:
    key, pub = host_key
    line = known_hosts_line("127.0.0.1", 2221, key)
    algorithm, data = pub.read_text().split()[:2]
    assert line == f"[127.0.0.1]:2221 {algorithm} {data}"
    assert "host-comment" not in line
    trusted = asyncssh.import_known_hosts(line).match("127.0.0.1", "", 2221)[0]
    assert trusted == [key]


def test_trust_command_direct(tmp_path: Path) -> None:
    known = tmp_path / "known hosts"  # a space: must be quoted
    command = trust_command("127.0.0.1", 2221, "ssh-ed25519", "unused", known)
    words = shlex.split(command)
    assert words[:7] == ["ssh-keyscan", "-p", "2221", "-t", "ed25519", "127.0.0.1", ">>"]
    assert words[7] == str(known)
    assert words[8:] == ["&&", "ssh-keygen", "-l", "-F", "[127.0.0.1]:2221", "-f", str(known)]


def test_trust_command_behind_jump_appends_the_exact_line(tmp_path: Path) -> None:
    known = tmp_path / "missing" / "known_hosts"
    line = "[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nz"
    command = trust_command("127.0.0.1", 2222, "ssh-ed25519", line, known, via="bastion")
    assert "ssh-keyscan" not in command  # it cannot go through a bastion
    subprocess.run(["sh", "-c", command], check=True)
    assert known.read_text() == line + "\n"


@pytest.mark.parametrize(
    ("key_type", "short"),
    [("ssh-ed25519", "ed25519"), ("ecdsa-sha2-nistp256", "ecdsa"), ("ssh-rsa", "rsa")],
)
def test_trust_command_names_key_type(key_type: str, short: str, tmp_path: Path) -> None:
    assert f"-t {short} " in trust_command("h", 22, key_type, "x", tmp_path / "k")


def test_append_known_host(tmp_path: Path) -> None:
    known = tmp_path / "new" / "known_hosts"
    append_known_host(known, "[h]:2 ssh-ed25519 AAAA")
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    known.write_text(known.read_text() + "h3 ssh-ed25519 CCCC")  # no final newline
    append_known_host(known, "h4 ssh-ed25519 DDDD")
    assert known.read_text().splitlines() == [
        "[h]:2 ssh-ed25519 AAAA",
        "h3 ssh-ed25519 CCCC",
        "h4 ssh-ed25519 DDDD",
    ]
    with pytest.raises(ValueError):
        append_known_host(known, "h5 ssh-ed25519 EEEE\nevil * ssh-ed25519 FFFF")


# --------------------------------------------------------------------------------------------
# results and error messages


def test_command_result() -> None:
    assert CommandResult(0, b"", b"").ok
    assert not CommandResult(1, b"", b"").ok
    lost = CommandResult(None, b"", b"")
    assert not lost.ok and lost.lost
    bad = CommandResult(0, b"\xff ok", b"\xc3\x28")
    assert bad.out_text() == "\ufffd ok" and bad.err_text() == "\ufffd("


def test_error_messages_name_host_address_and_fix(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    unreachable = HostUnreachable("b1", "10.0.0.5", 2221, "Connection refused", via="bastion")
    assert isinstance(unreachable, SshError) and unreachable.host == "b1"
    assert "10.0.0.5:2221" in str(unreachable) and "'bastion'" in str(unreachable)
    assert "Fix:" in str(unreachable)

    auth = AuthFailed("b1", "10.0.0.5", 22, "builder", "key /k/id_ed25519")
    assert "'builder'" in str(auth) and "/k/id_ed25519" in str(auth)
    assert "authorized_keys" in str(auth)

    unknown = HostKeyUnknown(
        "b1", "10.0.0.5", 2221, "ssh-ed25519", "SHA256:abc", known, "[10.0.0.5]:2221 k v"
    )
    assert "SHA256:abc" in str(unknown) and str(known) in str(unknown)
    assert unknown.trust_command in str(unknown) and "-p 2221" in unknown.trust_command
    assert "ssh_host_ed25519_key.pub" in str(unknown)

    changed = HostKeyChanged(
        "b1", "10.0.0.5", 2221, "ssh-ed25519", ["SHA256:old1", "SHA256:old2"], "SHA256:new", known
    )
    message = str(changed)
    for fp in ("SHA256:old1", "SHA256:old2", "SHA256:new"):
        assert fp in message
    assert "man-in-the-middle" in message
    assert f"ssh-keygen -R '[10.0.0.5]:2221' -f {known}" in message

    lost = SessionLost("b1", "10.0.0.5", 22, "lost")
    assert isinstance(lost, HostUnreachable)  # callers treating unreachable as lost see it


# --------------------------------------------------------------------------------------------
# resolving host entries (no network)


def entry(name: str, address: str = "127.0.0.1", **kw: object) -> HostConfig:
    return HostConfig(name, "amd64", address, **kw)  # type: ignore[arg-type]


def test_resolve_defaults_and_jump_by_name(tmp_path: Path) -> None:
    default_kh = tmp_path / "kh"
    bastion = entry("bastion", port=2220, user="jumper", known_hosts=tmp_path / "bastion_kh")
    b1 = entry("b1", "10.0.0.5", user="builder", jump="bastion")
    pool = SshPool([bastion, b1], user_ssh_config=None, default_known_hosts=default_kh)
    target = pool._resolve(b1)
    assert (target.address, target.port, target.user) == ("10.0.0.5", 22, "builder")
    assert target.known_hosts == default_kh and target.identities == ()
    assert target.jump is not None
    assert (target.jump.port, target.jump.user) == (2220, "jumper")
    assert target.jump.known_hosts == tmp_path / "bastion_kh"  # the bastion entry's own files
    assert target.jump == pool._resolve(bastion)  # same cache key: one shared connection


def test_resolve_jump_spec_uses_the_targets_files(tmp_path: Path) -> None:
    key, kh = tmp_path / "id", tmp_path / "kh"
    b1 = entry("b1", user="builder", identity=key, known_hosts=kh, jump="127.0.0.1:2220")
    pool = SshPool([b1], user_ssh_config=None)
    jump = pool._resolve(b1).jump
    assert jump is not None
    assert (jump.address, jump.port, jump.user) == ("127.0.0.1", 2220, "builder")
    assert jump.known_hosts == kh and jump.identities == (key,)


def test_resolve_refuses_jump_loops() -> None:
    a = entry("a", jump="b")
    b = entry("b", jump="a")
    pool = SshPool([a, b], user_ssh_config=None)
    with pytest.raises(SshError, match="loop: a -> b -> a"):
        pool._resolve(a)


def test_resolve_reads_aliases_from_user_ssh_config(tmp_path: Path) -> None:
    key = tmp_path / "id_alias"
    key.write_text("not read here")
    config = tmp_path / "config"
    config.write_text(
        "Host alias1\n  HostName 10.1.1.1\n  Port 2200\n  User aliasuser\n"
        f"  IdentityFile {key}\n  IdentityFile {tmp_path}/missing\n"
        "  ProxyJump someone@elsewhere\n  UserKnownHostsFile none\n"
    )
    pool = SshPool([], user_ssh_config=config, default_known_hosts=tmp_path / "kh")
    target = pool._resolve(entry("a1", "alias1"))
    assert (target.address, target.port, target.user) == ("10.1.1.1", 2200, "aliasuser")
    assert target.identities == (key,)  # missing files dropped: agent and defaults still apply
    assert target.known_hosts == tmp_path / "kh"  # "UserKnownHostsFile none" has no effect
    assert target.ignored_proxy is None
    assert target.jump is not None  # ProxyJump is followed: the pool opens that hop itself
    assert (target.jump.address, target.jump.port, target.jump.user) == ("elsewhere", 22, "someone")
    # The host entry wins over the ssh config.
    explicit = pool._resolve(entry("a2", "alias1", port=2299, user="me"))
    assert (explicit.port, explicit.user) == (2299, "me")


def test_bad_jump_spec_is_an_ssh_error() -> None:
    pool = SshPool([entry("b1", jump="x,y")], user_ssh_config=None)
    with pytest.raises(SshError, match="own host entry"):
        pool._resolve(entry("b1", jump="x,y"))


async def test_missing_identity_is_reported_without_connecting(tmp_path: Path) -> None:
    b1 = entry("b1", port=1, identity=tmp_path / "nope")
    async with SshPool([b1], user_ssh_config=None) as pool:
        with pytest.raises(SshError, match=r"identity .*nope.* cannot be read"):
            await pool.connect(b1)


async def test_passphrase_identity_is_reported(tmp_path: Path) -> None:
    key = tmp_path / "id_locked"
    # ssh-keygen: asyncssh here lacks bcrypt KDF support to write (or decrypt) such a key.
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-passphrase", "-f", str(key)],
        check=True,
    )
    b1 = entry("b1", port=1, identity=key)
    async with SshPool([b1], user_ssh_config=None) as pool:
        with pytest.raises(SshError, match="passphrase-protected") as err:
            await pool.connect(b1)
    assert "ssh-add" in str(err.value) and "secret-passphrase" not in str(err.value)


def test_user_ssh_config_gives_aliases_only_and_loads_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is read through asyncssh's public options API (at every asyncssh from the
    pyproject floor up; CI runs this at the floor). Only HostName, Port, User, IdentityFile and
    the proxy options are taken from it: options matui ignores are not validated, nothing in
    ~/.ssh is loaded, and nothing there turns host-key checking off."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    for name in ("id_ed25519", "id_rsa", "ca-bundle.crt"):
        (home / ".ssh" / name).write_text("not a key, not a certificate\n")
    (home / ".ssh" / "config").write_text("Host alias1\n  HostName 10.9.9.9\n")  # not this file
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    config = tmp_path / "config"
    config.write_text(
        "Host alias1\n  HostName 10.1.1.1\n"
        "  Ciphers no-such-cipher\n  KexAlgorithms no-such-kex\n  MACs no-such-mac\n"
        "  HostKeyAlgorithms no-such-alg\n  EnableSSHKeySign yes\n"
        "  PKCS11Provider /nonexistent/pkcs11.so\n  CertificateFile /nonexistent/cert\n"
        "  IdentityAgent /nonexistent/agent.sock\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile none\n  GlobalKnownHostsFile none\n"
        "Host *\n  User everyone\n  Port 2201\n"
    )
    pool = SshPool([], user_ssh_config=config, default_known_hosts=tmp_path / "kh")
    target = pool._resolve(entry("a1", "alias1"))
    assert (target.address, target.port, target.user) == ("10.1.1.1", 2201, "everyone")
    assert target.identities == ()
    assert target.known_hosts == tmp_path / "kh"  # checked against this file, whatever it says
    assert target.ignored_proxy is None
    # An entry the file does not name keeps its own address; "Host *" still applies.
    other = pool._resolve(entry("b1", "10.2.2.2", user="me"))
    assert (other.address, other.port, other.user) == ("10.2.2.2", 2201, "me")


def test_unreadable_user_ssh_config_is_an_ssh_error_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host alias1\n  Port not-a-number\n")
    pool = SshPool([], user_ssh_config=config)
    with pytest.raises(SshError, match=rf"cannot read {config} for host 'a1': .*Fix: correct"):
        pool._resolve(entry("a1", "alias1"))
