"""How fast the log panes take a flood of build output, and how the UI answers meanwhile.

Measures, side by side in one run and on the same generated lines (buildx-like ``#N 1.234 ...``
lines of exactly 80 bytes, split evenly over 4 panes):

* aggregate lines/s of pushing every line into 4 :class:`LogPane` widgets (``add_lines``, batches
  of 2 000 per pane per call) against 4 of Textual's ``Log`` widgets (``write_lines``, batches of
  10 000), each under ``App.run_test()`` (headless), 160x48 terminal, panes in a 2x2 grid. Four
  asyncio tasks (one a pane) feed as fast as they can, yielding to the event loop after every
  call, as the engine's readers would. The clock stops once every pane has shown its last line:
  everything flushed and the next screen update done (the LogPane side therefore includes up to
  one 50 ms flush tick at the end);
* key-to-repaint latency during the flood: every 20-40 ms (about key-repeat rate) a probe posts
  a key event to the app, as the terminal driver does (``up``, then ``end``, alternating: both
  change what pane 0 shows), without waiting for the answer, and measures each key from posting
  it to the end of the first screen update after its action ran.
  A screen update is ``App._display`` (wrapped): headless Textual composes the update but writes
  nothing, so the wrapper also encodes it to terminal escape codes (``render_segments``) to
  charge what a real terminal would cost;
* each side runs ``--rounds`` times, alternating; throughput is the median round, latency
  samples are pooled;
* memory per retained line: tracemalloc over one pane's lines kept in a ``LogStore``, against
  the same lines kept as ``Log`` keeps them (one ``str`` per line in a list).

Not a pytest test. Run:

    .venv/bin/python benchmarks/log_pane_ingest.py [--lines 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import random
import statistics
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import RenderableType
from textual import events
from textual._compositor import CompositorUpdate
from textual.app import App, ComposeResult
from textual.containers import Grid
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Log

from matui.engine.logstore import LogStore
from matui.ui.widgets.log_pane import LogPane

PANES = 4
SIZE = (160, 48)
PANE_BATCH = 2_000
LOG_BATCH = 10_000
LINE_BYTES = 80


def make_lines(total: int) -> list[list[str]]:
    """``total`` buildx-like lines of exactly 80 ASCII bytes, split over the panes."""
    per_pane = total // PANES
    panes = []
    for pane in range(PANES):
        lines = []
        for i in range(per_pane):
            step = 5 + i // 4000
            head = f"#{step} {i * 0.0007:.3f} "
            body = f"[{pane}] cc -O2 -fPIC -c src/module_{i:07d}.c -o obj/module_{i:07d}.o "
            lines.append((head + body).ljust(LINE_BYTES, ".")[:LINE_BYTES])
        panes.append(lines)
    return panes


@dataclass
class KeyPress:
    posted: float
    handled: float | None = None
    painted: float | None = None


@dataclass
class Probe:
    """Counts screen updates and times key presses from posting to the first screen update
    after their action ran."""

    updates: int = 0
    updated_at: float = 0.0
    presses: list[KeyPress] = field(default_factory=list)
    _unhandled: deque[KeyPress] = field(default_factory=deque)
    _unpainted: list[KeyPress] = field(default_factory=list)

    def install(self, app: App[Any]) -> None:
        original = app._display

        def display(screen: Screen[Any], renderable: RenderableType | None) -> None:
            original(screen, renderable)
            if renderable is None:
                return
            if isinstance(renderable, CompositorUpdate):
                # What the terminal driver would encode and write.
                renderable.render_segments(app.console)
            now = time.perf_counter()
            self.updates += 1
            self.updated_at = now
            for press in self._unpainted:
                press.painted = now
            self._unpainted.clear()

        app._display = display  # type: ignore[method-assign]

    def wrap_action(self, widget: Widget, name: str) -> None:
        action: Callable[[], Any] = getattr(widget, name)

        def wrapped() -> Any:
            result = action()
            if self._unhandled:  # keys are handled in the order they were posted
                press = self._unhandled.popleft()
                press.handled = time.perf_counter()
                self._unpainted.append(press)
            return result

        setattr(widget, name, wrapped)

    def press(self, app: App[Any], key: str) -> None:
        press = KeyPress(time.perf_counter())
        self.presses.append(press)
        self._unhandled.append(press)
        app.post_message(events.Key(key, None))

    def latencies(self) -> list[float]:
        return [p.painted - p.posted for p in self.presses if p.painted is not None]


class FloodApp(App[None]):
    CSS = """
    Grid { grid-size: 2 2; }
    LogPane, Log { border: round $accent; height: 1fr; }
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def compose(self) -> ComposeResult:
        with Grid():
            for i in range(PANES):
                yield LogPane(id=f"p{i}") if self.kind == "pane" else Log(id=f"p{i}")


@dataclass
class Result:
    name: str
    lines: int
    seconds: float
    updates: int
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


async def settle(app: App[Any]) -> None:
    """Wait until the screen has nothing left to lay out or paint."""
    await asyncio.sleep(0)
    while True:
        screen = app.screen
        if not (
            screen._layout_required
            or screen._scroll_required
            or screen._repaint_required
            or screen._dirty_widgets
        ):
            return
        await asyncio.sleep(0.001)


def last_row(widget: Widget) -> str:
    region = widget.scrollable_content_region
    return widget.render_line(region.height - 1).text


