"""TUI ingest: 1 M lines into 4 panes at once, against Textual's ``Log``; what the panes keep.

Two parts, each side by side in the same run:

* ``benchmarks/log_pane_ingest.py`` (run as it is, its table parsed): aggregate lines/s of 4
  ``LogPane`` widgets against 4 ``Log`` widgets fed with ``write_lines`` in batches of 10 000,
  and the p99 key-to-repaint latency during the flood (targets: >= 3x; <= 100 ms);
* retention, here, each side in a fresh process: the same flood (80-byte buildx-like lines,
  generated batch by batch so the source holds none of them) into 4 ``LogPane`` (batches of
  2 000) or 4 ``Log`` (batches of 10 000) in a headless app; resident memory (RSS) growth per
  retained line once everything is on screen, and for the panes a check that every line is
  kept and searchable: the count, sampled lines, the last line found by ``LogStore.search`` and
  every line found by a ``find_all`` that matches each one (target: <= 200 bytes a line).

    .venv/bin/python -m benchmarks.tui_ingest [--lines 1000000]
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, emit, log_line, parser, settle_memory

PANES = 4
SIZE = (160, 48)
INGEST = Path(__file__).with_name("log_pane_ingest.py")


def parse_table(text: str) -> dict[str, tuple[float, float]]:
    """Rows of log_pane_ingest's table: label -> (LogPane value, Log value)."""
    rows = {}
    for line in text.splitlines():
        found = re.match(r"^(\S.*?)\s{2,}([\d,.]+)\s+([\d,.]+)\s*$", line)
        if found:
            label = re.sub(r"\s*\(median\)$", "", found[1].strip())
            rows[label] = (float(found[2].replace(",", "")), float(found[3].replace(",", "")))
    return rows


