"""Which host builds which platform.

Natively whenever possible: a host qualifies for a platform when its *probed* native arch (not its
declared one) matches. Emulation is a deliberate exception allowed per host; flagging it is the
checks module's job (:func:`matui.engine.flags.emulation_flags`), not the planner's.

A host the plan does not use is never passed over in silence: :attr:`BuildPlan.passed_over`
names each one and why (its probe's own message when it failed: unreachable, authentication,
host key, no buildx; or its arch), for the CLI, ``--json`` and the dashboard alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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
    reason: str = ""
    """Why the plan put the job on this host (``built this image's linux/amd64 last (cache
    warm)``, ``least busy: 0 matui jobs, load 0.30``); empty: not planned here (a resumed run)."""
    candidates: int = 1
    """How many hosts the job had to choose from: the usable ones that could build it and the
    configured hosts of its arch (a host that is down counts: the plan says why it was not
    chosen); 1: a lone host, nothing to explain."""

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

    def plan_json(self) -> dict[str, Any]:
        """The job as planned: :meth:`to_json` (a job record's fields) and why this host."""
        return {**self.to_json(), "reason": self.reason, "candidates": self.candidates}

    def line(self) -> str:
        """``linux/amd64 on amd64-2: built this image's linux/amd64 last (cache warm)``."""
        how = " (emulated)" if self.emulated else ""
        return f"{self.platform} on {self.host}{how}: {self.reason or 'as recorded'}"


@dataclass(frozen=True)
class PassedOver:
    """A configured host the plan does not use, and why, in one line."""

    host: str
    state: str
    """A :class:`~matui.engine.probe.HostState` value when its probe failed; else
    ``wrong-arch``, ``not-needed``, ``not-probed``, ``disk-low`` or ``at-max-jobs``."""
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
    *,
    warm: Mapping[str, str] | None = None,
    earlier: Mapping[str, int] | None = None,
) -> BuildPlan:
    """Assign each platform of ``image`` to a host of a pool: the hosts that build it natively
    (else those allowed to emulate it), reachable and healthy.

    Among them a host below its ``min_free_disk`` is passed over while another can build the
    platform (when none can, the plan keeps it and the pre-flight's disk-space error refuses the
    build with its fix), and a host already running ``max_jobs`` jobs (matui's, as its probe
    counted them, plus this plan's) is passed over. Then the host that built this image's
    platform last is preferred (``warm``: platform → host, read from the run records by the
    caller, so planning stays pure): its build cache is warm. Then the least busy: fewest matui
    jobs, then lowest load per CPU; ties keep config order. Host entries that are one machine
    (same probed ``machine``) share their jobs and load.

    ``max_jobs`` counts other runs' jobs (as the probe found them): a host full of them is
    passed over. This plan's own jobs (and, in a release (:func:`plan_release`), ``earlier``:
    the jobs its earlier images put on each machine) beyond ``max_jobs`` wait for a slot there
    (:mod:`~matui.engine.build.slots`) instead, and the job's reason says so."""
    if not tags:
        raise PlanError(f"image {image.name} has no tag to build; add tags or pass --tag")
    warm = warm or {}
    by_name = {probe.name: probe for probe in _one_figure_per_machine(probes)}
    order = {host.name: i for i, host in enumerate(hosts)}
    planned: dict[str, int] = dict(earlier or {})  # jobs this plan (release) puts on each machine
    jobs: list[BuildJob] = []
    problems: list[str] = []
    why_not: dict[str, PassedOver] = {}  # the first reason a host lost a platform

    def machine(name: str) -> str:
        return by_name[name].machine or f"host:{name}"

    def jobs_on(name: str) -> int:
        return (by_name[name].jobs_running or 0) + planned.get(machine(name), 0)

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

        def busy_with(name: str) -> int:
            # This run's (release's) own jobs queue for a slot: only others' fill a host.
            return by_name[name].jobs_running or 0

        full = [h for h in pool if h.max_jobs is not None and busy_with(h.name) >= h.max_jobs]
        for h in full:
            why_not.setdefault(
                h.name,
                PassedOver(
                    h.name,
                    "at-max-jobs",
                    f"at max_jobs: {busy_with(h.name)} matui jobs running there "
                    f"(max_jobs = {h.max_jobs})",
                ),
            )
        room = [h for h in pool if h not in full]
        low = [h for h in room if _below_floor(h, by_name[h.name])]
        healthy = [h for h in room if h not in low]
        if healthy:
            for h in low:
                why_not.setdefault(h.name, _disk_low(h, by_name[h.name]))
        else:
            healthy = low  # the disk-space flag refuses the build, naming the host and the fix
        if not healthy:
            if full:
                problems.append(
                    f"{platform}: every host that could build it is at max_jobs ("
                    + "; ".join(why_not[h.name].reason.join((f"{h.name}: ", "")) for h in full)
                    + "); wait for a build there to end, or raise max_jobs"
                )
            else:
                problems.append(_no_host_message(platform, hosts, by_name))
            continue
        ranked = sorted(
            healthy,
            key=lambda h: (
                warm.get(str(platform)) != h.name,
                jobs_on(h.name),
                _load_rank(by_name[h.name]),
                order[h.name],
            ),
        )
        host = ranked[0]
        reason = _reason(platform, host, ranked, by_name, warm, jobs_on, emulated)
        if host.max_jobs is not None and jobs_on(host.name) >= host.max_jobs:
            ahead = jobs_on(host.name)
            reason += (
                f"; waits for a slot there (max_jobs = {host.max_jobs}: {ahead} matui "
                f"job{'' if ahead == 1 else 's'} running or planned before it)"
            )
        for other in ranked[1:]:
            why_not.setdefault(
                other.name,
                PassedOver(
                    other.name,
                    "not-needed",
                    f"not needed: {platform} is built on {host.name}"
                    + _lost(platform, host, other, by_name, warm, jobs_on),
                ),
            )
        planned[machine(host.name)] = planned.get(machine(host.name), 0) + 1
        arch_tag = image.arch_tag_for(tags[0], platform)
        jobs.append(
            BuildJob(
                platform,
                host.name,
                emulated,
                arch_tag,
                f"{image.name}:{arch_tag}",
                reason,
                # The pool as configured: a host of this arch that is down still counts.
                len({h.name for h in pool} | {h.name for h in hosts if h.arch == platform.arch}),
            )
        )
    if problems:
        raise PlanError("\n".join(problems))
    used = {job.host for job in jobs}
    passed_over = tuple(
        why_not.get(h.name) or _passed_over(h, by_name.get(h.name), image, jobs)
        for h in hosts
        if h.name not in used
    )
    return BuildPlan(image, tuple(tags), tuple(jobs), passed_over)


