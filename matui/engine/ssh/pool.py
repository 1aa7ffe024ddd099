"""The SSH pool: one cached connection per host, bastions shared, host keys always checked."""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import os
import shlex
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from matui.engine.shell import RemoteScript
from matui.engine.ssh.known_hosts import SSH_PORT, fingerprint, known_hosts_line
from matui.engine.ssh.model import (
    _T,
    DEFAULT_KNOWN_HOSTS,
    DEFAULT_SSH_CONFIG,
    ENCRYPTION_ALGS,
    AuthFailed,
    CommandResult,
    CommandTimedOut,
    HostEntry,
    HostKeyChanged,
    HostKeyUnknown,
    HostList,
    HostUnreachable,
    SessionLost,
    SessionsRefused,
    SshError,
    log,
)
from matui.engine.ssh.target import parse_jump_spec

# Pool


@dataclass(frozen=True)
class _Target:
    """A host entry resolved to everything a connection depends on; the cache key."""

    address: str
    port: int
    user: str
    identities: tuple[Path, ...]  # empty: ssh-agent and default keys
    explicit_identity: bool  # from the host entry (must load) rather than ~/.ssh/config
    known_hosts: Path
    jump: _Target | None
    name: str = field(compare=False)
    ignored_proxy: str | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}"

    def identity_text(self) -> str:
        if self.identities:
            return "key " + ", ".join(str(p) for p in self.identities)
        return "ssh-agent and default keys (~/.ssh/id_*)"


@dataclass(frozen=True)
class _SpecHost:
    """A jump host given inline as ``[user@]host[:port]`` on another entry, or one hop of a
    ``ProxyJump`` read from ``~/.ssh/config``."""

    name: str
    address: str
    port: int | None
    user: str | None
    identity: Path | None
    known_hosts: Path | None
    jump: str | None = None
    via: _Target | None = None
    """The hop before this one in a multi-hop ``ProxyJump`` (its own ProxyJump is then not
    read: the list says how this hop is reached)."""


# A session channel refused with these codes, on a connection that is still up, means "not
# now": OpenSSH's sshd answers a session over its MaxSessions per connection with code 2
# (connect failed) and "open failed" (seen on OpenSSH 9.2); other servers use 1 or 4.
_BUSY_CODES = frozenset(
    {
        asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
        asyncssh.OPEN_CONNECT_FAILED,
        asyncssh.OPEN_RESOURCE_SHORTAGE,
    }
)


class _NeverOpened(SessionLost):
    """The connection was found dead when a channel was to be opened: nothing ran."""


