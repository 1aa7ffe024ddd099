"""What an image asks of its host's buildx driver: a registry cache and attestations need a
driver with its own BuildKit (docker-container, remote, kubernetes); the ``docker`` driver — the
engine's own builder, and a builder that is a docker context — builds into the engine's image
store and can do neither. The driver is known only once the host is probed (``buildx inspect``
of its builder), so this rule runs in the pre-flight and in ``matui check``, one ERROR per image
and host, naming the driver and what would work (:meth:`Capabilities.problems`).

It also says, for a plan, which jobs push by digest (:func:`job_route`, over
:func:`~matui.engine.builders.build_route`): their per-arch tags are never pushed, so the
tag-overwrite checks leave them out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from matui.engine.builders import DOCKER_DRIVER, BuildRoute, build_route, capabilities
from matui.engine.flags.model import Flag, FlagKind, Severity

if TYPE_CHECKING:
    from matui.engine.config import HostConfig, ImageConfig
    from matui.engine.plan import BuildJob, BuildPlan
    from matui.engine.probe import HostProbe


def job_route(
    image: ImageConfig,
    job: BuildJob,
    hosts: Iterable[HostConfig],
    probes: Iterable[HostProbe] = (),
) -> BuildRoute:
    """How ``job`` of ``image`` leaves its host's builder (the build's flags, the record's
    ``pushed_as``): the host entry's builder, its driver as the host's probe read it."""
    host = next((h for h in hosts if h.name == job.host), None)
    builder = host.builder if host is not None else None
    probe = next((p for p in probes if p.name == job.host), None)
    return build_route(
        builder,
        probe.builder_driver if probe is not None else None,
        repository=image.name,
        arch=job.arch,
        cache=image.cache,
        attestations=image.attestations,
    )


def by_digest_jobs(
    plan: BuildPlan, hosts: Iterable[HostConfig], probes: Iterable[HostProbe] = ()
) -> frozenset[str]:
    """The keys of ``plan``'s jobs that push by digest: no per-arch tag of theirs moves."""
    hosts, probes = list(hosts), list(probes)
    return frozenset(
        job.key for job in plan.jobs if job_route(plan.image, job, hosts, probes).push_by_digest
    )


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
