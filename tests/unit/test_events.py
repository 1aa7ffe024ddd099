"""The event stream owns safety and state: host text is inert before it becomes an event or a
record field, made so once (in the engine), by the engine's own functions fed recorded host
output; the store behind a pane keeps lines as they come."""

from __future__ import annotations

import asyncio
from pathlib import Path

from matui.engine.build.run import (
    BuildRun,
    Event,
    LinesEvent,
    NoteEvent,
    RunFinished,
    StateEvent,
    StepChange,
)
from matui.engine.config import HostConfig
from matui.engine.flags import Flag, FlagKind, Severity
from matui.engine.logstore import LogStore
from matui.engine.probe import HostProbe, parse_probe
from matui.engine.records import JobState, RunRecord
from matui.engine.text import decode_lines, neutralise
from tests.helpers.hostile import HOSTILE, HOSTILE_WORD, unsafe
from tests.helpers.runs import offline_run

DATA = Path(__file__).parent.parent / "data" / "progress"
REPO = "registry.example/team/app"


def make_run(
    tmp_path: Path, arches: tuple[str, ...] = ("amd64",), max_queued_lines: int = 50_000
) -> BuildRun:
    """A real BuildRun over hosts it never dials (the tests below drive no SSH)."""
    return offline_run(tmp_path, REPO, arches, max_queued_lines)


def queued(run: BuildRun) -> list[Event]:
    """The events the run has queued so far (the run is not started: nothing else comes)."""

    async def drain() -> list[Event]:
        events = run.events(until_finished=False)
        found: list[Event] = []
        while run.queued_events:
            found.append(await anext(events))
        return found

    return asyncio.run(drain())


# -- log lines: one decoder --------------------------------------------------------------------


def test_decode_lines_makes_every_line_inert_once() -> None:
    raw = (
        b"#5 0.1 \x1b[2Jcleared\n"
        b"#5 0.2 copy \x1b]52;c;ZXZpbA==\x07done\n"
        b"#5 0.3 \x1b[31mred\x1b[0m\ttab kept\n"
        b"#5 0.4 \xc2\x9b31m8-bit csi \x1bPq#0\x1b\\dcs\n"
        b"progress 10%\rprogress 100%\r\n"
        b"bad \xff byte\n"
        b"plain"
    )
    assert decode_lines(raw) == [
        "#5 0.1 cleared",
        "#5 0.2 copy done",
        "#5 0.3 red\ttab kept",
        "#5 0.4 8-bit csi dcs",
        "progress 100%",
        "bad \ufffd byte",
        "plain",
    ]
    clean = b"#5 0.1 plain \xc2\xa9 text\n#5 0.2 more"
    assert decode_lines(clean) == ["#5 0.1 plain \xa9 text", "#5 0.2 more"]


def test_decode_lines_on_a_recorded_log_with_escapes() -> None:
    lines = decode_lines((DATA / "escapes.log").read_bytes())
    assert lines and all(unsafe(line) == [] for line in lines)
    assert [neutralise(line) for line in lines] == lines  # nothing left to do a second time


def test_the_store_keeps_lines_as_the_engine_made_them() -> None:
    store = LogStore()
    lines = decode_lines(f"#5 0.1 {HOSTILE}\n#5 0.2 tab\there".encode())
    store.append(lines)
    assert [store.line(0), store.line(1)] == lines


# -- probe answers -----------------------------------------------------------------------------


def probe_output(uname: str, docker: str, docker_rc: int, buildx: str) -> str:
    """What the probe script prints (recorded from a host, the values swapped in)."""
    return (
        f"@@matui:uname\n{uname}\n@@matui:uname:rc=0\n"
        f"@@matui:docker\n{docker}\n@@matui:docker:rc={docker_rc}\n"
        f"@@matui:buildx\n{buildx}\n@@matui:buildx:rc=0\n"
        "@@matui:binfmt\nqemu-aarch64\n@@matui:binfmt:rc=0\n"
        "@@matui:df\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
        "/dev/sda1 100 50 50 50% /\n@@matui:df:rc=0\n"
    )


def test_a_probe_holds_no_raw_host_text() -> None:
    host = HostConfig("h", "amd64", "192.0.2.10", user="build")
    broken = parse_probe(
        host, probe_output(f"x86_64 {HOSTILE}", f"Cannot connect: {HOSTILE}", 1, "")
    )
    assert broken.error is not None and "Cannot connect: clip clear csi8" in broken.error
    version = '{"Server":{"Version":"20.10\\u001b[2J\\u009b31m","Arch":"amd64"}}'
    liar = parse_probe(
        host, probe_output("x86_64", version, 0, f"github.com/docker/buildx {HOSTILE_WORD} x")
    )
    assert liar.docker_version == "20.10" and liar.buildx_version == "0.13.1"
    for probe in (broken, liar):
        texts = [probe.uname, probe.docker_version, probe.buildx_version, probe.error]
        assert all(unsafe(t or "") == [] for t in [*texts, *probe.problems]), probe
    # However a probe is made (an SSH error's text, a record written by an older matui).
    assert HostProbe("h", "amd64", reachable=False, error=f"ssh: {HOSTILE}").error == (
        "ssh: clip clear csi8 dcs osc8 end"
    )
    assert unsafe(str(HostProbe.from_json({**liar.to_json(), "uname": HOSTILE}).uname)) == []


