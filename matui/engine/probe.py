"""What a builder host really is: its own arch, docker, buildx, QEMU handlers, free space, and
the disk matui itself uses there (``~/.matui``).

Every string in a :class:`HostProbe` can come from the host (its ``uname``, its docker's version,
an error quoting its stderr, an SSH server's message): a probe makes them inert when it is made,
so the CLI, the dashboard and the run record only ever see safe text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from matui.engine.arch import ArchError, emulatable_arches, normalise_arch
from matui.engine.builders import InspectError, capabilities, parse_inspect
from matui.engine.shell import PROBE_SECTIONS, builder_inspect_script, probe_script
from matui.engine.text import neutralise

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.ssh import SshError, SshPool


class HostState(StrEnum):
    """What a probe found, one word for a badge or a status column.

    Only ``ok`` can build. ``auth-failed`` and ``sessions-refused`` hosts answered (their key
    checked out): they are reachable, and calling them unreachable would point at the wrong
    fix. A host whose key is unknown or changed is not called reachable: nothing proves the
    host that answered is the one meant."""

    OK = "ok"
    BROKEN = "broken"  # logged in, but docker or buildx is missing or not answering
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth-failed"
    HOST_KEY_UNKNOWN = "host-key-unknown"
    HOST_KEY_CHANGED = "host-key-changed"
    SESSIONS_REFUSED = "sessions-refused"
    SSH_ERROR = "ssh-error"  # the SSH setup itself: an identity, ~/.ssh/config, a handshake

    @property
    def label(self) -> str:
        """``AUTH FAILED``, ``KEY CHANGED``: the badge, short enough for a narrow panel."""
        return _LABELS[self]


_LABELS = {
    HostState.OK: "OK",
    HostState.BROKEN: "BROKEN",
    HostState.UNREACHABLE: "UNREACHABLE",
    HostState.AUTH_FAILED: "AUTH FAILED",
    HostState.HOST_KEY_UNKNOWN: "KEY UNKNOWN",
    HostState.HOST_KEY_CHANGED: "KEY CHANGED",
    HostState.SESSIONS_REFUSED: "NO SESSIONS",
    HostState.SSH_ERROR: "SSH ERROR",
}

# Failures where the host answered with a key we trust: reachable, but not usable.
_REACHABLE_FAILURES = frozenset({HostState.AUTH_FAILED, HostState.SESSIONS_REFUSED})


@dataclass(frozen=True)
class RegistryAccess:
    """What one host found about one registry it must push to: whether it reached the
    registry's ``/v2/`` and what that answered, and whether its docker holds a login for it
    (an ``auths`` entry with credentials, a ``credHelpers`` entry, or a ``credsStore``). The
    login itself is never read off the host."""

    registry: str
    tool: str | None
    """``curl`` or ``wget``; None: the host has neither, so it was not asked."""
    status: int | None
    """The HTTP status ``/v2/`` answered (401: the registry wants a login); None: no answer."""
    exit_code: int = 0
    """The tool's exit status (curl: 6 no such host, 7 refused, 28 timed out)."""
    login: bool = False
    helper: bool = False
    store: bool = False

    @property
    def has_credentials(self) -> bool:
        return self.login or self.helper or self.store

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegistryAccess:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def parse_registry_access(text: str) -> tuple[RegistryAccess, ...]:
    """The probe's ``registry`` section: ``reg HOST TOOL EXIT STATUS auth=0|1 helper=0|1
    store=0|1`` per registry; other lines are ignored."""
    found: list[RegistryAccess] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) != 8 or words[0] != "reg" or not words[3].isdigit():
            continue
        flags = dict(word.partition("=")[::2] for word in words[5:])
        status = int(words[4]) if words[4].isdigit() and words[4] != "000" else None
        found.append(
            RegistryAccess(
                registry=neutralise(words[1]),
                tool=None if words[2] == "none" else neutralise(words[2]),
                status=status,
                exit_code=int(words[3]),
                login=flags.get("auth") == "1",
                helper=flags.get("helper") == "1",
                store=flags.get("store") == "1",
            )
        )
    return tuple(found)