def machine_of(name: str, probes: Sequence[HostProbe]) -> str:
    """The machine a host entry is (entries on one machine share jobs, load and slots)."""
    for probe in probes:
        if probe.name == name and probe.machine:
            return probe.machine
    return f"host:{name}"


def plan_release(
    images: Sequence[tuple[ImageConfig, Sequence[str]]],
    hosts: Sequence[HostConfig],
    probes: Sequence[HostProbe],
    *,
    warm: Callable[[ImageConfig], Mapping[str, str]] | None = None,
) -> list[BuildPlan]:
    """Plan the images of a release (each with its tags) against one pool, jointly: each
    image's jobs count on the hosts the next one chooses from, so eight images spread over a
    pool instead of all landing on its least busy host. Beyond a host's ``max_jobs`` the
    release's jobs wait for a slot there. Raises one :class:`PlanError` naming
    every image that cannot be planned."""
    load: dict[str, int] = {}
    plans: list[BuildPlan] = []
    problems: list[str] = []
    for image, tags in images:
        try:
            plan = plan_build(
                image,
                tags,
                hosts,
                probes,
                warm=warm(image) if warm else None,
                earlier=load,
            )
        except PlanError as exc:
            problems.append(f"{image.name}: {exc}" if len(images) > 1 else str(exc))
            continue
        for job in plan.jobs:
            machine = machine_of(job.host, probes)
            load[machine] = load.get(machine, 0) + 1
        plans.append(plan)
    if problems:
        raise PlanError("\n".join(problems))
    return plans


def _one_figure_per_machine(probes: Sequence[HostProbe]) -> list[HostProbe]:
    """Host entries that are one machine (and login) were probed a moment apart: a job that
    started in between would make one look busier than itself. Each gets the group's highest
    figures, so equal hosts stay equal and config order decides."""
    groups: dict[str, list[HostProbe]] = {}
    for probe in probes:
        if probe.machine:
            groups.setdefault(probe.machine, []).append(probe)
    merged = []
    for probe in probes:
        group = groups.get(probe.machine or "", [])
        if len(group) > 1:
            probe = replace(
                probe,
                jobs_running=max((p.jobs_running or 0) for p in group),
                load=max((p.load for p in group if p.load is not None), default=None),
            )
        merged.append(probe)
    return merged


