"""The whole dashboard under a flood of build output: ingest rate and key-to-repaint latency.

The real :class:`~matui.ui.app.MatuiApp`, headless (``App.run_test(size=(200, 50))``), four arch
panes (amd64, arm64, ppc64le, s390x) made with ``show_jobs``; no host is dialled. One asyncio task
feeds ``--lines`` lines per pane (buildx ``--progress=plain``-like, exactly 80 bytes) through
``MatuiApp.handle_event(LinesEvent(...))``, the path every engine event takes, in engine-sized
batches: one event per 64 KiB SSH read (``runner.CHUNK`` // 81 bytes = 809 lines), the panes
taken in turn, as fast as it can. It yields to the event loop after every event, as the app's
event reader does between reads.

Ingest: aggregate lines/s from the first event until every pane shows its last line (flushed by
its 50 ms timer and painted; checked on the rendered rows).

Key-to-repaint latency, measured during the flood: a probe posts ``z`` (zoom the focused pane /
back to all four) to the app as the terminal driver would (a ``Key`` event), waits for the
repaint, pauses 20-40 ms (about key-repeat rate) and presses again. A key's latency runs from
posting it to the end of the first screen update (``App._display``, wrapped) that shows its
effect: the layout has one pane on screen after a zoom, four after an unzoom (regions from the
compositor's map). Headless Textual composes each update but writes nothing, so the wrapper also
encodes the update to escape codes (``render_segments``) to charge what a real terminal costs.
p50/p99 are over the presses posted while the flood ran; the same probe on the idle dashboard
afterwards is the baseline. A round is two floods, each in a new app: one without key presses
(pure ingest), one with them (latency, and ingest while the layout keeps changing). Rates are the
median round, latency samples are pooled over the rounds.

Not a pytest test. Run:

    .venv/bin/python benchmarks/dashboard_flood.py [--lines 100000] [--rounds 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from textual import events
from textual._compositor import CompositorUpdate
from textual.screen import Screen

from matui.engine.arch import Platform
from matui.engine.build.run import CHUNK, JobState, LinesEvent, StateEvent
from matui.engine.config import Config, HostConfig, ImageConfig
from matui.engine.plan import BuildJob
from matui.ui.app import MatuiApp
from matui.ui.widgets.arch_pane import ArchPane

ARCHES = ("amd64", "arm64", "ppc64le", "s390x")
SIZE = (200, 50)
LINE_BYTES = 80
BATCH = CHUNK // (LINE_BYTES + 1)  # lines in one 64 KiB read of the host's log
REPO = "registry.example/bench/app"


def make_lines(arch: str, count: int) -> list[str]:
    """``count`` buildx-like lines of exactly 80 ASCII bytes."""
    lines = []
    for i in range(count):
        head = f"#{5 + i // 4000} {i * 0.0007:.3f} "
        body = f"[{arch}] cc -O2 -fPIC -c src/module_{i:07d}.c -o obj/module_{i:07d}.o "
        lines.append((head + body).ljust(LINE_BYTES, ".")[:LINE_BYTES])
    return lines


def dashboard() -> MatuiApp:
    hosts = tuple(HostConfig(f"{a}-1", a, f"192.0.2.{10 + i}") for i, a in enumerate(ARCHES))
    platforms = tuple(Platform.parse(f"linux/{a}") for a in ARCHES)
    image = ImageConfig(REPO, ("1.0",), Path("/nonexistent"), platforms)
    return MatuiApp(Config(None, hosts, (image,)), probe_on_start=False, resume_on_start=False)


def jobs() -> list[BuildJob]:
    return [
        BuildJob(Platform.parse(f"linux/{a}"), f"{a}-1", False, f"1.0-{a}", f"{REPO}:1.0-{a}")
        for a in ARCHES
    ]


@dataclass
class KeyPress:
    posted: float
    zoomed: bool  # the state the key leads to
    during_flood: bool
    painted: float | None = None


@dataclass
class Probe:
    """Screen updates, and the key press waiting for the update that shows its effect."""

    app: MatuiApp
    updates: int = 0
    waiting: KeyPress | None = None
    painted: asyncio.Event = field(default_factory=asyncio.Event)

    def install(self) -> None:
        original = self.app._display

        def display(screen: Screen[Any], renderable: RenderableType | None) -> None:
            original(screen, renderable)
            if renderable is None:
                return
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(self.app.console)  # what the driver would write
            self.updates += 1
            press = self.waiting
            if press is not None and self.shows(press):
                press.painted = time.perf_counter()
                self.waiting = None
                self.painted.set()

        self.app._display = display  # type: ignore[method-assign]

    def shows(self, press: KeyPress) -> bool:
        on_screen = sum(1 for pane in self.app.query(ArchPane) if pane.region.area)
        return on_screen == (1 if press.zoomed else len(ARCHES))

    async def press(self, during_flood: bool) -> KeyPress:
        zoomed = not self.app.query_one("#panes").has_class("-zoomed")
        press = KeyPress(time.perf_counter(), zoomed, during_flood)
        self.painted.clear()
        self.waiting = press
        self.app.post_message(events.Key("z", "z"))
        await asyncio.wait_for(self.painted.wait(), timeout=60)
        return press


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def last_row(pane: ArchPane) -> str:
    view = pane.view
    return str(view.render_line(view.scrollable_content_region.height - 1).text)


@dataclass
class Round:
    seconds: float  # first event until every pane shows its last line
    fed: float  # first event until the last one was handed to the app
    updates: int
    flood_ms: list[float]
    idle_ms: list[float]


async def flood(logs: dict[str, list[str]], *, keys: bool, idle_presses: int = 0) -> Round:
    app = dashboard()
    lines_per_pane = len(logs[ARCHES[0]])
    async with app.run_test(size=SIZE) as pilot:
        await app.show_jobs(jobs())
        for arch in ARCHES:
            app.handle_event(StateEvent(arch, JobState.RUNNING, f"pid 1 on {arch}-1"))
        await pilot.pause(0.2)
        probe = Probe(app)
        probe.install()
        panes = [app.query_one(f"#pane-{arch}", ArchPane) for arch in ARCHES]
        flooding = True

        async def feed() -> None:
            for start in range(0, lines_per_pane, BATCH):
                for arch in ARCHES:
                    app.handle_event(LinesEvent(arch, start, logs[arch][start : start + BATCH]))
                    await asyncio.sleep(0)

        presses: list[KeyPress] = []

        async def press_keys() -> None:
            while flooding and keys:
                await asyncio.sleep(random.uniform(0.02, 0.04))
                if flooding:
                    presses.append(await probe.press(during_flood=True))

        updates_before = probe.updates
        started = time.perf_counter()
        prober = asyncio.create_task(press_keys())
        await feed()
        fed = time.perf_counter()
        flooding = False
        await prober
        if app.query_one("#panes").has_class("-zoomed"):
            await probe.press(during_flood=False)  # all four panes back on screen

        # Every pane has flushed, followed to its end and been painted (a layout change, e.g.
        # a scrollbar appearing, can move the end once more: then its next tick follows).
        def at_end() -> bool:
            return not any(
                p.view._dirty or p.view.scroll_offset.y != p.view.max_scroll_y for p in panes
            )

        while True:
            while not at_end():
                await asyncio.sleep(0.005)
            seen = probe.updates
            while probe.updates == seen:
                await asyncio.sleep(0.005)
            if at_end():
                break
        shown = time.perf_counter()
        for pane, arch in zip(panes, ARCHES, strict=True):
            row = last_row(pane).rstrip()
            if not row or not logs[arch][-1].startswith(row):
                sys.exit(f"{arch}: last line not shown: {row!r} (want {logs[arch][-1]!r})")
            if len(pane.view.store) != lines_per_pane:
                sys.exit(f"{arch}: {len(pane.view.store)} lines kept, not {lines_per_pane}")
        updates = probe.updates - updates_before

        idle = []
        for _ in range(idle_presses):
            await asyncio.sleep(random.uniform(0.02, 0.04))
            idle.append(await probe.press(during_flood=False))

    def ms(keys: list[KeyPress]) -> list[float]:
        return [1000 * (k.painted - k.posted) for k in keys if k.painted is not None]

    return Round(shown - started, fed - started, updates, ms(presses), ms(idle))


async def run(lines_per_pane: int, rounds: int) -> None:
    logs = {arch: make_lines(arch, lines_per_pane) for arch in ARCHES}
    total = lines_per_pane * len(ARCHES)
    events = len(range(0, lines_per_pane, BATCH)) * len(ARCHES)
    print(
        f"MatuiApp headless {SIZE[0]}x{SIZE[1]}, {len(ARCHES)} panes, {lines_per_pane:,} lines "
        f"of {LINE_BYTES} bytes per pane ({total:,} a round), {events:,} LinesEvents of up to "
        f"{BATCH} lines, {rounds} round(s), Python {sys.version.split()[0]}"
    )
    results: list[Round] = []
    quiet: list[Round] = []
    for i in range(rounds):
        for pressing in (False, True):  # alternate: both see the same machine load
            gc.collect()
            result = await flood(logs, keys=pressing, idle_presses=10 if pressing else 0)
            (results if pressing else quiet).append(result)
            print(
                f"  round {i + 1} {'with keys' if pressing else 'no keys  '}: "
                f"{total / result.seconds:>9,.0f} lines/s (fed in {result.fed:.3f} s, all shown "
                f"after {result.seconds:.3f} s, {result.updates} screen updates)"
                + (f", {len(result.flood_ms)} keys during the flood" if pressing else ""),
                flush=True,
            )
    rates = [total / r.seconds for r in results]
    quiet_rates = [total / r.seconds for r in quiet]
    flood_ms = [x for r in results for x in r.flood_ms]
    idle_ms = [x for r in results for x in r.idle_ms]
    print()
    print(f"{'aggregate ingest, no keys':34}{statistics.median(quiet_rates):>12,.0f} lines/s")
    print(f"{'aggregate ingest, keys pressed':34}{statistics.median(rates):>12,.0f} lines/s")
    print(f"{'z -> repaint during flood p50':34}{percentile(flood_ms, 50):>12.1f} ms")
    print(f"{'z -> repaint during flood p99':34}{percentile(flood_ms, 99):>12.1f} ms")
    print(f"{'z -> repaint during flood max':34}{max(flood_ms, default=float('nan')):>12.1f} ms")
    print(f"{'  samples (all rounds)':34}{len(flood_ms):>12}")
    print(f"{'z -> repaint idle p50':34}{percentile(idle_ms, 50):>12.1f} ms")
    print(f"{'z -> repaint idle p99':34}{percentile(idle_ms, 99):>12.1f} ms")
    print(f"{'  samples (all rounds)':34}{len(idle_ms):>12}")
    if len(flood_ms) < 20:
        print("note: fewer than 20 keys during the floods: more --lines or --rounds for a p99")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lines", type=int, default=100_000, help="lines per pane (default 100 000)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="floods, each in a new app")
    parser.add_argument("--seed", type=int, default=1, help="seed of the key timing")
    args = parser.parse_args()
    if args.lines < 1 or args.rounds < 1:
        parser.error("--lines and --rounds must be at least 1")
    random.seed(args.seed)
    asyncio.run(run(args.lines, args.rounds))


if __name__ == "__main__":
    main()