@dataclass(frozen=True)
class HostProbe:
    name: str
    arch: str
    reachable: bool
    uname: str | None = None
    native_arch: str | None = None
    docker_version: str | None = None
    docker_arch: str | None = None
    buildx_version: str | None = None
    emulation: tuple[str, ...] = ()
    free_bytes: int | None = None
    matui_bytes: int | None = None
    """Disk used under the login user's ``~/.matui`` (job directories); ``None``: not read."""
    error: str | None = None
    seconds: float = 0.0
    problems: tuple[str, ...] = field(default=())
    failure: str | None = None
    """Why no probe could run (a :class:`HostState` value), None when it ran. ``error`` then
    holds the SSH error's whole message: both fingerprints of a changed key, the command that
    fixes it, what a server that refused the login accepts."""
    registries: tuple[RegistryAccess, ...] = ()
    """Each registry the probe was asked about, as the host sees it."""
    builder: str | None = None
    """The host entry's buildx builder (``builder = "NAME"``); None: the engine's own."""
    builder_driver: str | None = None
    """That builder's driver as ``buildx inspect`` said; None: not read."""
    builder_nodes: tuple[str, ...] = ()
    """That builder's nodes as ``NAME=ARCH`` (each node's own arch; ``?`` when unknown)."""
    cpus: int | None = None
    load: float | None = None
    """The 1-minute load average; None: not read."""
    jobs_running: int | None = None
    """matui jobs building there under this login (any operator's); None: not read."""
    machine: str | None = None
    """A key naming the machine and login: host entries with the same one are one machine."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                safe: object = neutralise(value)
            elif isinstance(value, tuple):
                safe = tuple(neutralise(v) if isinstance(v, str) else v for v in value)
            else:
                continue
            if safe != value:
                object.__setattr__(self, f.name, safe)

    @property
    def builder_line(self) -> str:
        """``builder kube (kubernetes driver; nodes builder-amd64=amd64, builder-arm64=arm64):
        pushes by digest``; empty for a host that builds with the engine's own builder."""
        if self.builder is None:
            return ""
        if self.builder_driver is None:
            return f"builder {self.builder} (not read)"
        how = (
            "pushes by digest"
            if capabilities(self.builder_driver).push_by_digest
            else "pushes per-arch tags"
        )
        nodes = ", ".join(self.builder_nodes) or "no nodes"
        return f"builder {self.builder} ({self.builder_driver} driver; nodes {nodes}): {how}"

    @property
    def usable(self) -> bool:
        """Reachable with a working docker and buildx: it can run builds."""
        return self.reachable and self.error is None

    @property
    def state(self) -> HostState:
        if self.failure is not None:
            try:
                return HostState(self.failure)
            except ValueError:
                pass  # a record from a newer matui: say what this one knows
        if not self.reachable:
            return HostState.UNREACHABLE
        return HostState.BROKEN if self.error is not None else HostState.OK

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["emulation"] = list(self.emulation)
        data["problems"] = list(self.problems)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostProbe:
        """A probe as :meth:`to_json` wrote it (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["emulation"] = tuple(values.get("emulation") or ())
        values["problems"] = tuple(values.get("problems") or ())
        values["builder_nodes"] = tuple(values.get("builder_nodes") or ())
        values["registries"] = tuple(
            RegistryAccess.from_json(r)
            for r in values.get("registries") or ()
            if isinstance(r, dict)
        )
        return cls(**values)


_SECTION_RE = re.compile(r"@@matui:([a-z]+)(?::rc=(\d+))?")
_BUILDX_RE = re.compile(r"github\.com/docker/buildx\s+v?(\S+)")


def split_sections(text: str) -> dict[str, tuple[str, int | None]]:
    """Split probe output into {section: (body, exit code)}; a section cut short has rc None."""
    sections: dict[str, tuple[str, int | None]] = {}
    current: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        match = _SECTION_RE.fullmatch(line.strip())
        if match and match.group(1) in PROBE_SECTIONS:
            name, rc = match.group(1), match.group(2)
            if rc is None:
                current, body = name, []
            elif name == current:
                sections[name] = ("\n".join(body), int(rc))
                current = None
            continue
        if current is not None:
            body.append(line)
    if current is not None:
        sections[current] = ("\n".join(body), None)
    return sections


def parse_probe(host: HostConfig, text: str, seconds: float = 0.0) -> HostProbe:
    """Turn the probe script's output into facts; every missing piece becomes a named problem."""
    sections = split_sections(text)
    problems: list[str] = []

    def section(name: str) -> str | None:
        body, rc = sections.get(name, ("", None))
        return body.strip() if rc == 0 else None

    uname = section("uname")
    native: str | None = None
    if uname:
        try:
            native = normalise_arch(uname.splitlines()[-1])
        except ArchError:
            problems.append(f"`uname -m` printed {uname!r}, which matui does not know")
    else:
        problems.append("`uname -m` failed")

    docker_version = docker_arch = None
    docker_raw = sections.get("docker", ("", None))[0]
    server = _docker_server(docker_raw)
    if server is None:
        detail = _last_line(docker_raw) or "no output"
        problems.append(f"docker engine not answering: {detail}")
    else:
        docker_version = str(server.get("Version") or "") or None
        try:
            docker_arch = normalise_arch(str(server.get("Arch", "")))
        except ArchError:
            docker_arch = None

    buildx_version = None
    buildx_body = section("buildx")
    match = _BUILDX_RE.search(buildx_body or "")
    if match:
        buildx_version = match.group(1)
    else:
        problems.append("docker buildx plugin missing; install docker-buildx on the host")

    emulation = tuple(
        arch for arch in emulatable_arches((section("binfmt") or "").split()) if arch != native
    )
    free = _free_bytes(section("df") or "")
    matui_bytes = _matui_bytes(sections.get("matui", ("", None))[0])
    registries = parse_registry_access(sections.get("registry", ("", None))[0])
    busy = parse_busy(sections.get("busy", ("", None))[0])
    return HostProbe(
        name=host.name,
        arch=host.arch,
        reachable=True,
        uname=uname.splitlines()[-1] if uname else None,
        native_arch=native,
        docker_version=docker_version,
        docker_arch=docker_arch,
        buildx_version=buildx_version,
        emulation=emulation,
        free_bytes=free,
        matui_bytes=matui_bytes,
        error="; ".join(problems) or None,
        seconds=seconds,
        problems=tuple(problems),
        registries=registries,
        cpus=int(busy["cpus"]) if busy.get("cpus", "").isdigit() and busy["cpus"] != "0" else None,
        load=_float(busy.get("load")),
        jobs_running=int(busy["jobs"]) if busy.get("jobs", "").isdigit() else None,
        machine=busy.get("machine") or None,
    )