def run_ingest(lines: int, rounds: int) -> dict[str, tuple[float, float]]:
    out = subprocess.run(
        [sys.executable, str(INGEST), "--lines", str(lines), "--rounds", str(rounds)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{INGEST.name} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    print(out.stdout, file=sys.stderr)
    rows = parse_table(out.stdout)
    for needed in ("aggregate lines/s", "key->repaint p99 (ms)", "latency samples"):
        if needed not in rows:
            raise SystemExit(f"no '{needed}' row in {INGEST.name}'s output:\n{out.stdout}")
    return rows


# -- retention (child process) ---------------------------------------------------------------


async def retain(kind: str, per_pane: int) -> dict[str, Any]:
    from textual.app import App, ComposeResult
    from textual.containers import Grid
    from textual.widgets import Log

    from matui.ui.widgets.log_pane import LogPane

    class Panes(App[None]):
        CSS = "Grid { grid-size: 2 2; } LogPane, Log { height: 1fr; }"

        def compose(self) -> ComposeResult:
            with Grid():
                for i in range(PANES):
                    yield LogPane(id=f"p{i}") if kind == "pane" else Log(id=f"p{i}")

    app = Panes()
    result: dict[str, Any] = {"kind": kind, "lines": per_pane * PANES}
    async with app.run_test(size=SIZE) as pilot:
        widgets: list[Any] = [app.query_one(f"#p{i}") for i in range(PANES)]
        await pilot.pause(0.1)
        base = settle_memory()
        batch = 2_000 if kind == "pane" else 10_000
        start = time.perf_counter()

        async def feed(tag: int, widget: Any) -> None:
            add = widget.add_lines if kind == "pane" else widget.write_lines
            for first in range(0, per_pane, batch):
                add([log_line(i, tag) for i in range(first, min(per_pane, first + batch))])
                await asyncio.sleep(0)

        await asyncio.gather(*(feed(tag, w) for tag, w in enumerate(widgets)))
        if kind == "pane":
            while any(w._dirty for w in widgets):
                await pilot.pause(0.01)
        else:
            await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        result["seconds"] = time.perf_counter() - start
        result["rss_growth"] = settle_memory() - base
        if kind == "pane":
            checks = []
            for tag, widget in enumerate(widgets):
                store = widget.store
                last = log_line(per_pane - 1, tag)
                t0 = time.perf_counter()
                found = store.search(last, regex=False)
                t1 = time.perf_counter()
                every = store.find_all(rf"^#\d+ [\d.]+ \[{tag}\] cc ")
                t2 = time.perf_counter()
                samples = [0, per_pane // 3, per_pane // 2, per_pane - 1]
                checks.append(
                    len(store) == per_pane
                    and found == per_pane - 1
                    and every == list(range(per_pane))
                    and all(store.line(k) == log_line(k, tag) for k in samples)
                )
                result.setdefault("search_ms", []).append(round((t1 - t0) * 1000, 1))
                result.setdefault("find_all_ms", []).append(round((t2 - t1) * 1000, 1))
            result["kept_and_searchable"] = all(checks)
    return result


def run_retain(kind: str, per_pane: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.tui_ingest",
            "--retain",
            kind,
            "--per-pane",
            str(per_pane),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"retention ({kind}) failed:\n{out.stdout}{out.stderr}")
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=None, help="total lines (all panes)")
    p.add_argument("--rounds", type=int, default=None, help="rounds of log_pane_ingest.py")
    p.add_argument("--retain", choices=["pane", "log"], help=argparse_hidden())
    p.add_argument("--per-pane", type=int, default=0, help=argparse_hidden())
    args = p.parse_args()
    if args.retain:
        print(json.dumps(asyncio.run(retain(args.retain, args.per_pane))))
        return
    lines = args.lines or (20_000 if args.small else 1_000_000)
    rounds = args.rounds or args.reps or (1 if args.small else 3)
    rows = run_ingest(lines, rounds)
    pane_rate, log_rate = rows["aggregate lines/s"]
    pane_p99, log_p99 = rows["key->repaint p99 (ms)"]
    samples = int(rows["latency samples"][0])
    emit(
        Figure(
            name="tui_ingest",
            what=f"{lines:,} lines into 4 panes at once (log_pane_ingest.py, {rounds} round(s))",
            value=pane_rate,
            unit="lines/s",
            baseline="Textual Log.write_lines x10000",
            baseline_value=log_rate,
            ratio=pane_rate / log_rate,
            ratio_text="LogPane rate / Log rate",
            target=">= 3x",
            met=pane_rate / log_rate >= 3,
        )
    )
    emit(
        Figure(
            name="tui_key_p99",
            what="p99 key-to-repaint during that flood",
            value=pane_p99,
            unit="ms",
            baseline="same with Textual Log",
            baseline_value=log_p99,
            ratio=log_p99 / pane_p99 if pane_p99 else float("inf"),
            ratio_text="Log p99 / LogPane p99",
            target="<= 100 ms",
            met=pane_p99 <= 100,
            detail=f"{samples} key samples"
            + (
                f"; p50 {rows['key->repaint p50 (ms)'][0]:.0f} ms"
                if "key->repaint p50 (ms)" in rows
                else ""
            ),
        )
    )
    per_pane = lines // PANES
    pane = run_retain("pane", per_pane)
    log = run_retain("log", per_pane)
    pane_bpl = pane["rss_growth"] / pane["lines"]
    log_bpl = log["rss_growth"] / log["lines"]
    tracemalloc = rows.get("retained bytes/line")
    emit(
        Figure(
            name="tui_memory",
            what=f"resident memory per retained line, {pane['lines']:,} lines in 4 panes; "
            "every line kept and searchable",
            value=pane_bpl,
            unit="B/line",
            baseline="4 Textual Logs",
            baseline_value=log_bpl,
            ratio=pane_bpl / log_bpl,
            ratio_text="LogPane RSS / Log RSS",
            target="<= 200 B/line, all kept",
            met=pane_bpl <= 200 and bool(pane["kept_and_searchable"]),
            detail=f"kept and searchable: {'yes' if pane['kept_and_searchable'] else 'NO'}; "
            f"search for a pane's last line {max(pane['search_ms']):.0f} ms, find_all of its "
            f"{per_pane:,} lines {max(pane['find_all_ms']):.0f} ms"
            + (
                f"; LogStore tracemalloc {tracemalloc[0]:.0f} B/line "
                f"(list[str] {tracemalloc[1]:.0f})"
                if tracemalloc
                else ""
            ),
        )
    )


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
