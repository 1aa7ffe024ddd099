"""`matui check`: probe every registered host and flag what is not what it claims to be."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from matui.engine.flags import Flag, has_errors, host_arch_flags
from matui.engine.probe import HostProbe, probe_hosts

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.ssh import SshPool


@dataclass(frozen=True)
class CheckReport:
    probes: tuple[HostProbe, ...]
    flags: tuple[Flag, ...]

    @property
    def ok(self) -> bool:
        """Every host reachable and able to build, and no error-level flag."""
        return all(probe.usable for probe in self.probes) and not has_errors(self.flags)

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": [probe.to_json() for probe in self.probes],
            "flags": [flag.to_json() for flag in self.flags],
        }


async def check_hosts(pool: SshPool, hosts: Sequence[HostConfig]) -> CheckReport:
    probes = await probe_hosts(pool, hosts)
    return CheckReport(tuple(probes), tuple(host_arch_flags(probes)))
