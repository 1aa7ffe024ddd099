"""Engine ingest over SSH: matui's live follow path against the OpenSSH client, same stream.

On the rig's amd64 sshd a job directory holds a finished ``build.log`` of N generated
buildx-like lines (80 bytes each) while the job's pid is a live process (so the log counts as
still being written). Side by side, alternating order, each with a fresh connection:

* matui: a new :class:`SshPool`, then the runner's own follow (``BuildRun._follow``:
  ``remote.follow_script`` = ``tail -c +1 -F`` on the host, read in 64 KiB chunks through
  ``SshPool.open_process``, each chunk appended to the local log copy, split into lines, decoded,
  fed to the progress parser and handed on as one ``LinesEvent``), while a consumer drains the
  event queue as the dashboard does. The clock stops when the last line's event is read.
* baseline: ``ssh HOST cat build.log > /dev/null`` (connect, read every byte, no line work).

Figure: OpenSSH time / matui time (target >= 0.9).

    . /tmp/matui-rig/env && .venv/bin/python -m benchmarks.engine_ingest [--lines 1000000]
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Figure,
    emit,
    host_job_script,
    median,
    parser,
    remove_run_script,
    rig_env,
    rig_host,
    ssh_argv,
)

JOB = "amd64"


def make_run(host: Any, state: Path, run_id: str, pool: Any) -> Any:
    """A real BuildRun (one job on ``host``) with its record under ``state``."""
    from matui.engine.arch import Platform
    from matui.engine.build.run import BuildRun
    from matui.engine.config import Config, ImageConfig
    from matui.engine.plan import BuildJob, BuildPlan
    from matui.engine.records import JobRecord, JobState, RunRecord

    repo = "127.0.0.1:5000/bench/ingest"
    image = ImageConfig(repo, ("1.0",), state, (Platform.parse("linux/amd64"),))
    platform = Platform.parse("linux/amd64")
    job = BuildJob(platform, host.name, False, "1.0-amd64", f"{repo}:1.0-amd64")
    assert job.key == JOB
    config = Config(None, (host,), (image,))
    record = RunRecord.create(
        state,
        run_id=run_id,
        image=repo,
        tags=["1.0"],
        platforms=["linux/amd64"],
        jobs=[JobRecord.for_job(job, state=JobState.RUNNING)],
    )
    return BuildRun(BuildPlan(image, ("1.0",), (job,)), config, pool, record)


async def through_matui(host: Any, run_id: str, lines: int, pid: int) -> float:
    from matui.engine.build.run import LinesEvent
    from matui.engine.shell import RemoteScript, job_dir
    from matui.engine.ssh import SshPool

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        async with SshPool([host]) as pool:
            run = make_run(host, Path(tmp), run_id, pool)
            status = run.status[JOB]
            status.pid = pid
            log = run._logs[JOB]
            log.file = log.path.open("ab")
            follow = asyncio.create_task(run._follow(host, status, log))
            seen = 0
            events = run.events(until_finished=False)
            while seen < lines:
                # A follow that ends early (the host thinks the build is over) must not hang us.
                get = asyncio.ensure_future(anext(events))
                await asyncio.wait([get, follow], return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    raise SystemExit(f"the follow ended after {seen} of {lines} lines")
                event = get.result()
                if isinstance(event, LinesEvent):
                    seen += len(event.lines)
            elapsed = time.perf_counter() - start
            # The build "ends": the follow stops on the exit file.
            path = shlex.quote(job_dir(run_id, JOB))
            await pool.run(host, RemoteScript(f'cd "$HOME" && echo 0 > {path}/exit\n'))
            await follow
            log.file.close()
            size = run.record.log_path(JOB).stat().st_size
            await pool.run(host, RemoteScript(f'cd "$HOME" && rm -f {path}/exit\n'))
        if seen != lines or size != lines * 81:
            raise SystemExit(f"matui read {seen} lines / {size} bytes, expected {lines}")
        return elapsed


def through_openssh(env: dict[str, str], run_id: str, *options: str) -> float:
    from matui.engine.shell import job_dir

    command = f"cat {shlex.quote(job_dir(run_id, JOB))}/build.log"
    argv = ssh_argv(env, command)
    argv[1:1] = options
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=None)
    args = p.parse_args()
    lines = args.lines or (20_000 if args.small else 1_000_000)
    reps = args.reps or (1 if args.small else 7)
    env = rig_env()
    host = rig_host(env)
    run_id = f"bench-ingest-{secrets.token_hex(4)}"
    setup = host_job_script(run_id, JOB, lines, exit_code=None)
    # A live process standing in for the build, so the follow keeps following.
    setup += "nohup sleep 3600 </dev/null >/dev/null 2>&1 &\necho $! > pid && cat pid\n"
    out = subprocess.run(
        ssh_argv(env, "sh -s"), input=setup, capture_output=True, text=True, check=True
    )
    pid = int(out.stdout.split()[-1])
    matui_times: list[float] = []
    ssh_times: list[float] = []
    gcm_times: list[float] = []  # OpenSSH with the cipher matui negotiates, for reference
    try:
        for i in range(reps):
            for side in ("matui", "ssh") if i % 2 == 0 else ("ssh", "matui"):
                if side == "matui":
                    matui_times.append(asyncio.run(through_matui(host, run_id, lines, pid)))
                else:
                    ssh_times.append(through_openssh(env, run_id))
            gcm_times.append(through_openssh(env, run_id, "-c", "aes128-gcm@openssh.com"))
    finally:
        subprocess.run(
            ssh_argv(env, "sh -s"),
            input=f"kill {pid}\n" + remove_run_script(run_id),
            text=True,
            check=False,
        )
    m, s = median(matui_times), median(ssh_times)
    emit(
        Figure(
            name="engine_ingest",
            what=f"{lines:,} lines ({lines * 81 / 1e6:.0f} MB) over SSH from the rig's sshd, "
            "connect included",
            value=lines / m,
            unit="lines/s",
            baseline="ssh cat > /dev/null",
            baseline_value=lines / s,
            ratio=s / m,
            ratio_text="OpenSSH time / matui time",
            target=">= 0.9x",
            met=s / m >= 0.9,
            detail=f"median of {reps}: matui {m:.3f} s (aes128-gcm), ssh {s:.3f} s (its default "
            f"cipher, chacha20-poly1305; with aes128-gcm {median(gcm_times):.3f} s) "
            f"(matui {', '.join(f'{t:.2f}' for t in matui_times)}; "
            f"ssh {', '.join(f'{t:.2f}' for t in ssh_times)})",
        )
    )


if __name__ == "__main__":
    main()
