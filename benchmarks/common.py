"""What every benchmark shares: the rig, the machine line, figures, medians, RSS, test logs.

A benchmark module's ``main()`` measures matui and its baseline side by side and hands each
result to :func:`emit`, which prints one ``@@figure {json}`` line for the runner
(``python -m benchmarks``) and one readable line for a person running the module alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FIGURE_PREFIX = "@@figure "


@dataclass
class Figure:
    """One measured figure against its baseline, measured in the same run."""

    name: str
    """Stable identifier (the smoke test checks that every one is printed)."""
    what: str
    value: float
    unit: str
    baseline: str
    """What the baseline is."""
    baseline_value: float
    ratio: float
    """matui against its baseline, oriented as the target is phrased (see ``ratio_text``)."""
    ratio_text: str
    """How the ratio was formed, e.g. ``Log / LogPane time``."""
    target: str
    met: bool
    detail: str = ""


def emit(figure: Figure) -> None:
    print(FIGURE_PREFIX + json.dumps(asdict(figure)), flush=True)
    print(
        f"  {figure.name}: {fmt(figure.value, figure.unit)} vs {figure.baseline} "
        f"{fmt(figure.baseline_value, figure.unit)} -> {figure.ratio:.2f}x ({figure.ratio_text}); "
        f"target {figure.target}: {'met' if figure.met else 'MISSED'}"
        + (f"; {figure.detail}" if figure.detail else ""),
        file=sys.stderr,
        flush=True,
    )


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        if value < 1:
            return f"{value:.3f} ms"
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "lines/s":
        return f"{value / 1e6:.2f} M lines/s" if value >= 1e6 else f"{value / 1e3:.0f} k lines/s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "B/line":
        return f"{value:.1f} B/line"
    return f"{value:g} {unit}"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--small", action="store_true", help="tiny sizes: prove it runs (CI)")
    p.add_argument("--reps", type=int, default=None, help="repetitions (median reported)")
    return p


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores{mem}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settle_memory() -> int:
    """RSS after a full collection (and, with glibc, handing free heap back to the OS)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return rss_bytes()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# -- buildx-like log lines ---------------------------------------------------------------------

LINE_BYTES = 80


def log_line(i: int, tag: int = 0) -> str:
    """Line ``i`` of a generated buildx plain-progress log: exactly 80 ASCII characters."""
    head = f"#{5 + i // 4000} {i * 0.0007:.3f} "
    body = f"[{tag}] cc -O2 -fPIC -c src/module_{i:07d}.c -o obj/module_{i:07d}.o "
    return (head + body).ljust(LINE_BYTES, ".")[:LINE_BYTES]


def log_batches(count: int, batch: int, tag: int = 0) -> Iterator[list[str]]:
    for start in range(0, count, batch):
        yield [log_line(i, tag) for i in range(start, min(count, start + batch))]


AWK_LOG = (
    # The same lines as log_line(i, 0), written by awk on a host (Python need not be there).
    "awk -v n={n} 'BEGIN {{ for (i = 0; i < n; i++) {{"
    ' s = sprintf("#%d %.3f [0] cc -O2 -fPIC -c src/module_%07d.c -o obj/module_%07d.o ",'
    " 5 + int(i / 4000), i * 0.0007, i, i);"
    ' while (length(s) < 80) s = s "."; print substr(s, 1, 80) }} }}\''
)
"""A POSIX sh command printing ``n`` generated log lines (format with ``n=``)."""


# -- the rig -----------------------------------------------------------------------------------


def rig_env() -> dict[str, str]:
    """The values ``rig/rig up`` wrote to ``$MATUI_RIG_DIR/env``."""
    rig_dir = Path(os.environ.get("MATUI_RIG_DIR", "/tmp/matui-rig"))
    path = rig_dir / "env"
    if not path.is_file():
        sys.exit(f"rig not up ({path} is missing): run `bash rig/rig up` as root")
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value
    os.environ.setdefault("DOCKER_HOST", values.get("DOCKER_HOST", ""))
    return values


def rig_host(env: dict[str, str], name: str = "amd64-1") -> Any:
    from matui.engine.config import HostConfig

    return HostConfig(
        name,
        "amd64",
        "127.0.0.1",
        port=int(env["MATUI_RIG_PORT_AMD64"]),
        user=env["MATUI_RIG_USER"],
        identity=Path(env["MATUI_RIG_KEY"]),
        known_hosts=Path(env["MATUI_RIG_KNOWN_HOSTS"]),
    )


def ssh_argv(env: dict[str, str], command: str, *, port: str | None = None) -> list[str]:
    """The OpenSSH client running ``command`` on a rig host (the amd64 one by default)."""
    return [
        "ssh",
        "-p",
        port or env["MATUI_RIG_PORT_AMD64"],
        "-i",
        env["MATUI_RIG_KEY"],
        "-o",
        f"UserKnownHostsFile={env['MATUI_RIG_KNOWN_HOSTS']}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        f"{env['MATUI_RIG_USER']}@127.0.0.1",
        command,
    ]


def host_job_script(run_id: str, job: str, lines: int, *, exit_code: int | None = 0) -> str:
    """A POSIX sh script making a finished job directory on a host, as a build leaves it:
    ``build.log`` of ``lines`` generated lines, ``pid``, ``exit`` and ``metadata.json``."""
    from matui.engine.shell import job_dir

    path = shlex.quote(job_dir(run_id, job))
    digest = "sha256:" + "ab" * 32
    steps = [
        f'cd "$HOME" && mkdir -p {path} && cd {path}',
        AWK_LOG.format(n=int(lines)) + " > build.log",
        "echo 1 > pid",
        f'printf \'{{"containerimage.digest": "{digest}"}}\' > metadata.json',
    ]
    if exit_code is not None:
        steps.append(f"echo {int(exit_code)} > exit")
    return " && ".join(steps) + "\n"


def remove_run_script(run_id: str) -> str:
    from matui.engine.shell import RUNS_DIR, check_value

    return f'cd "$HOME" && rm -rf {shlex.quote(RUNS_DIR + "/" + check_value(run_id))}\n'


# -- the suite ---------------------------------------------------------------------------------

SUITE: dict[str, tuple[str, ...]] = {
    # module (under benchmarks/) -> the figures it prints, in the order of the report
    "tui_ingest": ("tui_ingest", "tui_key_p99", "tui_memory"),
    "dashboard_flood": (
        "dashboard_ingest",
        "dashboard_ingest_keys",
        "dashboard_key_flood_p99",
        "dashboard_key_idle_p99",
    ),
    "engine_ingest": ("engine_ingest",),
    "reattach": ("reattach_catch_up",),
    "search": ("search_first", "search_all", "search_backtrack_ui_hold"),
    "manifest_push": ("manifest_push",),
    "startup": ("startup_help", "startup_first_paint"),
    "memory": ("memory_1gb",),
    "build_overhead": ("build_overhead", "build_overhead_200k"),
    "release_scale": (
        "release_wall",
        "release_cpu",
        "release_rss",
        "release_plan",
        "release_plan_100x50",
        "release_first_paint",
        "release_log_per_line",
    ),
}
"""Every benchmark of ``python -m benchmarks`` and the figure names it must print."""

FIGURES = tuple(name for names in SUITE.values() for name in names)