class _Refused:
    """A channel-open attempt the host answered with a busy code."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _AuthWitness(asyncssh.SSHClient):
    """Notes which login methods the server offered: asyncssh asks its client object for a
    password, keyboard-interactive answers or more keys only for methods the server listed.
    It never answers with a secret (matui logs in with keys only)."""

    def __init__(self) -> None:
        self.offered: list[str] = []

    def _saw(self, method: str) -> None:
        if method not in self.offered:
            self.offered.append(method)

    def public_key_auth_requested(self) -> None:
        self._saw("publickey")

    def kbdint_auth_requested(self) -> None:
        self._saw("keyboard-interactive")

    def password_auth_requested(self) -> None:
        self._saw("password")


class SshPool:
    """One SSH connection per host, opened on first use and shared by every caller.

    Errors are :class:`SshError` subclasses naming the host, its address and the fix.
    """

    def __init__(
        self,
        hosts: Sequence[HostEntry] | HostList = (),
        *,
        connect_timeout: float = 10,
        login_timeout: float = 15,
        keepalive_interval: float = 5,
        keepalive_count_max: int = 3,
        user_ssh_config: Path | None = DEFAULT_SSH_CONFIG,
        default_known_hosts: Path = DEFAULT_KNOWN_HOSTS,
        max_connections: int = 8,
        session_wait: float = 20.0,
    ) -> None:
        entries: Iterable[HostEntry] = hosts.hosts if hasattr(hosts, "hosts") else hosts
        self._hosts: dict[str, HostEntry] = {h.name: h for h in entries}
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self.max_connections = max(1, max_connections)
        """Connections per host at most: a host that refuses another session on its first
        connection (sshd's MaxSessions) gets more, since that limit is per connection."""
        self.session_wait = session_wait
        """How long a new channel keeps being retried (with backoff) while every connection
        to its host refuses it, before :class:`SessionsRefused`."""
        ssh_config = user_ssh_config.expanduser() if user_ssh_config is not None else None
        self._ssh_config = ssh_config if ssh_config is not None and ssh_config.is_file() else None
        self.default_known_hosts = default_known_hosts.expanduser()
        self._conns: dict[_Target, asyncssh.SSHClientConnection] = {}
        self._spares: dict[_Target, list[asyncssh.SSHClientConnection]] = {}
        self._spare_locks: dict[_Target, asyncio.Lock] = {}
        self._pending: dict[_Target, asyncio.Task[asyncssh.SSHClientConnection]] = {}
        self._aliases: dict[tuple[str, str | None, int | None], dict[str, object]] = {}

    # -- public API ---------------------------------------------------------------------------

    async def connect(self, host: HostEntry) -> asyncssh.SSHClientConnection:
        """The host's connection: cached, shared with concurrent callers, reopened if closed."""
        return await self._connect(self._resolve(host))

    async def run(
        self,
        host: HostEntry,
        command: RemoteScript,
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run ``command`` to its end. A nonzero exit is a result, not an exception; a lost
        connection is ``exit_status=None``. Raises :class:`SshError` when no session could be set
        up (unreachable, auth, host key) and :class:`CommandTimedOut` after ``timeout``."""
        stdin: Any = asyncssh.DEVNULL if input is None else asyncssh.PIPE
        try:
            process = await self.open_process(host, command, stdin=stdin, input=input)
        except SessionLost:
            return CommandResult(None, b"", b"")
        try:
            done = await process.wait(check=False, timeout=timeout)
        except asyncssh.TimeoutError as exc:
            process.close()
            raise CommandTimedOut(
                host.name, timeout or 0.0, _as_bytes(exc.stdout), _as_bytes(exc.stderr)
            ) from None
        except asyncio.CancelledError:
            # Do not leave the channel open on the shared connection (the remote process is not
            # stopped by this: see CommandTimedOut).
            process.close()
            raise
        signal = done.exit_signal[0] if done.exit_signal else None
        return CommandResult(
            done.exit_status, _as_bytes(done.stdout), _as_bytes(done.stderr), signal
        )

    async def open_process(
        self, host: HostEntry, command: RemoteScript, **kw: Any
    ) -> asyncssh.SSHClientProcess[bytes]:
        """Start ``command`` and hand back the process (bytes in and out) for streaming."""
        if kw.pop("encoding", None) is not None:
            raise ValueError("open_process reads bytes: decode with errors='replace' yourself")
        wire = command.wire()

        async def start(conn: asyncssh.SSHClientConnection) -> asyncssh.SSHClientProcess[bytes]:
            process: asyncssh.SSHClientProcess[bytes] = await conn.create_process(
                wire, encoding=None, **kw
            )
            return process

        return await self._on_channel(host, "start a command", start)

    async def sftp(self, host: HostEntry) -> asyncssh.SFTPClient:
        """A new SFTP session on the host's connection; the caller closes it (``exit()``)."""

        async def start(conn: asyncssh.SSHClientConnection) -> asyncssh.SFTPClient:
            try:
                return await conn.start_sftp_client()
            except asyncssh.SFTPError as exc:
                raise SshError(
                    host.name,
                    f"host '{host.name}' has no SFTP service ({exc.reason}). Fix: add "
                    "`Subsystem sftp internal-sftp` (or the sftp-server path) to its sshd_config.",
                ) from exc

        return await self._on_channel(host, "start SFTP", start)

    async def close(self) -> None:
        """Close every connection (hosts behind a jump host before the jump host)."""
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # Spares first: they may be tunnelled through another host's first connection.
        conns = [c for spares in self._spares.values() for c in spares]
        conns += reversed(self._conns.values())
        self._conns.clear()
        self._spares.clear()
        for conn in conns:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), timeout=5)
            except (TimeoutError, OSError, asyncssh.Error):
                conn.abort()

    async def __aenter__(self) -> SshPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- channels -----------------------------------------------------------------------------

    async def _on_channel(
        self,
        host: HostEntry,
        what: str,
        start: Callable[[asyncssh.SSHClientConnection], Awaitable[_T]],
    ) -> _T:
        """Open a channel on the host's connection.

        A channel that could not be *opened* never ran anything, so when the cached connection
        turns out to be dead it is dropped and one fresh connection is tried. A channel the
        host refuses for now (its MaxSessions reached by other callers' channels) is retried
        on spare connections and with backoff (:meth:`_on_spare_channel`).
        """
        target = self._resolve(host)
        for attempt in (1, 2):
            conn = await self._connect(target)
            try:
                outcome = await self._try_channel(target, conn, what, start)
            except _NeverOpened:
                if attempt == 2:
                    raise
            else:
                if isinstance(outcome, _Refused):
                    return await self._on_spare_channel(target, what, start, outcome)
                return outcome
        raise AssertionError("unreachable")

    async def _try_channel(
        self,
        target: _Target,
        conn: asyncssh.SSHClientConnection,
        what: str,
        start: Callable[[asyncssh.SSHClientConnection], Awaitable[_T]],
    ) -> _T | _Refused:
        """``start(conn)``, or :class:`_Refused` when the host answers "not now"."""
        try:
            return await start(conn)
        except asyncssh.ChannelOpenError as exc:
            if conn.is_closed() or not _is_open(conn):
                self._drop(target, conn)
                raise _NeverOpened(
                    target.name,
                    target.address,
                    target.port,
                    f"connection to host '{target.name}' ({target.where}) closed while "
                    f"trying to {what}; nothing was started. Fix: check the host and retry.",
                ) from exc
            if exc.code in _BUSY_CODES:
                return _Refused(f"{exc.reason or 'open failed'}")
            raise SshError(
                target.name,
                f"host '{target.name}' ({target.where}) refused to {what}: {exc.reason}. "
                "Fix: check sshd_config on the host (MaxSessions, ForceCommand, "
                "Subsystem) and its logs.",
            ) from exc
        except (asyncssh.DisconnectError, OSError) as exc:
            if isinstance(exc, OSError) and not conn.is_closed() and _is_open(conn):
                raise  # a local problem (e.g. a stdin file), not the connection
            self._drop(target, conn)
            raise SessionLost(
                target.name,
                target.address,
                target.port,
                f"connection to host '{target.name}' ({target.where}) was lost while trying "
                f"to {what} ({_reason(exc)}); it may or may not have started. Fix: check the "
                "host and retry.",
            ) from exc

    async def _on_spare_channel(
        self,
        target: _Target,
        what: str,
        start: Callable[[asyncssh.SSHClientConnection], Awaitable[_T]],
        refused: _Refused,
    ) -> _T:
        """The host's first connection refused a new channel: sshd counts MaxSessions per
        connection, so several host entries (or jobs) on one server starve each other on a
        single connection. Try the spare connections, open another (up to
        ``max_connections``), and failing all of them retry with backoff for ``session_wait``
        seconds. Nothing ran on a refused channel, so retrying is safe."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = 0.05
        first = True
        while True:
            primary = self._conns.get(target)
            spares = self._live_spares(target)
            candidates = list(spares)
            if not first and primary is not None and _is_live(primary):
                candidates.insert(0, primary)
            first = False
            for conn in candidates:
                try:
                    outcome = await self._try_channel(target, conn, what, start)
                except _NeverOpened:
                    continue  # that connection died; nothing ran on it
                if not isinstance(outcome, _Refused):
                    return outcome
                refused = outcome
            if await self._add_spare(target, len(spares)) and loop.time() - started < (
                self.session_wait
            ):
                continue  # a new connection to try (ours, or another caller's)
            waited = loop.time() - started
            if waited >= self.session_wait:
                raise SessionsRefused(
                    target.name,
                    target.address,
                    target.port,
                    what,
                    refused.reason,
                    connections=1 + len(self._live_spares(target)),
                    waited=waited,
                )
            await asyncio.sleep(min(delay, self.session_wait - waited))
            delay = min(delay * 2, 2.0)

    def _live_spares(self, target: _Target) -> list[asyncssh.SSHClientConnection]:
        spares = [c for c in self._spares.get(target, []) if _is_live(c)]
        if spares:
            self._spares[target] = spares
        else:
            self._spares.pop(target, None)
        return spares

    async def _add_spare(self, target: _Target, seen: int) -> bool:
        """Open one more connection to the host unless another caller just did (``seen``
        spares were tried) or the limit is reached. True when there is a new one to try."""
        lock = self._spare_locks.setdefault(target, asyncio.Lock())
        async with lock:
            spares = self._live_spares(target)
            if len(spares) != seen:
                return True
            if 1 + len(spares) >= self.max_connections:
                return False
            log.info(
                "ssh: host %s (%s) refused a new session on its connection(s) (MaxSessions?); "
                "opening connection %d",
                target.name,
                target.where,
                len(spares) + 2,
            )
            try:
                conn = await self._open(target)
            except SshError as exc:
                log.info("ssh: no spare connection to %s: %s", target.name, exc.message)
                return False
            self._spares.setdefault(target, []).append(conn)
            return True

    def _drop(self, target: _Target, conn: asyncssh.SSHClientConnection) -> None:
        if self._conns.get(target) is conn:
            del self._conns[target]
        spares = self._spares.get(target, [])
        if conn in spares:
            spares.remove(conn)
        conn.abort()

    # -- connections --------------------------------------------------------------------------

    async def _connect(self, target: _Target) -> asyncssh.SSHClientConnection:
        conn = self._conns.get(target)
        if conn is not None:
            if not conn.is_closed() and _is_open(conn):
                return conn
            del self._conns[target]
        task = self._pending.get(target)
        if task is None:
            task = asyncio.create_task(
                self._open_and_cache(target), name=f"ssh connect {target.name}"
            )
            task.add_done_callback(_retrieve_exception)
            self._pending[target] = task
        # shield: one caller giving up does not cancel the connect the others wait for.
        return await asyncio.shield(task)

    async def _open_and_cache(self, target: _Target) -> asyncssh.SSHClientConnection:
        try:
            conn = await self._open(target)
            self._conns[target] = conn
            return conn
        finally:
            if self._pending.get(target) is asyncio.current_task():
                del self._pending[target]

    async def _open(self, target: _Target) -> asyncssh.SSHClientConnection:
        tunnel = await self._connect(target.jump) if target.jump is not None else None
        via = target.jump.name if target.jump is not None else None
        known = _load_known_hosts(target)
        keys = _load_keys(target)
        log.info(
            "ssh: connecting to %s (%s as %s%s)",
            target.name,
            target.where,
            target.user,
            f" via {via}" if via else "",
        )
        hint = (
            f" Note: {self._ssh_config} sets {target.ignored_proxy} for this host, which matui "
            "does not follow; set `jump` in the host entry instead."
            if target.ignored_proxy
            else ""
        )
        witness = _AuthWitness()
        try:
            conn = await asyncssh.connect(
                target.address,
                target.port,
                tunnel=tunnel if tunnel is not None else (),
                client_factory=lambda: witness,
                config=None,
                known_hosts=known,
                username=target.user,
                client_keys=keys if keys is not None else (),
                connect_timeout=self.connect_timeout,
                login_timeout=self.login_timeout,
                keepalive_interval=self.keepalive_interval,
                keepalive_count_max=self.keepalive_count_max,
                encryption_algs=ENCRYPTION_ALGS,
                encoding=None,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise await self._host_key_error(target, known, tunnel, exc) from exc
        except asyncssh.PermissionDenied as exc:
            raise AuthFailed(
                target.name,
                target.address,
                target.port,
                target.user,
                target.identity_text(),
                server_methods=witness.offered,
                key_file=target.identities[0] if len(target.identities) == 1 else None,
                via=via,
            ) from exc
        except asyncssh.ChannelOpenError as exc:
            # Only a tunnel opens a channel during connect: the jump host could not forward.
            raise HostUnreachable(
                target.name,
                target.address,
                target.port,
                f"the jump host could not open a connection ({exc.reason})",
                via=via,
                hint=hint,
            ) from exc
        except asyncssh.ConnectionLost as exc:
            cause = exc.reason
            if "login timeout" in cause.lower():
                cause = f"no SSH login within {self.login_timeout:g}s (login timeout)"
            raise HostUnreachable(
                target.name, target.address, target.port, cause, via=via, hint=hint
            ) from exc
        except asyncssh.DisconnectError as exc:
            raise SshError(
                target.name,
                f"SSH handshake with host '{target.name}' ({target.where}) failed: {exc.reason}. "
                "Fix: check that it runs a current OpenSSH server and see its sshd log.",
            ) from exc
        except TimeoutError as exc:
            raise HostUnreachable(
                target.name,
                target.address,
                target.port,
                f"no SSH session within {self.connect_timeout:g}s (connect timeout)",
                via=via,
                hint=hint,
            ) from exc
        except socket.gaierror as exc:
            raise HostUnreachable(
                target.name,
                target.address,
                target.port,
                f"cannot resolve '{target.address}' ({exc.strerror})",
                via=via,
                hint=hint,
            ) from exc
        except OSError as exc:
            raise HostUnreachable(
                target.name, target.address, target.port, _reason(exc), via=via, hint=hint
            ) from exc
        except (asyncssh.Error, ValueError) as exc:
            raise SshError(
                target.name,
                f"cannot open SSH connection to host '{target.name}' ({target.where}): "
                f"{_reason(exc)}. Fix: check the host entry.",
            ) from exc
        log.info("ssh: connected to %s (%s)", target.name, target.where)
        return conn

    async def _host_key_error(
        self,
        target: _Target,
        known: asyncssh.SSHKnownHosts,
        tunnel: asyncssh.SSHClientConnection | None,
        exc: asyncssh.HostKeyNotVerifiable,
    ) -> SshError:
        """Tell an unknown host key from a changed one. Only the key is fetched; nothing runs."""
        port = target.port if target.port != SSH_PORT else None
        addrs = [""]
        if tunnel is None:
            addrs += await _resolved_ips(target.address, target.port)
        trusted: list[asyncssh.SSHKey] = []
        revoked: list[asyncssh.SSHKey] = []
        for addr in addrs:
            host_keys, ca_keys, revoked_keys, *_ = known.match(target.address, addr, port)
            trusted += [k for k in [*host_keys, *ca_keys] if k not in trusted]
            revoked += revoked_keys
        # Ask for the key type(s) known_hosts has, as the real connect did, so the key shown is
        # the one that failed to match.
        algs = sorted({a.decode("ascii") for k in trusted for a in k.sig_algorithms})
        key = await self._fetch_host_key(target, tunnel, algs)
        if key is None and algs:
            key = await self._fetch_host_key(target, tunnel, [])
        if key is None:
            return SshError(
                target.name,
                f"host key of '{target.name}' ({target.where}) could not be verified "
                f"({exc.reason}) and could not be fetched again to show it. Nothing was run. "
                f"Fix: compare the host's key with {target.known_hosts} by hand.",
            )
        actual = fingerprint(key)
        key_type = key.get_algorithm()
        if key in revoked:
            return SshError(
                target.name,
                f"host '{target.name}' ({target.where}) presented {key_type} key {actual}, which "
                f"{target.known_hosts} marks @revoked. Nothing was run. Fix: give the host a new "
                "key and trust that one.",
            )
        if not trusted:
            return HostKeyUnknown(
                target.name,
                target.address,
                target.port,
                key_type,
                actual,
                target.known_hosts,
                known_hosts_line(target.address, target.port, key),
                via=target.jump.name if target.jump is not None else None,
            )
        expected = [fingerprint(k) for k in trusted]
        if actual in expected:
            return SshError(
                target.name,
                f"host '{target.name}' ({target.where}) presented the known key {actual}, but "
                f"verification still failed ({exc.reason}). Nothing was run. Fix: retry; if it "
                "persists, compare the host's keys and known_hosts by hand.",
            )
        return HostKeyChanged(
            target.name, target.address, target.port, key_type, expected, actual, target.known_hosts
        )

    async def _fetch_host_key(
        self,
        target: _Target,
        tunnel: asyncssh.SSHClientConnection | None,
        algs: list[str],
    ) -> asyncssh.SSHKey | None:
        try:
            return await asyncio.wait_for(
                asyncssh.get_server_host_key(
                    target.address,
                    target.port,
                    tunnel=tunnel if tunnel is not None else (),
                    config=None,
                    server_host_key_algs=algs if algs else (),
                ),
                timeout=self.connect_timeout,
            )
        except (OSError, asyncssh.Error, ValueError) as exc:
            log.info("ssh: fetching the host key of %s failed: %s", target.name, _reason(exc))
            return None

    # -- resolving host entries ---------------------------------------------------------------

    def _resolve(
        self,
        host: HostEntry,
        chain: tuple[str, ...] = (),
        fallback_user: str | None = None,
    ) -> _Target:
        if host.name in chain:
            loop = " -> ".join((*chain, host.name))
            raise SshError(
                host.name,
                f"jump hosts form a loop: {loop}. Fix: break the loop in "
                "the `jump` settings of those host entries.",
            )
        alias = self._ssh_alias(host)
        address = str(alias.get("Hostname") or host.address)
        port = int(host.port or _int(alias.get("Port")) or SSH_PORT)
        user = host.user or _str(alias.get("User")) or fallback_user or _local_user(host.name)
        if host.identity is not None:
            identities: tuple[Path, ...] = (host.identity.expanduser(),)
            explicit = True
        else:
            from_config = alias.get("IdentityFile") or []
            assert isinstance(from_config, list)
            identities = tuple(
                p for p in (Path(str(f)).expanduser() for f in from_config) if p.is_file()
            )
            explicit = False
        known_hosts = (host.known_hosts or self.default_known_hosts).expanduser()
        jump: _Target | None = None
        if host.jump:
            entry = self._hosts.get(host.jump)
            if entry is None:
                try:
                    spec = parse_jump_spec(host.jump)
                except ValueError as exc:
                    raise SshError(
                        host.name,
                        f"host '{host.name}': {exc}. Fix: set `jump` to another host entry's "
                        "name or to [user@]host[:port].",
                    ) from exc
                entry = _SpecHost(
                    name=host.jump,
                    address=spec.address,
                    port=spec.port,
                    user=spec.user,
                    identity=host.identity,
                    known_hosts=host.known_hosts,
                )
                jump = self._resolve(entry, (*chain, host.name), fallback_user=user)
            else:
                jump = self._resolve(entry, (*chain, host.name))
        elif isinstance(host, _SpecHost) and host.via is not None:
            jump = host.via
        else:
            proxy_jump = alias.get("ProxyJump")
            if proxy_jump and str(proxy_jump).lower() != "none":
                jump = self._proxy_jump(host, str(proxy_jump), (*chain, host.name))
        ignored = None
        proxy_command = alias.get("ProxyCommand")
        if not host.jump and jump is None and proxy_command and str(proxy_command) != "none":
            ignored = "ProxyCommand"
        return _Target(
            address=address,
            port=port,
            user=user,
            identities=identities,
            explicit_identity=explicit,
            known_hosts=known_hosts,
            jump=jump,
            name=host.name,
            ignored_proxy=ignored,
        )

    def _proxy_jump(self, host: HostEntry, value: str, chain: tuple[str, ...]) -> _Target:
        """The last hop of ``ProxyJump value`` (``[user@]host[:port]``, comma-separated hops),
        each hop connected by this pool with the same host-key rules, like an explicit `jump`.

        As with ``ssh``, each hop is looked up in ``~/.ssh/config`` (HostName, Port, User,
        IdentityFile; the first hop's own ProxyJump too) and its user defaults to the local
        one. A hop with no IdentityFile of its own logs in with the host entry's `identity`
        (else ssh-agent and default keys); its key is checked against the host entry's
        known_hosts."""
        hops = [hop.strip() for hop in value.split(",")]
        via: _Target | None = None
        for hop in hops:
            try:
                spec = parse_jump_spec(hop)
            except ValueError as exc:
                raise SshError(
                    host.name,
                    f"host '{host.name}': {self._ssh_config} sets `ProxyJump {value}` for "
                    f"'{host.address}', and hop {hop!r} is not of the form [user@]host[:port] "
                    f"({exc}). Fix: correct that ProxyJump, or set `jump` in the host entry.",
                ) from exc
            entry = _SpecHost(
                name=hop,
                address=spec.address,
                port=spec.port,
                user=spec.user,
                identity=None,
                known_hosts=host.known_hosts,
                via=via,
            )
            if not self._ssh_alias(entry).get("IdentityFile"):
                entry = replace(entry, identity=host.identity)
            via = self._resolve(entry, chain)
            chain = (*chain, hop)
        assert via is not None
        return via

    def _ssh_alias(self, host: HostEntry) -> dict[str, object]:
        """What ``~/.ssh/config`` says about ``host.address`` (only a few options are used)."""
        if self._ssh_config is None:
            return {}
        key = (host.address, host.user, host.port)
        if key not in self._aliases:
            self._aliases[key] = self._read_ssh_alias(host)
        return self._aliases[key]

    def _read_ssh_alias(self, host: HostEntry) -> dict[str, object]:
        assert self._ssh_config is not None
        _local_user(host.name)  # its clear error first: asyncssh would need the name too
        try:
            # asyncssh's public way to read an ssh config for a host (its private
            # SSHClientConfig.load changed signature in 2.19). These options are only read
            # here, never used to connect. Every value matui does not take from the file is
            # given, so nothing else in it is loaded or validated: no keys, agent, certificates
            # or algorithm lists; known_hosts is not read here either.
            options = asyncssh.SSHClientConnectionOptions(
                config=[str(self._ssh_config)],
                host=host.address,
                port=host.port if host.port else (),
                username=host.user if host.user else (),
                client_keys=None,
                client_host_keysign=False,
                agent_path=None,
                pkcs11_provider=None,
                x509_trusted_certs=None,
                x509_trusted_cert_paths=[],
                kex_algs="default",
                encryption_algs="default",
                mac_algs="default",
                compression_algs="default",
                signature_algs="default",
                server_host_key_algs="default",
                rekey_bytes=1 << 30,
                rekey_seconds=3600,
                connect_timeout=None,
                keepalive_interval=0,
                keepalive_count_max=1,
            )
        except (OSError, ValueError, asyncssh.Error) as exc:
            raise SshError(
                host.name,
                f"cannot read {self._ssh_config} for host '{host.name}': {_reason(exc)}. Fix: "
                "correct that file, or start matui without the user ssh config.",
            ) from exc
        # The file as parsed for this host: ``options.config`` is what asyncssh itself chains
        # from one options object to the next; ``get`` returns None for an option not set.
        parsed = options.config
        return {
            option: parsed.get(option)
            for option in ("Hostname", "Port", "User", "IdentityFile", "ProxyJump", "ProxyCommand")
        }


# --------------------------------------------------------------------------------------------
# Small internals


def _load_known_hosts(target: _Target) -> asyncssh.SSHKnownHosts:
    path = target.known_hosts
    if not path.exists():
        # Not None (no checking) and not b"" (asyncssh would read ~/.ssh/known_hosts instead).
        return asyncssh.SSHKnownHosts()
    try:
        return asyncssh.read_known_hosts(str(path))
    except OSError as exc:
        raise SshError(
            target.name,
            f"cannot read known_hosts {path} for host '{target.name}': "
            f"{_reason(exc)}. Fix: make it readable.",
        ) from exc
    except ValueError as exc:
        raise SshError(
            target.name,
            f"known_hosts {path} (for host '{target.name}') has a line "
            f"matui cannot parse: {exc}. Fix: correct or delete that "
            "line.",
        ) from exc


def _load_keys(target: _Target) -> list[asyncssh.SSHKeyPair] | None:
    """Keys from the host entry or ~/.ssh/config; ``None`` means ssh-agent and default keys."""
    if not target.identities:
        return None
    keys: list[asyncssh.SSHKeyPair] = []
    for path in target.identities:
        try:
            keys += asyncssh.load_keypairs([str(path)])
        except (OSError, ValueError) as exc:
            # Never show key material: only the path and the kind of problem.
            if not target.explicit_identity:
                log.info(
                    "ssh: skipping identity %s for %s: %s", path, target.name, type(exc).__name__
                )
                continue
            if isinstance(exc, OSError):
                problem, fix = (
                    f"cannot be read ({exc.strerror})",
                    "correct `identity` in the host entry",
                )
            elif "passphrase" in str(exc).lower():
                problem, fix = (
                    "is passphrase-protected",
                    f"load it into ssh-agent (`ssh-add {shlex.quote(str(path))}`) "
                    "and remove `identity` from the host entry",
                )
            else:
                problem, fix = (
                    "is not a private key matui can read",
                    "point `identity` at an OpenSSH private key",
                )
            raise SshError(
                target.name, f"identity {path} for host '{target.name}' {problem}. Fix: {fix}."
            ) from None
    return keys or None


async def _resolved_ips(address: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(address)
        return [address]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def _is_open(conn: asyncssh.SSHClientConnection) -> bool:
    # is_closed() turns true only once closing finished; a transport already gone means dead too.
    return getattr(conn, "_transport", True) is not None


def _is_live(conn: asyncssh.SSHClientConnection) -> bool:
    return not conn.is_closed() and _is_open(conn)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(exc, OSError) and exc.errno:
        # asyncio's strerror for a refused connect is "Connect call failed (...)": use the errno.
        return os.strerror(exc.errno)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _as_bytes(data: object) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    return str(data).encode()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _local_user(host: str) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:
        raise SshError(
            host,
            "cannot tell the local user name. Fix: set `user` in the host "
            "entry, or USER in the environment.",
        ) from exc
