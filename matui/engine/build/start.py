"""Start a build run, or a release of many images: probe hosts, plan, record, launch.
Shared by the CLI and the dashboard.

A release is one run per image, planned together against one pool (each image's jobs count
on the hosts the next chooses from), pre-flighted together (nothing starts while any image is
refused), recorded with one release id, and launched at once within each host's ``max_jobs``
(:mod:`~matui.engine.build.slots`). A build of one image is a release of one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from matui.engine import shell
from matui.engine.build.failure import HostFacts
from matui.engine.build.run import BuildRun
from matui.engine.build.secrets import read_secrets
from matui.engine.build.slots import HostSlots
from matui.engine.flags import check_hosts
from matui.engine.hostgc import GcReport, collect_garbage
from matui.engine.plan import BuildJob, BuildPlan, PassedOver, PlanError, plan_build, plan_release
from matui.engine.records import JobRecord, JobState, RunRecord, list_runs, new_run_id, state_dir
from matui.engine.registry import RegistryClient, RegistryError

if TYPE_CHECKING:
    from matui.engine.config import Config, HostConfig, ImageConfig
    from matui.engine.flags import CheckReport, Flag
    from matui.engine.probe import HostProbe
    from matui.engine.registry import Manifest
    from matui.engine.ssh import SshPool


class BuildRefused(PlanError):
    """The checks found an error-level flag before anything was built."""

    def __init__(
        self, message: str, flags: Sequence[Flag], passed_over: Sequence[PassedOver] = ()
    ) -> None:
        super().__init__(message)
        self.flags = list(flags)
        self.passed_over = list(passed_over)


class ImageLocked(PlanError):
    """Another run (this operator's or another's, from any machine) is building this image for
    one or more of the planned arches: each host holds one build of an image per arch at a
    time. ``holders`` are ``(job, holder)`` pairs, the holder as the host's lock file says."""

    def __init__(self, holders: Sequence[tuple[BuildJob, shell.ImageHolder]]) -> None:
        self.holders = list(holders)
        runs = sorted({holder.run_id for _, holder in self.holders})
        lines = [
            f"  {job.platform} on {job.host}: held by {holder.line()}"
            for job, holder in self.holders
        ]
        super().__init__(
            "this image is already being built:\n"
            + "\n".join(lines)
            + "\nnot starting a second build of it (both would push the same per-arch tags); "
            + "follow it with "
            + " / ".join(f"`matui attach {run}`" for run in runs)
            + " where it was started, or build again once it has ended"
        )


async def image_holders(
    pool: SshPool, config: Config, plan: BuildPlan
) -> list[tuple[BuildJob, shell.ImageHolder]]:
    """Which planned jobs' image locks are held on their hosts right now, and by whom."""
    names = {
        job.key: shell.image_lock_name(plan.repository, str(job.platform)) for job in plan.jobs
    }

    async def one(host: str) -> list[tuple[BuildJob, shell.ImageHolder]]:
        jobs = [job for job in plan.jobs if job.host == host]
        try:
            result = await pool.run(
                config.host(host), shell.image_lock_status_script([names[j.key] for j in jobs])
            )
        except Exception:  # unreadable now: the launch re-checks under the lock itself
            return []
        held = {h.lock: h for h in shell.parse_image_holders(result.out_text())}
        return [(job, held[names[job.key]]) for job in jobs if names[job.key] in held]

    results = await asyncio.gather(*(one(host) for host in sorted({j.host for j in plan.jobs})))
    return [pair for pairs in results for pair in pairs]


def warm_hosts(image: str, state_root: Path | None = None) -> dict[str, str]:
    """For each platform, the host that built ``image`` for it last (a job that succeeded,
    newest run first): its build cache is warm. The planner prefers it (:func:`plan_build`'s
    ``warm``)."""
    warm: dict[str, str] = {}
    for record in list_runs(state_root or state_dir()):  # newest first
        if record.image != image:
            continue
        for job in record.jobs:
            if job.state is JobState.SUCCEEDED:
                warm.setdefault(job.platform, job.host)
    return warm


