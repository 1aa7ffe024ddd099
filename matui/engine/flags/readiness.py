"""Whether each builder host can finish a build it starts: room on its disk, and a way to push
to the registry. Pure rules over probes (:class:`~matui.engine.probe.HostProbe`); the probe
asks the host (:func:`matui.engine.shell.probe_script`).

Both fail late without these checks: a full disk after minutes of building (``no space left on
device``), a push refused or unreachable after the whole build. The subject of every flag is
the host's name, so a build refuses only over the hosts it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from matui.engine.config import format_size
from matui.engine.flags.model import Flag, FlagKind, Severity

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.probe import HostProbe, RegistryAccess

#: What curl's exit codes mean when the registry did not answer (the ones a push meets).
_CURL_EXITS = {
    5: "the proxy's name does not resolve",
    6: "the registry's name does not resolve",
    7: "the connection was refused",
    28: "the connection timed out",
    35: "the TLS handshake failed",
    52: "the registry closed the connection without answering",
    56: "the connection was reset",
}


def disk_floor_flags(hosts: Sequence[HostConfig], probes: Sequence[HostProbe]) -> list[Flag]:
    """ERROR for each host whose free disk (where its docker keeps its data) is below its
    ``min_free_disk``; a host whose free space was not read is not judged."""
    floors = {host.name: host.min_free_disk for host in hosts}
    flags: list[Flag] = []
    for probe in probes:
        floor = floors.get(probe.name, 0)
        if not floor or probe.free_bytes is None or probe.free_bytes >= floor:
            continue
        flags.append(
            Flag(
                FlagKind.DISK_SPACE,
                Severity.ERROR,
                probe.name,
                f"host {probe.name} has {format_size(probe.free_bytes)} free where its docker "
                f"keeps its data, below the floor of {format_size(floor)} (min_free_disk); "
                f"free space there (`matui gc`, `docker system prune` or `docker builder "
                f"prune` on {probe.name}), or lower min_free_disk",
                {"free_bytes": probe.free_bytes, "min_free_disk": floor},
            )
        )
    return flags


def _why_unreachable(access: RegistryAccess) -> str:
    if access.tool == "curl" and access.exit_code in _CURL_EXITS:
        return f"{_CURL_EXITS[access.exit_code]} (curl exit {access.exit_code})"
    return f"no answer from its /v2/ ({access.tool} exit {access.exit_code})"


def push_access_flags(probes: Sequence[HostProbe], registries: Sequence[str]) -> list[Flag]:
    """For each host and each registry it must push to: ERROR when the host cannot reach the
    registry, or the registry asks for a login (``/v2/`` answers 401) and the host's docker
    has none; INFO when the host has neither curl nor wget to ask with. A host the probe did
    not reach is not judged here (its probe says why)."""
    flags: list[Flag] = []
    for probe in probes:
        found = {access.registry: access for access in probe.registries}
        for registry in dict.fromkeys(registries):
            access = found.get(registry)
            if access is None:
                continue
            evidence = {
                "registry": registry,
                "status": access.status,
                "tool": access.tool,
                "exit_code": access.exit_code,
                "credentials": access.has_credentials,
            }
            if access.tool is None:
                flags.append(
                    Flag(
                        FlagKind.PUSH_ACCESS,
                        Severity.INFO,
                        probe.name,
                        f"could not check that host {probe.name} reaches registry {registry}: "
                        "it has neither curl nor wget",
                        evidence,
                    )
                )
            elif access.status is None:
                flags.append(
                    Flag(
                        FlagKind.PUSH_ACCESS,
                        Severity.ERROR,
                        probe.name,
                        f"host {probe.name} cannot reach registry {registry}: "
                        f"{_why_unreachable(access)}; its push would fail — check the host's "
                        f"network, DNS and proxy for {registry}, and the registry name",
                        evidence,
                    )
                )
            elif access.status == 401 and not access.has_credentials:
                flags.append(
                    Flag(
                        FlagKind.PUSH_ACCESS,
                        Severity.ERROR,
                        probe.name,
                        f"registry {registry} asks for a login and the docker on host "
                        f"{probe.name} has none for it; its push would be refused — run "
                        f"`docker login {registry}` on {probe.name} as the user matui logs in as",
                        evidence,
                    )
                )
    return flags
