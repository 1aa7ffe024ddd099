"""Start a build run: probe hosts, plan, record, launch. Shared by the CLI and the dashboard."""

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
from matui.engine.flags import check_hosts, has_errors
from matui.engine.hostgc import GcReport, collect_garbage
from matui.engine.plan import BuildJob, BuildPlan, PassedOver, PlanError, plan_build
from matui.engine.records import JobRecord, JobState, RunRecord, list_runs, state_dir
from matui.engine.registry import RegistryClient, RegistryError

if TYPE_CHECKING:
    from matui.engine.config import Config, HostConfig, ImageConfig
    from matui.engine.flags import Flag
    from matui.engine.probe import HostProbe
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
    every job at once. The plan names each host it passed over and why
    (:attr:`~matui.engine.plan.BuildPlan.passed_over`): front ends show it before the build.

    Raises :class:`~matui.engine.plan.PlanError` when a platform has no host,
    :class:`ImageLocked` when another run is building this image for a planned arch, and
    :class:`~matui.engine.plan.BuildRefused` (carrying the flags) when a check says the build
    must not start, e.g. a per-arch push would land on a tag that holds a multi-arch index.
    """
    from matui.engine.flags import base_image_flags, build_targets, preflight_flags, read_tags

    image_config = config.image(image)
    # A secret that cannot be read stops the build before anything is probed or started.
    secret_values = read_secrets(config, image_config)
    run_tags = tuple(tags) if tags else tuple(image_config.tags)
    registry = registry or RegistryClient()
    # The probe also asks each host for its way to the registry (reach, login) and its disk.
    report = await check_hosts(pool, config.hosts, [image_config.repository().registry])
    plan = plan_for(config, image_config, run_tags, report.probes, state_root)
    used = {job.host for job in plan.jobs}
    # One build of an image per arch at a time: a held lock refuses the whole run before
    # anything is uploaded (the launch checks again under the lock, for two starts at once).
    if held := await image_holders(pool, config, plan):
        raise ImageLocked(held)
    # Job directories past their retention go while the registry is read: the SSH connections
    # are idle meanwhile, so a host allowing one session at a time is not asked for two.
    housekeeping = _start_housekeeping(pool, [h for h in config.hosts if h.name in used])
    repo = image_config.repository()
    try:
        state = await read_tags(registry, repo, [j.arch_tag for j in plan.jobs] + list(run_tags))
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
    flags = (*(f for f in report.flags if f.subject in used), *checks)
    if has_errors(flags):
        errors = [f for f in flags if f.severity == "error"]
        raise BuildRefused(
            "not starting the build:\n"
            + "\n".join(f"  {f.kind} {f.subject}: {f.message}" for f in errors),
            flags,
            plan.passed_over,
        )
    probes = {probe.name: probe for probe in report.probes}
    record = RunRecord.create(
        state_root or state_dir(),
        image=image_config.name,
        tags=run_tags,
        platforms=[str(p) for p in image_config.platforms],
        config=str(config.path) if config.path else None,
        context=str(image_config.context),
        hosts=list(report.probes),
        flags=list(flags),
        jobs=[
            JobRecord.for_job(
                job,
                arch_tag_before=(m.digest if (m := state.get(job.arch_tag)) else None),
                # The host as probed now: the failure card shows it, also after a restart.
                host_facts=HostFacts.of(
                    job, probes.get(job.host), config.host(job.host).arch
                ).to_json(),
            )
            for job in plan.jobs
        ],
    )
    await asyncio.wait({housekeeping}, timeout=HOUSEKEEPING_WAIT)
    run = BuildRun(plan, config, pool, record, list(report.probes), registry=registry)
    run.secrets = secret_values
    run.flags = list(flags)
    run.start()
    return PreparedBuild(plan, flags, run, housekeeping)
