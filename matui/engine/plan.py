"""Which host builds which platform.

Natively whenever possible: a host qualifies for a platform when its *probed* native arch (not its
declared one) matches. Emulation is a deliberate exception allowed per host; flagging it is the
checks module's job (:func:`matui.engine.flags.emulation_flags`), not the planner's.

A host the plan does not use is never passed over in silence: :attr:`BuildPlan.passed_over`
names each one and why (its probe's own message when it failed: unreachable, authentication,
host key, no buildx; or its arch), for the CLI, ``--json`` and the dashboard alike.
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
class PassedOver:
    """A configured host the plan does not use, and why, in one line."""

    host: str
    state: str
    """A :class:`~matui.engine.probe.HostState` value when its probe failed; else
    ``wrong-arch``, ``not-needed`` or ``not-probed``."""
    reason: str

    def line(self) -> str:
        return f"not using host {self.host}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "state": self.state, "reason": self.reason}


@dataclass(frozen=True)
class BuildPlan:
    image: ImageConfig
    tags: tuple[str, ...]  # release tags the index goes to; tags[0] names the per-arch tags
    jobs: tuple[BuildJob, ...]
    passed_over: tuple[PassedOver, ...] = ()

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
    used = {job.host for job in jobs}
    passed_over = tuple(
        _passed_over(h, by_name.get(h.name), image, jobs) for h in hosts if h.name not in used
    )
    return BuildPlan(image, tuple(tags), tuple(jobs), passed_over)


def _passed_over(
    host: HostConfig, probe: HostProbe | None, image: ImageConfig, jobs: Sequence[BuildJob]
) -> PassedOver:
    if probe is None:
        return PassedOver(host.name, "not-probed", "it was not probed")
    if not probe.usable:
        state = probe.state
        return PassedOver(host.name, str(state), f"{state.label}: {probe.error or 'no answer'}")
    native = probe.native_arch
    built_on = {job.arch: job for job in jobs}
    if native in built_on:
        job = built_on[native]
        return PassedOver(
            host.name, "not-needed", f"not needed: {job.platform} is built on {job.host}"
        )
    wanted = [p for p in image.platforms if p.arch != native]
    could_emulate = [p for p in wanted if p.arch in probe.emulation]
    if host.allow_emulation and could_emulate:
        names = ", ".join(f"{p} on {built_on[p.arch].host}" for p in could_emulate)
        return PassedOver(host.name, "not-needed", f"not needed: {names}")
    declared = f" (declared {host.arch})" if native != host.arch else ""
    reason = (
        f"wrong arch: it is {native or 'of unknown arch'}{declared} and the image builds "
        + ", ".join(str(p) for p in image.platforms)
    )
    if could_emulate:
        reason += "; it could emulate " + ", ".join(p.arch for p in could_emulate)
        reason += " but allow_emulation is off"
    elif host.allow_emulation and wanted:
        reason += "; it has allow_emulation = true but no QEMU handler for " + ", ".join(
            p.arch for p in wanted
        )
    return PassedOver(host.name, "wrong-arch", reason)


def _no_host_message(
    platform: Platform, hosts: Sequence[HostConfig], probes: dict[str, HostProbe]
) -> str:
    """Why no host builds ``platform``, host by host, and the fix that fits: a candidate host
    that failed its probe carries its own fix (a changed host key is not fixed by adding a
    host), and allow_emulation is suggested only where it is not set already."""
    arch = platform.arch
    detail = []
    broken_candidate = False
    missing_handler = False
    for h in hosts:
        probe = probes.get(h.name)
        declared = h.arch == arch
        if not (declared or h.allow_emulation or (probe and probe.native_arch == arch)):
            continue
        if probe is None:
            detail.append(f"{h.name} was not probed")
        elif not probe.usable:
            broken_candidate = True
            detail.append(f"{h.name}: {probe.state.label}: {probe.error or 'no answer'}")
        elif declared and probe.native_arch != arch:
            detail.append(f"{h.name} is really {probe.native_arch}")
        elif h.allow_emulation and arch not in probe.emulation:
            missing_handler = True
            detail.append(f"{h.name} has allow_emulation = true but no QEMU handler for {arch}")
    why = f" ({'; '.join(detail)})" if detail else ""
    if broken_candidate:
        # Its message names the fix (trust a key, add a key, raise MaxSessions): adding a host
        # or turning emulation on would only hide the problem.
        return f"{platform}: no reachable {arch} host{why}; fix the host as its message says"
    fixes = [f"add one with `matui host add NAME --arch {arch} --ssh USER@HOST`"]
    if missing_handler:
        fixes.append(f"or install QEMU binfmt handlers for {arch} (qemu-user-static) on it")
    if not any(h.allow_emulation for h in hosts):
        fixes.append("or set allow_emulation = true on a host to build it under QEMU")
    return f"{platform}: no reachable {arch} host{why}; " + ", ".join(fixes)


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
