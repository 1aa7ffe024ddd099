"""Build slots per host, shared by the runs of one release.

A release plans every image at once (:func:`~matui.engine.build.start.start_release`), so
eight images of one arch may land on a two-host pool. A host's ``max_jobs`` caps how many of
them build there at a time: the others wait for a slot, in the order they were planned,
instead of all starting and fighting over one engine's CPU and disk. Host entries that are
one machine (the same probed ``machine``) share one count, as the planner counts them.

No cap (``max_jobs`` unset) means no waiting. The jobs other runs had running on a host when
it was probed take slots too: they were counted by the planner, and this release does not
see them end, so the cap left for the release is ``max_jobs`` minus them (at least one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matui.engine.config import HostConfig
    from matui.engine.probe import HostProbe


class HostSlots:
    """How many of a release's jobs may build on each host at once, and the waiting."""

    def __init__(self, caps: Mapping[str, int | None], machines: Mapping[str, str]) -> None:
        self._caps = dict(caps)
        self._machines = dict(machines)
        self._used: dict[str, int] = {}
        self._changed = asyncio.Condition()

    @classmethod
    def for_hosts(cls, hosts: Sequence[HostConfig], probes: Sequence[HostProbe]) -> HostSlots:
        by_name = {probe.name: probe for probe in probes}
        caps: dict[str, int | None] = {}
        machines: dict[str, str] = {}
        for host in hosts:
            probe = by_name.get(host.name)
            machines[host.name] = (probe.machine if probe else None) or f"host:{host.name}"
            if host.max_jobs is None:
                caps[host.name] = None
            else:
                others = (probe.jobs_running or 0) if probe else 0
                caps[host.name] = max(1, host.max_jobs - others)
        return cls(caps, machines)

    def cap(self, host: str) -> int | None:
        """The release's jobs that may build on ``host`` at once; None: no cap."""
        return self._caps.get(host)

    def in_use(self, host: str) -> int:
        return self._used.get(self._machine(host), 0)

    def free(self, host: str) -> bool:
        cap = self.cap(host)
        return cap is None or self.in_use(host) < cap

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of ``host``'s slots for the block (waiting for one first)."""
        machine = self._machine(host)
        async with self._changed:
            await self._changed.wait_for(lambda: self.free(host))
            self._used[machine] = self._used.get(machine, 0) + 1
        try:
            yield
        finally:
            async with self._changed:
                self._used[machine] -= 1
                self._changed.notify_all()

    def _machine(self, host: str) -> str:
        return self._machines.get(host) or f"host:{host}"