def plan_for(
    config: Config,
    image: ImageConfig,
    tags: Sequence[str],
    probes: Sequence[HostProbe],
    state_root: Path | None = None,
) -> BuildPlan:
    """The plan a build would follow now: the engine's one way to plan, for ``matui build``
    and the dashboard's panes before ``b`` alike."""
    warm = warm_hosts(image.name, state_root)
    return plan_build(image, tags, config.hosts, probes, warm=warm)


#: How long a build start waits for the clean-up of its hosts (it runs while the registry is
#: read). A longer one (the first on a host full of old context copies) goes on beside the build.
HOUSEKEEPING_WAIT = 10.0
_background: set[asyncio.Task[GcReport]] = set()


@dataclass(frozen=True)
class PreparedRelease:
    id: str | None
    """Shared by the release's run records (:attr:`RunRecord.release`); None: one image."""
    builds: tuple[PreparedBuild, ...]
    """One per image, in the order the images are configured."""
    probes: tuple[HostProbe, ...]
    slots: HostSlots

    @property
    def runs(self) -> list[BuildRun]:
        return [build.run for build in self.builds]


@dataclass(frozen=True)
class PreparedBuild:
    plan: BuildPlan
    flags: tuple[Flag, ...]
    run: BuildRun
    housekeeping: asyncio.Task[GcReport] | None = None
    """Removing the job directories past their retention from the hosts this run uses."""


def _start_housekeeping(pool: SshPool, hosts: Sequence[HostConfig]) -> asyncio.Task[GcReport]:
    task = asyncio.ensure_future(collect_garbage(pool, hosts))
    _background.add(task)  # the loop keeps only a weak reference to a task
    task.add_done_callback(_background.discard)
    return task


def release_images(config: Config, names: Sequence[str] | None = None) -> list[ImageConfig]:
    """The images a release builds: the ones named (each as ``--image`` resolves it, a unique
    prefix will do; each once), else every configured image, in config order."""
    if not names:
        if not config.images:
            config.image(None)  # raises the "no images are configured" error with its fix
        return list(config.images)
    chosen: list[ImageConfig] = []
    for name in names:
        image = config.image(name)
        if image not in chosen:
            chosen.append(image)
    return [image for image in config.images if image in chosen]


async def start_build(
    config: Config,
    pool: SshPool,
    *,
    image: str | None = None,
    tags: Sequence[str] | None = None,
    state_root: Path | None = None,
    registry: RegistryClient | None = None,
) -> PreparedBuild:
    """Probe every host, plan the jobs natively, check the registry, record the run and launch
    every job at once: :func:`start_release` of one image (``image``; None: the only one).

    Raises :class:`~matui.engine.plan.PlanError` when a platform has no host,
    :class:`ImageLocked` when another run is building this image for a planned arch, and
    :class:`~matui.engine.plan.BuildRefused` (carrying the flags) when a check says the build
    must not start, e.g. a per-arch push would land on a tag that holds a multi-arch index.
    """
    name = config.image(image).name
    release = await start_release(
        config, pool, images=[name], tags=tags, state_root=state_root, registry=registry
    )
    return release.builds[0]


