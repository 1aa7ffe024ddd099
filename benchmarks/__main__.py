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
    "dashboard_flood",
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
    """benchmarks/build_overhead.py: the figures it printed (small build, 200 k-line build),
    even when one is missing; its ``no figure: ...`` line, last in the log, says why."""
    script = Path(__file__).with_name("build_overhead.py")
    out = subprocess.run(
        [sys.executable, str(script), *(["--small"] if small else [])],
        capture_output=True,
        text=True,
    )
    lines = out.stdout.splitlines()
    figures = [
        Figure(**json.loads(ln[len(FIGURE_PREFIX) :]))
        for ln in lines
        if ln.startswith(FIGURE_PREFIX)
    ]
    why = [ln for ln in lines if ": no figure: " in ln]
    other = [ln for ln in lines if not ln.startswith(FIGURE_PREFIX) and ln not in why]
    log = "\n".join(other) + "\n" + out.stderr.strip() + "\n" + "\n".join(why)
    if out.returncode != 0 and not figures and not why:
        raise RuntimeError(f"build_overhead.py exited {out.returncode}:\n{log.strip()[-3000:]}")
    return figures, log.strip()


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
