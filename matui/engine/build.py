"""Start a build run: probe hosts, plan, record, launch. Shared by the CLI and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from matui.engine.check import check_hosts
from matui.engine.plan import BuildPlan, plan_build
from matui.engine.records import RunRecord, state_dir
from matui.engine.runner import BuildRun

if TYPE_CHECKING:
    from matui.engine.config import Config
    from matui.engine.flags import Flag
    from matui.engine.ssh import SshPool


@dataclass(frozen=True)
class PreparedBuild:
    plan: BuildPlan
    flags: tuple[Flag, ...]
    run: BuildRun


async def start_build(
    config: Config,
    pool: SshPool,
    *,
    image: str | None = None,
    tags: Sequence[str] | None = None,
    state_root: Path | None = None,
) -> PreparedBuild:
    """Probe every host, plan the jobs natively, record the run and launch every job at once.

    Raises :class:`~matui.engine.plan.PlanError` when a platform has no host.
    """
    image_config = config.image(image)
    run_tags = tuple(tags) if tags else tuple(image_config.tags)
    report = await check_hosts(pool, config.hosts)
    plan = plan_build(image_config, run_tags, config.hosts, report.probes)
    flags = (*report.flags, *plan.flags)
    record = RunRecord.create(
        state_root or state_dir(),
        {
            "image": image_config.name,
            "tags": list(run_tags),
            "config": str(config.path) if config.path else None,
            "context": str(image_config.context),
            "platforms": [str(p) for p in image_config.platforms],
            "hosts": [probe.to_json() for probe in report.probes],
            "flags": [flag.to_json() for flag in flags],
            "jobs": [{**job.to_json(), "key": job.key, "state": "queued"} for job in plan.jobs],
            "state": "running",
        },
    )
    run = BuildRun(plan, config, pool, record, list(report.probes))
    run.start()
    return PreparedBuild(plan, flags, run)