def _below_floor(host: HostConfig, probe: HostProbe) -> bool:
    floor = host.min_free_disk
    return bool(floor) and probe.free_bytes is not None and probe.free_bytes < floor


def _disk_low(host: HostConfig, probe: HostProbe) -> PassedOver:
    from matui.engine.config import format_size

    assert probe.free_bytes is not None
    return PassedOver(
        host.name,
        "disk-low",
        f"disk below floor: {format_size(probe.free_bytes)} free, "
        f"min_free_disk = {format_size(host.min_free_disk)}",
    )


def _load_rank(probe: HostProbe) -> float:
    """Load per CPU, to a tenth: a wobble in the last digits does not reorder equal hosts."""
    if probe.load is None:
        return 0.0
    return round(probe.load / max(probe.cpus or 1, 1), 1)


def _busy(probe: HostProbe, jobs: int) -> str:
    text = f"{jobs} matui job{'s' if jobs != 1 else ''}"
    if probe.load is not None:
        text += f", load {probe.load:.2f}"
        if probe.cpus:
            text += f" on {probe.cpus} CPUs"
    return text


def _reason(
    platform: Platform,
    host: HostConfig,
    ranked: Sequence[HostConfig],
    probes: Mapping[str, HostProbe],
    warm: Mapping[str, str],
    jobs_on: Callable[[str], int],
    emulated: bool,
) -> str:
    if warm.get(str(platform)) == host.name:
        return f"built this image's {platform} last (cache warm)"
    busy = _busy(probes[host.name], jobs_on(host.name))
    if len(ranked) == 1:
        if emulated:
            return f"the only usable host allowed to emulate {platform.arch} ({busy})"
        return f"the only usable {platform.arch} host ({busy})"
    runner_up = ranked[1]
    if (jobs_on(runner_up.name), _load_rank(probes[runner_up.name])) == (
        jobs_on(host.name),
        _load_rank(probes[host.name]),
    ):
        return f"least busy: {busy}; first in the config of {len(ranked)} equally busy hosts"
    return f"least busy: {busy}"


def _lost(
    platform: Platform,
    winner: HostConfig,
    loser: HostConfig,
    probes: Mapping[str, HostProbe],
    warm: Mapping[str, str],
    jobs_on: Callable[[str], int],
) -> str:
    """Why ``loser`` was not chosen over ``winner``; empty when they were equal."""
    if warm.get(str(platform)) == winner.name:
        return ", which built it last (cache warm)"
    mine, theirs = jobs_on(loser.name), jobs_on(winner.name)
    if mine != theirs:
        return f", which is less busy ({theirs} matui jobs there, {mine} here)"
    load_here, load_there = _load_rank(probes[loser.name]), _load_rank(probes[winner.name])
    if load_here != load_there:
        return f", which is less loaded ({load_there:.1f} per CPU there, {load_here:.1f} here)"
    return ""


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
    """One platform of an index: always its digest (``ref`` is REPO@sha256:...), never a tag."""

    platform: Platform
    digest: str
    ref: str  # REPO@sha256:...
    pushed_as: str | None = None
    """How its job pushed it: ``"by digest"`` (no per-arch tag exists for it) or its per-arch
    tag; None: not recorded (an older run, which pushed the per-arch tag)."""
    served: str | None = None
    """When ``digest`` is an index (a by-digest build with attestations: the image and its
    attestation manifest), the image manifest in it: what the new index serves for
    ``platform`` (``imagetools create`` merges a source index's manifests). None: ``digest``
    is the image manifest itself."""

    @property
    def by_digest(self) -> bool:
        from matui.engine.builders import BY_DIGEST

        return self.pushed_as == BY_DIGEST

    @property
    def platform_digest(self) -> str:
        """The digest the index serves for this platform."""
        return self.served or self.digest


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
                {
                    "platform": str(s.platform),
                    "digest": s.digest,
                    "ref": s.ref,
                    "pushed_as": s.pushed_as,
                }
                for s in self.sources
            ],
        }