# -- state details, errors, notes, flags --------------------------------------------------------


def test_state_details_errors_and_failing_steps_are_inert(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    status = run.status["amd64"]
    status.error = f"context upload to amd64-1 failed: tar: {HOSTILE}"
    status.failing_step = f"#7 [2/2] RUN echo {HOSTILE}"
    run._set_state(status, JobState.FAILED, status.error)
    (event,) = queued(run)
    assert isinstance(event, StateEvent)
    assert event.detail == "context upload to amd64-1 failed: tar: clip clear csi8 dcs osc8 end"
    assert unsafe(status.error or "") == [] and unsafe(status.failing_step or "") == []
    saved = RunRecord.load(run.record.dir).job("amd64")
    assert saved.error == status.error and saved.failing_step == status.failing_step


def test_notes_and_flags_are_inert(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run._note("amd64", f"note {HOSTILE}")
    (event,) = queued(run)
    assert isinstance(event, NoteEvent) and unsafe(event.text) == []
    run.flags = [Flag(FlagKind.ARCH_MISMATCH, Severity.ERROR, "amd64", f"the log shows {HOSTILE}")]
    assert unsafe(run.flags[0].message) == [] and "the log shows clip" in run.flags[0].message


def test_a_resumed_run_makes_an_old_records_text_inert(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.record.update_job("amd64", state=JobState.FAILED, error=HOSTILE, notes=[HOSTILE])
    record = RunRecord.load(run.record.dir)
    resumed = BuildRun.resume(record, run.config, run.pool)
    status = resumed.status["amd64"]
    assert unsafe(status.error or "") == [] and unsafe(status.notes[0]) == []


# -- the queue: bounded, every line once, in order ------------------------------------------------


def recorded_log() -> bytes:
    """Real buildx output (a 600-line step, parallel steps, escapes), one log after another."""
    names = ("ok.log", "many_lines.log", "parallel.log", "escapes.log", "many_lines.log")
    return b"".join((DATA / name).read_bytes() for name in names)


def feed(run: BuildRun, data: bytes, size: int) -> None:
    """``data`` as the follow reads it from the host, ``size`` bytes a read."""
    status, log = run.status["amd64"], run._logs["amd64"]
    for at in range(0, len(data), size):
        run._ingest(status, log, data[at : at + size])
        assert run.queued_lines <= run.max_queued_lines


async def read_until_finished(run: BuildRun, got: list[Event]) -> None:
    async for event in run.events():
        got.append(event)


def test_a_slow_consumer_gets_every_line_once_in_order_and_the_last_step(tmp_path: Path) -> None:
    run = make_run(tmp_path, max_queued_lines=100)
    log = run._logs["amd64"]
    data = recorded_log()

    async def main() -> list[Event]:
        got: list[Event] = []
        events = run.events()
        with log.path.open("ab") as log.file:
            for at in range(0, len(data), 4096):
                feed(run, data[at : at + 4096], 512)
                got.append(await anext(events))  # one event now and then: it lags behind
        run._emit(RunFinished())
        async for event in events:
            got.append(event)
        return got

    got = asyncio.run(main())
    lines = [line for e in got if isinstance(e, LinesEvent) for line in e.lines]
    assert lines == decode_lines(data.rstrip(b"\n"))
    firsts = [e.first for e in got if isinstance(e, LinesEvent)]
    assert firsts == sorted(firsts) and firsts[0] == 0
    steps = [e.step for e in got if isinstance(e, StepChange)]
    assert steps and steps[-1] == run.status["amd64"].current_step
    assert isinstance(got[-1], RunFinished)


def test_a_resumed_run_replays_its_stored_lines_then_the_live_ones(tmp_path: Path) -> None:
    first = make_run(tmp_path)
    data = (DATA / "many_lines.log").read_bytes()  # one step printing 600 lines
    cut = len(data) // 2 + 7  # mid-line: the copy ends with part of a line
    first.record.log_path("amd64").write_bytes(data[:cut])
    first.record.update_job("amd64", state=JobState.RUNNING, pid=4242)
    resumed = BuildRun.resume(RunRecord.load(first.record.dir), first.config, first.pool)
    status, log = resumed.status["amd64"], resumed._logs["amd64"]
    assert status.offset == cut and status.lines == data[:cut].count(b"\n")
    # The step the history ends in: as if the run had never been left.
    assert status.current_step is not None and "RUN" in status.current_step

    async def main() -> list[Event]:
        resumed._queue_history()
        with log.path.open("ab") as log.file:
            feed(resumed, data[cut:], 4096)
        resumed._emit(RunFinished())
        got: list[Event] = []
        await read_until_finished(resumed, got)
        return got

    got = asyncio.run(main())
    lines = [line for e in got if isinstance(e, LinesEvent) for line in e.lines]
    assert lines == decode_lines(data.rstrip(b"\n"))
