"""What wrapping long lines costs a log pane holding a million lines.

Measures, in one :class:`LogPane` under ``App.run_test()`` (headless, 120x40), on buildx-like
lines where one in 50 is a 600-character compiler command line (the rest 80 characters):

* turning wrap on (``set_wrap(True)``): the one full layout, every line measured once;
* a flush of 2 000 new lines with wrap off and with wrap on (the layout grows by the new lines
  only, so the two should be close: wrap must not lay the log out again per flush);
* turning wrap off and on again at the same width (the layout kept per width: no new layout);
* drawing one screenful of wrapped rows from the middle of the log (``render_lines``).

Each figure is the median of ``--rounds`` runs. Not a pytest test. Run:

    .venv/bin/python benchmarks/log_pane_wrap.py [--lines 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from textual.app import App, ComposeResult
from textual.geometry import Region

from matui.ui.widgets.log_pane import LogPane

SIZE = (120, 40)
BATCH = 2_000


def make_lines(start: int, count: int) -> list[str]:
    lines = []
    for i in range(start, start + count):
        if i % 50 == 0:
            flags = " ".join(f"-Iinclude/dir{j:02d}" for j in range(36))
            lines.append(f"#7 {i * 0.001:.3f} cc {flags} -c src/m{i:07d}.c"[:600].ljust(600))
        else:
            lines.append(f"#7 {i * 0.001:.3f} cc -O2 -c src/m{i:07d}.c -o obj/m{i:07d}.o".ljust(80))
    return lines


class PaneApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LogPane(id="log")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


async def one_round(total: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    app = PaneApp()
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(LogPane)
        for start in range(0, total, 100_000):
            pane.add_lines(make_lines(start, min(100_000, total - start)))
        pane._flush()
        await pilot.pause()
        more = total

        def flush_more() -> None:
            nonlocal more
            pane.add_lines(make_lines(more, BATCH))
            more += BATCH
            pane._flush()

        figures["flush, wrap off"] = timed(flush_more)
        figures["wrap on (full layout)"] = timed(lambda: pane.set_wrap(True))
        await pilot.pause()
        figures["flush, wrap on"] = timed(flush_more)
        pane.set_wrap(False)
        await pilot.pause()
        figures["wrap on again (same width)"] = timed(lambda: pane.set_wrap(True))
        pane.follow = False
        pane.scroll_to(y=pane.max_scroll_y // 2, animate=False, immediate=True)
        await pilot.pause()
        region = Region(0, 0, pane.size.width, pane.size.height)
        pane._lines.clear()
        figures["draw a screen of wrapped rows"] = timed(lambda: pane.render_lines(region))
    return figures


async def measure(total: int, rounds: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, seconds in (await one_round(total)).items():
            figures.setdefault(name, []).append(seconds)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.lines, args.rounds))
    print(f"LogPane, {args.lines:,} lines (1 in 50 of 600 characters), {SIZE[0]}x{SIZE[1]}:")
    for name, samples in figures.items():
        print(f"  {name:32} {statistics.median(samples) * 1000:9.1f} ms (median of {len(samples)})")


if __name__ == "__main__":
    main()
