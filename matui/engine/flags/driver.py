"""What an image asks of its host's buildx driver: a registry cache and attestations need a
driver with its own BuildKit (docker-container, remote, kubernetes); the ``docker`` driver — the
engine's own builder, and a builder that is a docker context — builds into the engine's image
store and can do neither. The driver is known only once the host is probed (``buildx inspect``
of its builder), so this rule runs in the pre-flight and in ``matui check``, one ERROR per image
and host, naming the driver and what would work (:meth:`Capabilities.problems`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from matui.engine.builders import DOCKER_DRIVER, capabilities
from matui.engine.flags.model import Flag, FlagKind, Severity

if TYPE_CHECKING:
    from matui.engine.config import HostConfig, ImageConfig
    from matui.engine.probe import HostProbe


def driver_flags(
    image: ImageConfig,
    hosts: Iterable[HostConfig],
    probes: Sequence[HostProbe] = (),
    *,
    label: str | None = None,
) -> list[Flag]:
    """ERROR for each of ``hosts`` whose builder's driver cannot honour the image's ``cache``
    or ``attestations``. A host without ``builder`` builds with the engine's own builder (the
    docker driver); a builder the probe could not read is judged by its probe, not here."""
    if not image.cache and not image.attestations:
        return []
    drivers = {p.name: p.builder_driver for p in probes}
    flags: list[Flag] = []
    for host in hosts:
        driver = DOCKER_DRIVER if host.builder is None else drivers.get(host.name)
        if driver is None:
            continue
        problems = capabilities(driver).problems(cache=image.cache, attestations=image.attestations)
        builder = host.builder or "the engine's own builder"
        for problem in problems:
            flags.append(
                Flag(
                    FlagKind.BUILDER_DRIVER,
                    Severity.ERROR,
                    host.name,
                    f"{label + ': ' if label else ''}host {host.name} builds with {builder} "
                    f"({driver} driver): {problem}",
                    {"driver": driver, "builder": host.builder, "image": image.name},
                )
            )
    return flags
