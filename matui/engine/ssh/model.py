"""What the SSH pool reads (host entries) and returns (command results), and its errors."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import asyncssh

from matui.engine.ssh.known_hosts import (
    _short_key_type,
    known_hosts_pattern,
    trust_command,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")

# AES-GCM first: asyncssh runs chacha20-poly1305 as several cipher calls per packet, and read a
# build log about three times slower with it than with AES-GCM (one call a packet, AES-NI);
# measured by benchmarks/engine_ingest.py. The other defaults stay, in asyncssh's order, for
# servers without GCM.
_GCM = (b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com")
ENCRYPTION_ALGS = [
    alg.decode("ascii")
    for alg in (
        *(a for a in _GCM if a in asyncssh.encryption.get_encryption_algs()),
        *(a for a in asyncssh.encryption.get_default_encryption_algs() if a not in _GCM),
    )
]


class HostEntry(Protocol):
    """What the pool reads from a host entry (``matui.engine.config.HostConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def user(self) -> str | None: ...
    @property
    def identity(self) -> Path | None: ...
    @property
    def known_hosts(self) -> Path | None: ...
    @property
    def jump(self) -> str | None: ...


class HostList(Protocol):
    """A loaded config (``matui.engine.config.Config``): only its host entries are used."""

    @property
    def hosts(self) -> Sequence[HostEntry]: ...


# --------------------------------------------------------------------------------------------
# Results and errors


@dataclass(frozen=True)
class CommandResult:
    """How a remote command ended. ``exit_status is None`` means the connection was lost (or the
    host sent no status): the command may or may not have run, and it is never success."""

    exit_status: int | None
    stdout: bytes
    stderr: bytes
    exit_signal: str | None = None
    """Signal name when the remote process was killed by one (``exit_status`` is then -1)."""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def lost(self) -> bool:
        return self.exit_status is None

    def out_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    def err_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")


class SshError(Exception):
    """An SSH failure on a host; the message says what failed and how to fix it."""

    state = "ssh-error"
    """What kind of failure, for a probe's state (``matui.engine.probe.HostState``)."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host

    @property
    def message(self) -> str:
        return str(self.args[0])


class HostUnreachable(SshError):
    """No SSH session could be set up: DNS, refused, timeout, or the jump host could not forward."""

    state = "unreachable"

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        cause: str,
        *,
        via: str | None = None,
        hint: str = "",
    ) -> None:
        self.address = address
        self.port = port
        self.cause = cause
        self.via = via
        route = f" through jump host '{via}'" if via else ""
        fix = (
            f"check that the host is up and sshd listens on {address}:{port}"
            + (f" as seen from '{via}'" if via else "")
            + ", and that address and port in the host entry are right"
        )
        super().__init__(
            host,
            f"cannot reach host '{host}' at {address}:{port}{route}: {cause}. Fix: {fix}.{hint}",
        )


class AuthFailed(SshError):
    """The host answered (its key checked out) but refused every key offered for the user.

    ``server_methods`` is what the server said it accepts for that user (``publickey``,
    ``password``, ``keyboard-interactive``, ...), or None when it is not known; the fix offered
    depends on it: a server that takes no keys needs its sshd_config changed, not a key added.
    """

    state = "auth-failed"

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        user: str,
        identity: str,
        *,
        server_methods: Sequence[str] | None = None,
        key_file: Path | None = None,
        via: str | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.user = user
        self.identity = identity
        self.server_methods = tuple(server_methods) if server_methods is not None else None
        self.via = via
        copy = ""
        if key_file is not None and via is None:
            # ssh-copy-id logs in the way the server allows (a password, typically) to add it.
            pub = shlex.quote(f"{key_file}.pub")
            copy = f" (e.g. `ssh-copy-id -i {pub} -p {port} {shlex.quote(f'{user}@{address}')}`)"
        add_key = f"add your public key to ~{user}/.ssh/authorized_keys on the host{copy}"
        entry = "set the right `user` / `identity` in the host entry"
        methods = self.server_methods
        if methods is None:
            offered = ""
            fix = f"{add_key}, or {entry}."
        elif "publickey" in methods:
            offered = f" The server accepts: {', '.join(methods)}."
            fix = f"{add_key}, or {entry}."
        else:
            offered = (
                f" The server accepts: {', '.join(methods) or 'no method at all'}; "
                "it takes no keys for this user, and matui logs in with keys only."
            )
            fix = (
                "on the host, allow keys (`PubkeyAuthentication yes` in sshd_config; check "
                f"`AuthenticationMethods` and `Match` blocks too), then {add_key}; or {entry}."
            )
        super().__init__(
            host,
            f"host '{host}' ({address}:{port}) is reachable, but authentication failed: it "
            f"refused login as user '{user}' with {identity}.{offered} Fix: {fix}",
        )


class HostKeyUnknown(SshError):
    """The host's key is not in the known_hosts file used for it. Nothing was run on it."""

    state = "host-key-unknown"

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        key_type: str,
        fingerprint: str,
        known_hosts: Path,
        known_hosts_line: str,
        *,
        via: str | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.known_hosts = known_hosts
        self.known_hosts_line = known_hosts_line
        """The exact line that trusts this key; append it only after an explicit yes."""
        self.via = via
        self.trust_command = trust_command(
            address, port, key_type, known_hosts_line, known_hosts, via=via
        )
        super().__init__(
            host,
            f"host '{host}' ({address}:{port}) presented an unknown {key_type} host key "
            f"{fingerprint}; it is not in {known_hosts}. Nothing was run on it. Fix: check that "
            "fingerprint out of band (on the host: `ssh-keygen -lf "
            f"/etc/ssh/ssh_host_{_short_key_type(key_type)}_key.pub`), then trust it: "
            f"`{self.trust_command}`",
        )


class HostKeyChanged(SshError):
    """The host presented a key other than the one(s) known_hosts has for it. A hard stop."""

    state = "host-key-changed"

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        key_type: str,
        expected: list[str],
        actual: str,
        known_hosts: Path,
    ) -> None:
        self.address = address
        self.port = port
        self.key_type = key_type
        self.expected = expected
        self.actual = actual
        self.known_hosts = known_hosts
        self.remove_command = (
            f"ssh-keygen -R {shlex.quote(known_hosts_pattern(address, port))} "
            f"-f {shlex.quote(str(known_hosts))}"
        )
        super().__init__(
            host,
            f"HOST KEY CHANGED for host '{host}' ({address}:{port}): {known_hosts} expects "
            f"{', '.join(expected)} but the host presented {key_type} {actual}. Someone may be "
            "intercepting the connection (man-in-the-middle); nothing was run and matui will not "
            "connect. Fix: only if the change is expected (host reinstalled, keys rotated) and "
            "you checked the new fingerprint out of band, remove the old entry with "
            f"`{self.remove_command}` and trust the new key.",
        )


