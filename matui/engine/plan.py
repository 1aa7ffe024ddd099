"""Which host builds which platform.

Natively whenever possible: a host qualifies for a platform when its *probed* native arch (not its
declared one) matches. Emulation is a deliberate exception allowed per host; flagging it is the
checks module's job (:func:`matui.engine.flags.emulation_flags`), not the planner's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matui.engine.arch import Platform
    from matui.engine.config import HostConfig, ImageConfig
    from matui.engine.probe import HostProbe
    from matui.engine.refs import Repository


class PlanError(Exception):
    """No way to build a platform; the message names it and what would fix it."""


@dataclass(frozen=True)
class BuildJob:
    platform: Platform
    host: str
    emulated: bool
    arch_tag: str  # the per-arch tag this job pushes, e.g. 1.0-arm64
    ref: str  # REPO:ARCH_TAG

    @property
    def arch(self) -> str:
        return self.platform.arch

    @property
    def key(self) -> str:
        """A slash-free name for files and directories (``armv7``)."""
        return self.platform.tag_arch

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "platform": str(self.platform),
            "host": self.host,
            "emulated": self.emulated,
            "arch_tag": self.arch_tag,
            "ref": self.ref,
        }


@dataclass(frozen=True)
class BuildPlan:
    image: ImageConfig
    tags: tuple[str, ...]  # release tags the index goes to; tags[0] names the per-arch tags
    jobs: tuple[BuildJob, ...]

    @property
    def repository(self) -> str:
        return self.image.name

    def job(self, arch: str) -> BuildJob:
        for job in self.jobs:
            if job.arch == arch or job.key == arch:
                return job
        raise KeyError(arch)


def plan_build(
    image: ImageConfig,
    tags: Sequence[str],
    hosts: Sequence[HostConfig],
    probes: Sequence[HostProbe],
) -> BuildPlan:
    """Assign each platform of ``image`` to a host; spread jobs over equally good hosts."""
    if not tags:
        raise PlanError(f"image {image.name} has no tag to build; add tags or pass --tag")
    by_name = {probe.name: probe for probe in probes}
    load: dict[str, int] = {host.name: 0 for host in hosts}
    jobs: list[BuildJob] = []
    problems: list[str] = []
    for platform in image.platforms:
        usable = [h for h in hosts if (p := by_name.get(h.name)) is not None and p.usable]
        native = [h for h in usable if by_name[h.name].native_arch == platform.arch]
        emulated = False
        if native:
            pool = native
        else:
            pool = [
                h
                for h in usable
                if h.allow_emulation and platform.arch in by_name[h.name].emulation
            ]
            emulated = True
        if not pool:
            problems.append(_no_host_message(platform, hosts, by_name))
            continue
        host = min(pool, key=lambda h: load[h.name])  # min() keeps config order on ties
        load[host.name] += 1
        arch_tag = image.arch_tag_for(tags[0], platform)
        jobs.append(BuildJob(platform, host.name, emulated, arch_tag, f"{image.name}:{arch_tag}"))
    if problems:
        raise PlanError("\n".join(problems))
    return BuildPlan(image, tuple(tags), tuple(jobs))


def _no_host_message(
    platform: Platform, hosts: Sequence[HostConfig], probes: dict[str, HostProbe]
) -> str:
    declared = [h.name for h in hosts if h.arch == platform.arch]
    detail = []
    for name in declared:
        probe = probes.get(name)
        if probe is None:
            detail.append(f"{name} was not probed")
        elif not probe.usable:
            detail.append(f"{name}: {probe.error}")
        elif probe.native_arch != platform.arch:
            detail.append(f"{name} is really {probe.native_arch}")
    why = f" ({'; '.join(detail)})" if detail else ""
    return (
        f"{platform}: no reachable {platform.arch} host{why}; add one with "
        f"`matui host add NAME --arch {platform.arch} --ssh USER@HOST`, or set "
        "allow_emulation = true on a host to build it under QEMU"
    )


@dataclass(frozen=True)
class IndexSource:
    platform: Platform
    digest: str
    ref: str  # REPO@sha256:...


@dataclass(frozen=True)
class IndexPlan:
    repository: Repository
    tags: tuple[str, ...]
    sources: tuple[IndexSource, ...]

    def target(self, tag: str) -> str:
        return self.repository.tag(tag)

    @property
    def source_refs(self) -> list[str]:
        return [s.ref for s in self.sources]

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": str(self.repository),
            "tags": list(self.tags),
            "sources": [
                {"platform": str(s.platform), "digest": s.digest, "ref": s.ref}
                for s in self.sources
            ],
        }