def parse_busy(text: str) -> dict[str, str]:
    """The probe's ``busy`` section: ``cpus N``, ``load L``, ``jobs N``, ``machine KEY`` lines
    (the first word of each value); other lines are ignored."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("cpus", "load", "jobs", "machine"):
            found[words[0]] = words[1]
    return found


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _matui_bytes(du: str) -> int | None:
    # `du -sk ~/.matui` ends with "KIB<TAB>PATH" (after any "cannot read" lines, which make its
    # exit code 1 without making the total wrong for what it could read); "0" when there is none.
    lines = du.strip().splitlines()
    words = lines[-1].split() if lines else []
    return int(words[0]) * 1024 if words and words[0].isdigit() else None


def _docker_server(raw: str) -> dict[str, Any] | None:
    # `docker version --format '{{json .}}'` prints one JSON line, then errors on stderr (merged).
    for line in raw.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        server = data.get("Server") if isinstance(data, dict) else None
        if isinstance(server, dict) and server.get("Version"):
            return server
    return None


def _free_bytes(df: str) -> int | None:
    lines = df.splitlines()
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    try:
        return int(fields[3]) * 1024
    except (IndexError, ValueError):
        return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def failed_probe(
    host: HostConfig, state: HostState, message: str, seconds: float = 0.0
) -> HostProbe:
    """The probe of a host no command could run on. ``message`` is whole (an SSH error's: both
    fingerprints of a changed key, what a server that refused the login accepts)."""
    return HostProbe(
        host.name,
        host.arch,
        reachable=state in _REACHABLE_FAILURES,
        error=message,
        seconds=seconds,
        failure=str(state),
    )


def ssh_state(error: SshError) -> HostState:
    """An SSH error's kind as a host state: an authentication failure is not "unreachable"."""
    try:
        return HostState(error.state)
    except ValueError:
        return HostState.SSH_ERROR


