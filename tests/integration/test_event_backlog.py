"""A run's memory stays bounded when its consumer reads slowly or not at all: the event queue
holds at most ``max_queued_lines`` lines, then cursors into the local log copy; the consumer
still gets every line once, in order, read back through the engine's decoder."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import pytest

from matui.engine.build import start_build
from matui.engine.build.run import LinesEvent, RunFinished, StateEvent
from matui.engine.config import load_config
from matui.engine.records import JobState
from matui.engine.ssh import SshPool
from matui.engine.text import decode_lines
from tests.helpers.projects import project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd

pytestmark = pytest.mark.rig

BURST = 40_000
BUDGET = 1_000

CHATTY = """\
ARG BASE
FROM ${BASE}
RUN echo start-%s; seq 1 %d
"""


def test_a_consumer_that_reads_nothing_holds_bounded_lines_and_later_gets_every_line(
    rig: Rig, sshd: Sshd, tmp_path: Path
) -> None:
    config_path = project(tmp_path, rig, sshd, quick=True)
    (tmp_path / "ctx" / "Dockerfile").write_text(CHATTY % (secrets.token_hex(6), BURST))
    config = load_config(config_path)

    async def run() -> tuple[int, int, list[LinesEvent], list[object], Path]:
        async with SshPool(config.hosts) as pool:
            prepared = await start_build(config, pool, state_root=tmp_path / "state")
            build = prepared.run
            build.max_queued_lines = BUDGET
            peak = 0
            done = asyncio.Event()

            async def watch() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, build.queued_lines)
                    await asyncio.sleep(0.001)

            watcher = asyncio.create_task(watch())
            # Nobody reads the events: the run must still end.
            statuses = await asyncio.wait_for(build.wait(), 300)
            done.set()
            await watcher
            assert statuses["amd64"].state is JobState.SUCCEEDED
            peak = max(peak, build.queued_lines)
            waiting = build.queued_events
            lines: list[LinesEvent] = []
            others: list[object] = []
            async for event in build.events():
                if isinstance(event, LinesEvent):
                    lines.append(event)
                else:
                    others.append(event)
            return peak, waiting, lines, others, build.record.log_path("amd64")

    peak, waiting, events, others, log = asyncio.run(run())
    assert peak <= BUDGET
    # A few events and cursors wait, not one event per 64 KiB read of the burst.
    assert waiting < 50, waiting
    assert isinstance(others[-1], RunFinished)
    assert [type(e) for e in others].count(StateEvent) >= 3
    # Every line once, in order: numbered without a gap, equal to the local copy decoded.
    lines: list[str] = []
    for event in events:
        assert event.job == "amd64" and event.first == len(lines)
        lines += event.lines
    assert lines == decode_lines(log.read_bytes().rstrip(b"\n"))
    seq = [ln.split(" ")[2] for ln in lines if re.fullmatch(r"#[0-9]+ [0-9.]+ [0-9]+", ln)]
    assert seq == [str(i) for i in range(1, BURST + 1)]