async def flood(kind: str, panes: Sequence[list[str]]) -> Result:
    app = FloodApp(kind)
    probe = Probe()
    total = sum(map(len, panes))
    async with app.run_test(size=SIZE) as pilot:
        probe.install(app)
        widgets: list[Any] = [app.query_one(f"#p{i}") for i in range(PANES)]
        widgets[0].focus()
        for name in ("action_scroll_up", "action_scroll_end"):
            probe.wrap_action(widgets[0], name)
        await pilot.pause()

        batch = PANE_BATCH if kind == "pane" else LOG_BATCH

        async def feed(widget: Any, lines: list[str]) -> None:
            add = widget.add_lines if kind == "pane" else widget.write_lines
            for i in range(0, len(lines), batch):
                add(lines[i : i + batch])
                await asyncio.sleep(0)

        done = asyncio.Event()

        async def probe_keys() -> None:
            # About key-repeat rate, "up" then "end" (each changes what pane 0 shows), not
            # waiting for the answer; ends after an "end" so pane 0 follows again.
            for key in itertools.cycle(("up", "end")):
                if done.is_set() and key == "up":
                    return
                probe.press(app, key)
                await asyncio.sleep(random.uniform(0.02, 0.04))

        updates_before = probe.updates
        start = time.perf_counter()
        prober = asyncio.create_task(probe_keys())
        await asyncio.gather(*(feed(w, lines) for w, lines in zip(widgets, panes, strict=True)))
        done.set()
        await prober
        # Drain: every line handed to the screen, then nothing left to paint.
        if kind == "pane":
            while any(w._dirty for w in widgets):
                await asyncio.sleep(0.001)
        else:
            await app.workers.wait_for_complete()
            for log in widgets:  # the probe's animated "end" may still be under way
                log.scroll_end(animate=False, immediate=True)
        flushed = time.perf_counter()
        await settle(app)
        while any(p.painted is None for p in probe.presses):
            await asyncio.sleep(0.001)
        seconds = max(probe.updated_at, flushed) - start
        for widget, lines in zip(widgets, panes, strict=True):
            # A line cut at the pane's edge ends in the pane's "→" (the line goes on).
            shown = last_row(widget).rstrip().removesuffix("→")
            if len(shown) < 40 or not lines[-1].startswith(shown):  # cropped to the pane
                sys.exit(f"{kind}: last line not shown: {shown!r} != {lines[-1]!r}")
        name = (
            f"LogPane (add_lines x{PANE_BATCH})"
            if kind == "pane"
            else f"Textual Log (write_lines x{LOG_BATCH})"
        )
        return Result(name, total, seconds, probe.updates - updates_before, probe.latencies())


def bytes_per_line(lines: list[str]) -> tuple[float, float]:
    """Retained bytes per line: a LogStore against one str per line in a list (as Log)."""

    def measure(build: Callable[[], object]) -> float:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = build()
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        del kept
        return used / len(lines)

    def store() -> LogStore:
        s = LogStore()
        for i in range(0, len(lines), PANE_BATCH):
            s.append(lines[i : i + PANE_BATCH])
        return s

    encoded = [line.encode() for line in lines]

    def log_list() -> list[str]:
        # Log.write_lines keeps the str objects it is given (splitlines() hands back a line
        # without breaks as is): the decoded lines the engine produced, one object each.
        kept: list[str] = []
        for raw in encoded:
            kept.extend(raw.decode().splitlines())
        return kept

    return measure(store), measure(log_list)


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def combine(rounds: list[Result]) -> Result:
    """Median wall time over the rounds; latency samples pooled."""
    seconds = statistics.median(r.seconds for r in rounds)
    updates = round(statistics.median(r.updates for r in rounds))
    latencies = [x for r in rounds for x in r.latencies]
    return Result(rounds[0].name, rounds[0].lines, seconds, updates, latencies)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="total lines (all panes)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.lines < PANES:
        parser.error(f"--lines must be at least {PANES}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    random.seed(args.seed)

    panes = make_lines(args.lines)
    total = sum(map(len, panes))
    print(
        f"{total:,} lines of {LINE_BYTES} bytes, {PANES} panes x {len(panes[0]):,}, "
        f"terminal {SIZE[0]}x{SIZE[1]}, headless, {args.rounds} round(s) a side, "
        f"Python {sys.version.split()[0]}"
    )
    runs: dict[str, list[Result]] = {"pane": [], "log": []}
    for _ in range(args.rounds):
        for kind in runs:
            result = await flood(kind, panes)
            runs[kind].append(result)
            print(f"  {result.name}: {result.rate:,.0f} lines/s", flush=True)
    results = [combine(runs["pane"]), combine(runs["log"])]
    store_bpl, log_bpl = bytes_per_line(panes[0])

    print()
    print(f"{'':28}{results[0].name:>30}{results[1].name:>36}")
    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("aggregate lines/s (median)", lambda r: f"{r.rate:,.0f}"),
        ("wall time (s, median)", lambda r: f"{r.seconds:.2f}"),
        ("screen updates (median)", lambda r: f"{r.updates:,}"),
        ("key->repaint p50 (ms)", lambda r: f"{percentile(r.latencies, 50) * 1000:.1f}"),
        ("key->repaint p99 (ms)", lambda r: f"{percentile(r.latencies, 99) * 1000:.1f}"),
        ("key->repaint max (ms)", lambda r: f"{max(r.latencies, default=0) * 1000:.1f}"),
        ("latency samples", lambda r: f"{len(r.latencies)}"),
    ]
    for label, cell in rows:
        print(f"{label:28}{cell(results[0]):>30}{cell(results[1]):>36}")
    print(f"{'retained bytes/line':28}{store_bpl:>30.1f}{log_bpl:>36.1f}")
    print()
    print(f"ratio LogPane / Log (lines/s): {results[0].rate / results[1].rate:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