async def start_release(
    config: Config,
    pool: SshPool,
    *,
    images: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    state_root: Path | None = None,
    registry: RegistryClient | None = None,
) -> PreparedRelease:
    """Build the images named (else every configured one) at once: probe every host once,
    plan every image against the one pool, check each image's tags and base images, record one
    run per image (sharing a release id when there are several) and launch them all; jobs past
    a host's ``max_jobs`` wait for a slot there. The plan names each host it passed over and
    why (:attr:`~matui.engine.plan.BuildPlan.passed_over`).

    Nothing starts unless every image may: raises :class:`~matui.engine.plan.PlanError`,
    :class:`ImageLocked` or :class:`BuildRefused` as :func:`start_build` does, naming the
    image when there are several.
    """
    image_configs = release_images(config, images)
    many = len(image_configs) > 1
    # A secret that cannot be read stops the build before anything is probed or started.
    secret_values = [read_secrets(config, image) for image in image_configs]
    registry = registry or RegistryClient()
    # The probe also asks each host for its way to the registry (reach, login) and its disk.
    registries = list(dict.fromkeys(i.repository().registry for i in image_configs))
    report = await check_hosts(pool, config.hosts, registries)
    plans = plan_release(
        [(image, tuple(tags) if tags else tuple(image.tags)) for image in image_configs],
        config.hosts,
        report.probes,
        warm=lambda image: warm_hosts(image.name, state_root),
    )
    used = {job.host for plan in plans for job in plan.jobs}
    # One build of an image per arch at a time: a held lock refuses the whole run before
    # anything is uploaded (the launch checks again under the lock itself, for two starts).
    held = await asyncio.gather(*(image_holders(pool, config, plan) for plan in plans))
    if holders := [pair for pairs in held for pair in pairs]:
        raise ImageLocked(holders)
    # Job directories past their retention go while the registry is read: the SSH connections
    # are idle meanwhile, so a host allowing one session at a time is not asked for two.
    housekeeping = _start_housekeeping(pool, [h for h in config.hosts if h.name in used])
    checked = await asyncio.gather(*(_check_plan(config, plan, report, registry) for plan in plans))
    refused: list[str] = []
    all_flags: list[Flag] = []
    for plan, (_, flags) in zip(plans, checked, strict=True):
        all_flags += flags
        for flag in flags:
            if flag.severity == "error":
                where = f"{plan.image.name}: " if many else ""
                refused.append(f"  {where}{flag.kind} {flag.subject}: {flag.message}")
    if refused:
        raise BuildRefused(
            "not starting the build:\n" + "\n".join(refused),
            all_flags,
            [p for plan in plans for p in plan.passed_over],
        )
    release_id = new_run_id() if many else None
    probes = {probe.name: probe for probe in report.probes}
    records = []
    for plan, (state, flags) in zip(plans, checked, strict=True):
        image_config = plan.image
        records.append(
            RunRecord.create(
                state_root or state_dir(),
                image=image_config.name,
                tags=plan.tags,
                platforms=[str(p) for p in image_config.platforms],
                config=str(config.path) if config.path else None,
                context=str(image_config.context),
                hosts=list(report.probes),
                flags=list(flags),
                release=release_id,
                jobs=[
                    JobRecord.for_job(
                        job,
                        arch_tag_before=(m.digest if (m := state.get(job.arch_tag)) else None),
                        # The host as probed now: the failure card shows it after a restart.
                        host_facts=HostFacts.of(
                            job, probes.get(job.host), config.host(job.host).arch
                        ).to_json(),
                    )
                    for job in plan.jobs
                ],
            )
        )
    await asyncio.wait({housekeeping}, timeout=HOUSEKEEPING_WAIT)
    slots = HostSlots.for_hosts(config.hosts, report.probes)
    builds = []
    for plan, (_, flags), record, secret in zip(
        plans, checked, records, secret_values, strict=True
    ):
        run = BuildRun(plan, config, pool, record, list(report.probes), registry=registry)
        run.secrets = secret
        run.flags = list(flags)
        run.slots = slots
        run.start()
        builds.append(PreparedBuild(plan, tuple(flags), run, housekeeping))
    return PreparedRelease(release_id, tuple(builds), tuple(report.probes), slots)


async def _check_plan(
    config: Config, plan: BuildPlan, report: CheckReport, registry: RegistryClient
) -> tuple[dict[str, Manifest | None], list[Flag]]:
    """One image's pre-flight: its tags as the registry serves them now, and its flags (the
    hosts it uses as probed, the tag and arch checks, its base images for each platform)."""
    from matui.engine.flags import base_image_flags, build_targets, preflight_flags, read_tags

    image_config = plan.image
    repo = image_config.repository()
    try:
        state = await read_tags(registry, repo, [j.arch_tag for j in plan.jobs] + list(plan.tags))
        # The base images are read beside the tags: a FROM without an image for a planned
        # platform refuses the run here, before any job starts.
        checks, bases = await asyncio.gather(
            preflight_flags(plan, registry, hosts=config.hosts, probes=report.probes, state=state),
            base_image_flags(
                image_config, build_targets(plan, config.hosts, report.probes), registry
            ),
        )
        checks += bases
    except RegistryError as exc:
        raise PlanError(f"cannot read {repo} to check the tags before building: {exc}") from exc
    # A misdeclared host this build does not use is `matui check`'s business, not this run's.
    used = {job.host for job in plan.jobs}
    return state, [*(f for f in report.flags if f.subject in used), *checks]