async def probe_host(
    pool: SshPool, host: HostConfig, timeout: float = 30.0, registries: Sequence[str] = ()
) -> HostProbe:
    """Probe one host; ``registries`` (``host[:port]``) are asked about from there."""
    from matui.engine.ssh import SshError

    started = time.monotonic()
    try:
        result = await asyncio.wait_for(pool.run(host, probe_script(registries)), timeout)
    except SshError as exc:
        return failed_probe(host, ssh_state(exc), str(exc), time.monotonic() - started)
    except TimeoutError:
        return failed_probe(
            host,
            HostState.UNREACHABLE,
            f"probe of host '{host.name}' timed out after {timeout:.0f}s. Fix: check that the "
            "host and its sshd answer, then probe again.",
            time.monotonic() - started,
        )
    if result.exit_status is None:
        return failed_probe(
            host,
            HostState.UNREACHABLE,
            f"connection to host '{host.name}' was lost during the probe. Fix: check the host "
            "and probe again.",
            time.monotonic() - started,
        )
    probe = parse_probe(host, result.out_text(), time.monotonic() - started)
    if host.builder is None or not probe.reachable:
        return probe
    return await _with_builder(pool, host, probe, timeout)


async def _with_builder(
    pool: SshPool, host: HostConfig, probe: HostProbe, timeout: float
) -> HostProbe:
    """The probe of a host entry naming a builder: what ``buildx inspect`` says of it."""
    from matui.engine.ssh import SshError

    assert host.builder is not None
    try:
        result = await asyncio.wait_for(
            pool.run(host, builder_inspect_script(host.builder)), timeout
        )
        text = result.out_text() if result.ok else ""
        error = "" if result.ok else _last_line(result.err_text() or result.out_text())
    except (SshError, TimeoutError) as exc:
        text, error = "", str(exc) or "timed out"
    return builder_probe(host, probe, text, error)


def builder_probe(host: HostConfig, probe: HostProbe, text: str, error: str = "") -> HostProbe:
    """``probe`` with the host's builder read from ``buildx inspect``'s output (``text``, or
    ``error`` when the command failed); a builder that cannot build the host's arch on a node
    of that arch (unless the host allows emulation) is a problem of the host: the plan passes
    it over and says why. Any driver is driven: the docker driver as a docker context pushing
    per-arch tags, the others pushing by digest (:func:`~matui.engine.builders.build_route`)."""
    assert host.builder is not None
    problems = list(probe.problems)
    driver: str | None = None
    nodes: tuple[str, ...] = ()
    try:
        info = parse_inspect(text) if text else None
    except InspectError:
        info = None
    if info is None:
        problems.append(
            f"builder {host.builder}: `docker buildx inspect {host.builder}` failed "
            f"({error or _last_line(text) or 'no output'}); create it on the host or fix "
            "builder in the config"
        )
    else:
        driver = info.driver
        nodes = tuple(f"{n.name}={n.native_arch or '?'}" for n in info.nodes)
        if why := info.refusal(host.arch, allow_emulation=host.allow_emulation):
            problems.append(why)
    return dataclasses.replace(
        probe,
        builder=host.builder,
        builder_driver=driver,
        builder_nodes=nodes,
        problems=tuple(problems),
        error="; ".join(problems) or None,
    )


async def probe_hosts(
    pool: SshPool, hosts: Sequence[HostConfig], registries: Sequence[str] = ()
) -> list[HostProbe]:
    """Probe every host at once; one slow or dead host never holds up the others' answers."""
    return list(
        await asyncio.gather(*(probe_host(pool, host, registries=registries) for host in hosts))
    )
