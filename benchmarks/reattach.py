"""Reattach catch-up: the dashboard picks up a run whose host holds a 1 M-line backlog.

On the rig's amd64 sshd a job directory holds what a build that ran while matui was away leaves:
a ``build.log`` of N generated buildx-like lines (80 bytes), its ``exit`` file and metadata.
Locally, the run's record says it is still running and nothing of its log was received yet.

* matui: the real dashboard (``MatuiApp``, headless, 120x40, ``resume_on_start``) from start to
  the moment ``LogStore.search`` in the job's pane finds the log's last line: start-up, SSH
  connect, the runner's follow and exact catch-up, lines into the pane.
* baseline: ``ssh HOST cat build.log > /dev/null`` (connect and read the same bytes).

Side by side, alternating, median of several repetitions. Target: <= 1 s (issue 14).

    . /tmp/matui-rig/env && .venv/bin/python -m benchmarks.reattach [--lines 1000000]
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
    log_line,
    median,
    parser,
    remove_run_script,
    rig_env,
    rig_host,
    ssh_argv,
)

JOB = "amd64"
REPO = "127.0.0.1:5000/bench/reattach"


def config_for(host: Any, root: Path) -> Any:
    from matui.engine.arch import Platform
    from matui.engine.config import Config, ImageConfig

    image = ImageConfig(REPO, ("1.0",), root, (Platform.parse("linux/amd64"),))
    return Config(None, (host,), (image,))


def record_for(state: Path, run_id: str, host: Any) -> None:
    """The local record of a run an earlier matui left while it was building."""
    from matui.engine.arch import Platform
    from matui.engine.plan import BuildJob
    from matui.engine.records import JobRecord, JobState, RunRecord

    job = BuildJob(
        Platform.parse("linux/amd64"), host.name, False, "1.0-amd64", f"{REPO}:1.0-amd64"
    )
    assert job.key == JOB
    RunRecord.create(
        state,
        run_id=run_id,
        image=REPO,
        tags=["1.0"],
        platforms=["linux/amd64"],
        jobs=[JobRecord.for_job(job, state=JobState.RUNNING, pid=1)],
    )


async def through_dashboard(config: Any, state: Path, lines: int) -> float:
    from matui.ui.app import MatuiApp
    from matui.ui.widgets.log_pane import LogPane

    last = log_line(lines - 1)
    app = MatuiApp(config, probe_on_start=False, resume_on_start=True, state_root=state)
    start = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = start + 120
        while True:
            await pilot.pause(0.005)
            if time.perf_counter() > deadline:
                raise SystemExit("the backlog did not reach the pane within 120 s")
            panes = list(app.query(f"#pane-{JOB} LogPane").results(LogPane))
            if not panes:
                continue
            store = panes[0].store
            if len(store) >= lines and store.search(last, regex=False) == lines - 1:
                elapsed = time.perf_counter() - start
                break
        if len(store) != lines:
            raise SystemExit(f"the pane holds {len(store)} lines, expected {lines}")
        # Let the run end (outcome, post-build registry check) before the app is torn down.
        while app.ended is None and time.perf_counter() < deadline:
            await pilot.pause(0.01)
    return elapsed


def through_openssh(env: dict[str, str], run_id: str) -> float:
    from matui.engine.shell import job_dir

    command = f"cat {shlex.quote(job_dir(run_id, JOB))}/build.log"
    start = time.perf_counter()
    subprocess.run(ssh_argv(env, command), stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def copy_job_script(source_run: str, run_id: str) -> str:
    """A fresh job directory sharing the generated log (a hard link) and its end files."""
    from matui.engine.shell import job_dir

    src = shlex.quote(job_dir(source_run, JOB))
    dst = shlex.quote(job_dir(run_id, JOB))
    files = " ".join(f"{src}/{name}" for name in ("build.log", "exit", "pid", "metadata.json"))
    return f'cd "$HOME" && mkdir -p {dst} && cp -l {files} {dst}/\n'


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=None)
    args = p.parse_args()
    lines = args.lines or (20_000 if args.small else 1_000_000)
    reps = args.reps or (1 if args.small else 5)
    env = rig_env()
    host = rig_host(env)
    token = secrets.token_hex(4)
    source = f"bench-reattach-{token}"
    runs = [f"{source}-{i}" for i in range(reps)]
    setup = host_job_script(source, JOB, lines, exit_code=0)
    setup += "".join(copy_job_script(source, run) for run in runs)
    subprocess.run(ssh_argv(env, "sh -s"), input=setup, text=True, check=True)
    matui_times: list[float] = []
    ssh_times: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            config = config_for(host, root)
            for i, run_id in enumerate(runs):
                state = root / f"state-{i}"
                record_for(state, run_id, host)
                for side in ("matui", "ssh") if i % 2 == 0 else ("ssh", "matui"):
                    if side == "matui":
                        matui_times.append(asyncio.run(through_dashboard(config, state, lines)))
                    else:
                        ssh_times.append(through_openssh(env, source))
    finally:
        cleanup = "".join(remove_run_script(run) for run in [source, *runs])
        subprocess.run(ssh_argv(env, "sh -s"), input=cleanup, text=True, check=False)
    m, s = median(matui_times), median(ssh_times)
    emit(
        Figure(
            name="reattach_catch_up",
            what=f"{lines:,}-line backlog on the host searchable in the dashboard's pane",
            value=m,
            unit="s",
            baseline="ssh cat > /dev/null",
            baseline_value=s,
            ratio=m / s,
            ratio_text="matui time / OpenSSH time",
            target="<= 1 s",
            met=m <= 1.0,
            detail=f"median of {reps} (matui {', '.join(f'{t:.2f}' for t in matui_times)}; "
            f"ssh {', '.join(f'{t:.2f}' for t in ssh_times)})",
        )
    )


if __name__ == "__main__":
    main()