class SessionLost(HostUnreachable):
    """The connection dropped while a channel was being opened. A command may or may not have
    started; callers that treat :class:`HostUnreachable` as "lost" handle this one too."""

    def __init__(self, host: str, address: str, port: int, message: str) -> None:
        self.address = address
        self.port = port
        self.cause = message
        self.via = None
        SshError.__init__(self, host, message)


class SessionsRefused(SshError):
    """The host is up and logged us in, but kept refusing new sessions ("open failed": sshd's
    ``MaxSessions`` per connection, or a resource shortage) on every connection matui may open
    to it, for the whole wait. Nothing was started."""

    state = "sessions-refused"

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        what: str,
        reason: str,
        *,
        connections: int,
        waited: float,
    ) -> None:
        self.address = address
        self.port = port
        self.connections = connections
        self.waited = waited
        super().__init__(
            host,
            f"host '{host}' ({address}:{port}) is reachable but refused to {what} for "
            f"{waited:.0f}s on each of {connections} connection(s) ({reason}); nothing was "
            "started. Fix: raise `MaxSessions` (and `MaxStartups`) in the host's sshd_config, "
            "or give it fewer jobs at once.",
        )


class CommandTimedOut(SshError):
    """A command did not finish in time. Its channel is closed; the remote process may live on."""

    def __init__(self, host: str, timeout: float, stdout: bytes, stderr: bytes) -> None:
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            host,
            f"command on host '{host}' did not finish within {timeout:g}s; matui closed its "
            "channel, but the remote process may still be running.",
        )
