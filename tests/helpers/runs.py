"""A real :class:`~matui.engine.build.run.BuildRun` over hosts it never dials, its record saved
under the test's directory: unit tests feed it log bytes the way the follower does and read what
the engine makes of them, with no SSH and no rig."""

from __future__ import annotations

from pathlib import Path

from matui.engine.arch import Platform
from matui.engine.build.run import MAX_QUEUED_LINES, BuildRun
from matui.engine.config import Config, HostConfig, ImageConfig
from matui.engine.plan import BuildJob, BuildPlan
from matui.engine.records import JobRecord, RunRecord
from matui.engine.ssh import SshPool


def offline_run(
    tmp_path: Path,
    repo: str,
    arches: tuple[str, ...],
    max_queued_lines: int = MAX_QUEUED_LINES,
) -> BuildRun:
    """``repo:1.0`` for ``arches``, one host ``<arch>-1`` each (at a documentation address,
    192.0.2.10), the record under ``tmp_path/state``."""
    hosts = tuple(HostConfig(f"{a}-1", a, "192.0.2.10", user="build") for a in arches)
    platforms = tuple(Platform.parse(f"linux/{a}") for a in arches)
    image = ImageConfig(repo, ("1.0",), tmp_path, platforms)
    jobs = tuple(
        BuildJob(p, f"{p.arch}-1", False, f"1.0-{p.arch}", f"{repo}:1.0-{p.arch}")
        for p in platforms
    )
    record = RunRecord.create(
        tmp_path / "state",
        image=repo,
        tags=["1.0"],
        platforms=[str(p) for p in platforms],
        jobs=[JobRecord.for_job(job) for job in jobs],
    )
    return BuildRun(
        BuildPlan(image, ("1.0",), jobs),
        Config(None, hosts, (image,)),
        SshPool(hosts),
        record,
        max_queued_lines=max_queued_lines,
    )


def feed(run: BuildRun, key: str, data: bytes) -> None:
    """``data`` arriving on job ``key``'s output, as the follower hands it on: written to the
    job's log file and parsed, the file open only while it is fed."""
    status, log = run.status[key], run._logs[key]
    log.file = log.path.open("ab")
    try:
        run._ingest(status, log, data)
    finally:
        log.file.close()
        log.file = None
