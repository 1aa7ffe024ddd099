"""Run every matui benchmark and print each figure against its baseline, machine and date.

    . /tmp/matui-rig/env && .venv/bin/python -m benchmarks            # full size (~10 min)
    .venv/bin/python -m benchmarks --small                            # CI: proves it runs
    .venv/bin/python -m benchmarks --only search,startup
    . /tmp/matui-rig/env && .venv/bin/python -m benchmarks --only release_scale  # 32 builds, ~5 min

Each benchmark runs in its own process (so memory and start-up figures start clean) and measures
matui and its baseline side by side, alternating, in that same run. A missed target is reported,
not an error: the exit status is 1 only when a benchmark fails or a figure is missing. Most
benchmarks need the rig (``bash rig/rig up``): sshd, dockerd + buildx, registry.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.common import FIGURE_PREFIX, FIGURES, SUITE, Figure, fmt, machine, now

ORDER = (
    # CPU-sensitive ones first; the rig-heavy ones last.
    "startup",
    "search",
    "memory",
    "tui_ingest",
    "engine_ingest",
    "reattach",
    "manifest_push",
    "build_overhead",
    "release_scale",
)
assert set(ORDER) == set(SUITE)


def run_module(name: str, small: bool) -> tuple[list[Figure], str]:
    """Run one benchmark in a fresh process; its figures and everything else it printed."""
    if name == "build_overhead":
        return run_build_overhead(small)
    argv = [sys.executable, "-m", f"benchmarks.{name}", *(["--small"] if small else [])]
    out = subprocess.run(argv, capture_output=True, text=True)
    figures = [
        Figure(**json.loads(line[len(FIGURE_PREFIX) :]))
        for line in out.stdout.splitlines()
        if line.startswith(FIGURE_PREFIX)
    ]
    other = "\n".join(
        line for line in out.stdout.splitlines() if not line.startswith(FIGURE_PREFIX)
    )
    log = (other + "\n" + out.stderr).strip()
    if out.returncode != 0:
        raise RuntimeError(f"benchmarks.{name} exited {out.returncode}:\n{log[-3000:]}")
    return figures, log


def run_build_overhead(small: bool) -> tuple[list[Figure], str]:
    """benchmarks/build_overhead.py prints text: read its medians back."""
    script = Path(__file__).with_name("build_overhead.py")
    argv = [sys.executable, str(script), "--rounds", "1" if small else "5"]
    out = subprocess.run(argv, capture_output=True, text=True)
    log = (out.stdout + "\n" + out.stderr).strip()
    if out.returncode != 0:
        raise RuntimeError(f"build_overhead.py exited {out.returncode}:\n{log[-3000:]}")
    found = re.search(
        r"median of (\d+): matui ([\d.]+)s, buildx over ssh by hand ([\d.]+)s", out.stdout
    )
    if not found:
        raise RuntimeError(f"cannot read build_overhead.py's result:\n{log[-3000:]}")
    rounds, m, h = int(found[1]), float(found[2]), float(found[3])
    figure = Figure(
        name="build_overhead",
        what="two-arch build (amd64 native, arm64 under QEMU) through matui",
        value=m,
        unit="s",
        baseline="same buildx over ssh by hand",
        baseline_value=h,
        ratio=m / h,
        ratio_text="matui time / by-hand time",
        target="<= 1.05x",
        met=m / h <= 1.05,
        detail=f"median of {rounds} (benchmarks/build_overhead.py)",
    )
    return [figure], log


def table(figures: list[Figure]) -> str:
    head = ("figure", "matui", "baseline", "ratio", "target", "")
    rows = [
        (
            f.name,
            fmt(f.value, f.unit),
            f"{fmt(f.baseline_value, f.unit)} ({f.baseline})",
            f"{f.ratio:.2f}x",
            f.target,
            "met" if f.met else "MISSED",
        )
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    title = "  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()
    return "\n".join([title, "-" * len(title), *lines])


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="tiny sizes: prove every benchmark runs")
    p.add_argument("--only", help="comma-separated benchmarks: " + ", ".join(ORDER))
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args()
    chosen = [n for n in ORDER if not args.only or n in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(ORDER) if args.only else set()
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    command = "python -m benchmarks" + (" --small" if args.small else "")
    started = time.time()
    print(f"matui benchmarks: {command}", flush=True)
    print(f"machine: {machine()}", flush=True)
    print(f"date: {now()}", flush=True)
    results: dict[str, Figure] = {}
    failures: list[str] = []
    for name in chosen:
        t0 = time.perf_counter()
        print(f"\n== {name}", flush=True)
        try:
            figures, log = run_module(name, args.small)
        except RuntimeError as exc:
            failures.append(name)
            print(f"FAILED: {exc}", flush=True)
            continue
        for figure in figures:
            results[figure.name] = figure
            print(
                f"  {figure.name}: {figure.what}: {fmt(figure.value, figure.unit)}; "
                f"{figure.baseline} {fmt(figure.baseline_value, figure.unit)}; "
                f"{figure.ratio_text} {figure.ratio:.2f}x; target {figure.target}: "
                f"{'met' if figure.met else 'MISSED'}"
                + (f" ({figure.detail})" if figure.detail else ""),
                flush=True,
            )
        missing = [f for f in SUITE[name] if f not in results]
        if missing:
            failures.append(name)
            print(f"  MISSING figures: {', '.join(missing)}\n{log[-3000:]}", flush=True)
        print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)

    ordered = [results[f] for f in FIGURES if f in results]
    print(f"\nmatui benchmarks: {command}")
    print(f"machine: {machine()}")
    print(f"date: {now()} (took {time.time() - started:.0f} s)")
    print()
    print(table(ordered))
    met = sum(f.met for f in ordered)
    print(
        f"\n{met} of {len(ordered)} targets met"
        + (f"; FAILED: {', '.join(failures)}" if failures else "")
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "machine": machine(),
                    "date": now(),
                    "figures": [asdict(f) for f in ordered],
                    "failed": failures,
                },
                indent=2,
            )
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
