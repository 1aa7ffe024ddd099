"""A job's steps as a table, and a run's arches side by side.

An on-call engineer whose arm64 failed while amd64 passed asks three questions: where did the
arches part ways, which arch is slow and at which step, and what did that step print on each.
This module answers them once for both front ends, from what a run left on this machine: each
job's log (read by :class:`~matui.engine.build.progress.ProgressParser`, the runner's own
parser: no second parser here) and, when the runner saw the job live, when each step started
and ended (:class:`StepClock`, saved with the job as ``JobRecord.steps``).

* :func:`step_table`: one :class:`Step` per buildx step of the job's last attempt, in build
  order (``#N``): its name as buildx prints it, stage, state, seconds (``#N DONE 1.2s``), and
  an offset within the job for a text timeline. Without observed times (an older run, a log
  replayed after a reattach) steps are laid out one after another from their durations, in log
  order, and the table says the timeline is ``estimated``.
* :func:`compare`: the rows of several arches aligned by step name (the arch-specific parts —
  the platform prefix, a digest, the per-arch tag — normalised away), each arch's state and
  seconds, the first row where they part ways, and :meth:`Comparison.timeline`: bars on one time
  axis, sized to a width.
* :func:`step_output` and :func:`side_by_side`: one step's own lines from each arch.

Part of the headless engine: standard library and lower engine layers only.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from matui.engine.build.failure import log_lines, stage_of
from matui.engine.build.progress import ProgressParser, StepEvent, StepState, step_of

if TYPE_CHECKING:
    from matui.engine.records import JobRecord, RunRecord

__all__ = [
    "OUTPUT_LINES",
    "Cell",
    "CompareRow",
    "Comparison",
    "Lane",
    "RowState",
    "Step",
    "StepClock",
    "StepOutput",
    "StepTable",
    "compare",
    "compare_run",
    "elsewhere",
    "match_key",
    "normalise_name",
    "side_by_side",
    "step_output",
    "step_table",
]

OUTPUT_LINES = 2000
"""Lines of one step's output :func:`step_output` keeps per arch (its last ones)."""

_BANNER = "#0 building with "
"""buildx's first line: a retried job's log holds every attempt, and only the last counts."""


class RowState(StrEnum):
    """What became of a step on one arch."""

    DONE = "done"
    CACHED = "cached"
    ERROR = "error"
    CANCELED = "canceled"
    RUNNING = "running"
    NOT_REACHED = "not reached"
    """The arch never started this step (it failed earlier, or was stopped)."""
    NO_END = "no end seen"
    """The job ended but its log shows no end for this step (buildx's plain printer skips some
    ``DONE`` lines; a lost job's step)."""

    @property
    def outcome(self) -> str:
        """What a comparison looks at: done and cached both produced the step's result, so a
        cache hit on one arch is no parting of ways."""
        return "ok" if self in (RowState.DONE, RowState.CACHED) else str(self)


_ENDS = {
    StepState.DONE: RowState.DONE,
    StepState.CACHED: RowState.CACHED,
    StepState.ERROR: RowState.ERROR,
    StepState.CANCELED: RowState.CANCELED,
}


# -- observed times ----------------------------------------------------------------------------


class StepClock:
    """When the runner saw each step of a job start and end, in seconds since the job started
    (observed live, per chunk of output: as exact as the log arrives). Kept as plain JSON."""

    def __init__(self, saved: Iterable[Mapping[str, Any]] = ()) -> None:
        self._steps: dict[int, dict[str, float | None]] = {}
        for item in saved:
            try:
                number = int(item["step"])
                start = _seconds(item.get("start"))
            except (KeyError, TypeError, ValueError):
                continue  # a damaged entry is a step without observed times, not an error
            self._steps[number] = {"start": start, "end": _seconds(item.get("end"))}

    def observe(self, events: Iterable[StepEvent], at: float) -> None:
        for event in events:
            times = self._steps.get(event.step)
            if event.state is StepState.STARTED:
                if times is None:
                    self._steps[event.step] = {"start": at, "end": None}
            elif times is None:
                self._steps[event.step] = {"start": None, "end": at}
            else:
                times["end"] = at

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"step": number, "start": _round(t["start"]), "end": _round(t["end"])}
            for number, t in sorted(self._steps.items())
        ]

    def __len__(self) -> int:
        return len(self._steps)


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]  # a str or a number; ValueError otherwise
    return number if number >= 0 and number == number else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- one job's step table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One buildx step of a job."""

    number: int
    """Its ``#N``."""
    name: str
    """As buildx prints it: ``[builder 3/4] RUN make``."""
    stage: str | None
    state: RowState
    seconds: float | None
    """From ``#N DONE 1.2s``. A step with no ``DONE`` (failed, cancelled, still running) has
    the time of its last output line instead (BuildKit stamps each with the seconds since the
    step started): a lower bound. None: no time at all (cached, silent)."""
    start: float
    """Seconds since the job started (observed, or laid out from durations)."""
    end: float
    observed: bool
    """``start`` is the runner's live observation, not an estimate."""

    @property
    def cached(self) -> bool:
        return self.state is RowState.CACHED

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "stage": self.stage,
            "state": str(self.state),
            "seconds": self.seconds,
            "cached": self.cached,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "observed": self.observed,
        }


@dataclass(frozen=True)
class StepTable:
    """A job's steps in build order (``#N`` as buildx numbered them), last attempt only."""

    steps: tuple[Step, ...] = ()
    estimated: bool = False
    """At least one step's place on the timeline was laid out from durations, not observed."""

    def to_json(self) -> dict[str, Any]:
        return {"estimated": self.estimated, "steps": [s.to_json() for s in self.steps]}


@dataclass
class _Row:
    number: int
    name: str
    state: RowState | None = None
    seconds: float | None = None


def step_table(
    lines: Iterable[str],
    *,
    observed: Iterable[Mapping[str, Any]] = (),
    job_state: str | None = None,
    elapsed: float | None = None,
) -> StepTable:
    """The step table of one job from its log ``lines`` (as
    :func:`~matui.engine.text.decode_lines` makes them), the step times the runner observed
    (``JobRecord.steps``), and the job's state (``succeeded``, ``failed``, ...; None or a
    state not finished: still building). ``elapsed``: the job's seconds so far, where a step
    still running ends on the timeline."""
    parser = ProgressParser()
    rows: dict[int, _Row] = {}
    last_output: dict[int, str] = {}  # each step's last ``#N 0.243 text`` line
    for batch in _batches(lines):
        # Whole batches go to the parser's fast path (step output lines skipped in C), cut
        # where buildx's banner starts another attempt: only the last attempt counts.
        for k, segment in enumerate(batch.split("\n" + _BANNER)):
            if k or segment.startswith(_BANNER):
                parser, rows, last_output = ProgressParser(), {}, {}
                segment = segment if not k else _BANNER + segment
            wanted = {n for n, row in rows.items() if row.state is None}
            for event in parser.feed_text(segment):
                wanted.add(event.step)
                row = rows.get(event.step)
                if row is None:
                    row = rows[event.step] = _Row(event.step, event.name or f"#{event.step}")
                elif event.name and row.name.startswith("#"):
                    row.name = event.name
                if event.state is not StepState.STARTED:
                    row.state = _ENDS[event.state]
                    row.seconds = event.seconds
            for number in wanted:
                found = _last_output(segment, number)
                if found is not None:
                    last_output[number] = found
    for number, row in rows.items():
        if row.seconds is None and row.state is not RowState.CACHED:
            row.seconds = _output_seconds(last_output.get(number))
    running = job_state is None or job_state in ("queued", "uploading", "running")
    exported = min((n for n, r in rows.items() if r.name.startswith("exporting ")), default=None)
    clock = {item["step"]: item for item in StepClock(observed).to_json()}
    steps: list[Step] = []
    estimated = False
    cursor = 0.0
    for number in sorted(rows):
        row = rows[number]
        state = row.state
        if state is None:
            if running:
                state = RowState.RUNNING
            elif job_state == "succeeded" or (exported is not None and number < exported):
                # buildx's plain printer skips some DONE lines; a built image means every
                # step ended, and the exporter runs only once every step before it has.
                state = RowState.DONE
            else:
                state = RowState.NO_END
        seen = clock.get(number)
        start: float | None = None if seen is None else seen["start"]
        observed_here = start is not None
        if start is None:
            start, estimated = cursor, True
        if row.seconds is not None:
            end = start + row.seconds
        elif seen is not None and seen["end"] is not None and seen["end"] >= start:
            end = seen["end"]
        elif state is RowState.RUNNING and elapsed is not None and elapsed >= start:
            end = elapsed
        else:
            end = start
        cursor = end
        steps.append(
            Step(
                number,
                row.name,
                stage_of(row.name),
                state,
                row.seconds,
                round(start, 3),
                round(end, 3),
                observed_here,
            )
        )
    return StepTable(tuple(steps), estimated)


_BATCH = 8192
"""Lines handed to the parser at once."""


def _batches(lines: Iterable[str]) -> Iterator[str]:
    """The lines joined by "\\n" in batches of :data:`_BATCH` (a log can be far larger than
    memory should hold at once)."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= _BATCH:
            yield "\n".join(batch)
            batch = []
    if batch:
        yield "\n".join(batch)


def _last_output(text: str, number: int) -> str | None:
    """The last ``#number 0.243 text`` line of ``text`` (lines joined by "\\n"), found from
    the end in C rather than line by line."""
    key = f"#{number} "
    end = len(text)
    while (at := text.rfind(key, 0, end)) >= 0:
        if at == 0 or text[at - 1] == "\n":
            head = at + len(key)
            if "0" <= text[head : head + 1] <= "9":
                stop = text.find("\n", head)
                return text[at : stop if stop >= 0 else len(text)]
        end = at
    return None


def _output_seconds(line: str | None) -> float | None:
    """The BuildKit time stamp of a ``#N 0.243 text`` output line."""
    if line is None:
        return None
    head = line.partition(" ")[2].partition(" ")[0]
    try:
        value = float(head)
    except ValueError:
        return None
    return value if 0 <= value < 1e9 else None


def job_table(
    record: RunRecord, job: JobRecord, observed: Sequence[Mapping[str, Any]] | None = None
) -> StepTable:
    """A recorded job's step table from its stored log and saved step times."""
    return step_table(
        log_lines(record.log_path(job.key)),
        observed=job.steps if observed is None else observed,
        job_state=str(job.state),
        elapsed=job.seconds,
    )


class JobNames(Protocol):
    """What naming a step across arches needs of a job (a ``JobRecord`` or a ``BuildJob``)."""

    @property
    def arch(self) -> str: ...
    @property
    def ref(self) -> str: ...
    @property
    def arch_tag(self) -> str: ...


# -- names across arches -----------------------------------------------------------------------

_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}")
_PLATFORM_RE = re.compile(r"^\[[a-z0-9]+/[a-z0-9]+(?:/[a-z0-9]+)? ")
# The ``3/4`` of ``[builder 3/4]``: BuildKit shares one vertex between concurrent builds of the
# same instruction on one engine, and its name is then the other build's (seen on the rig: an
# arch's FROM printed as ``[1/3] FROM ...`` in a five-step build), so steps match without it.
_COUNTER_RE = re.compile(r"^\[([^\]]*?) ?[0-9]+/[0-9]+\]")
ARCH_TAG = "<arch tag>"


def normalise_name(name: str, *, ref: str = "", arch_tag: str = "") -> str:
    """A step's name without what differs by arch: the platform prefix of a multi-platform
    build (``[linux/arm64 builder 3/4]``), a digest pin, and the job's own per-arch tag (the
    docker driver's ``pushing REPO:1.0-arm64 with docker``)."""
    name = _PLATFORM_RE.sub("[", name)
    name = _DIGEST_RE.sub("", name)
    if ref and arch_tag and ref in name:
        name = name.replace(ref, ref[: len(ref) - len(arch_tag)] + ARCH_TAG)
    elif arch_tag and arch_tag in name and name.startswith(("pushing ", "naming ")):
        name = name.replace(arch_tag, ARCH_TAG)
    return name


def match_key(name: str) -> str:
    """What a normalised step name is matched across arches by: without the step counter
    (``[builder 3/4]`` -> ``[builder]``), which a step shared with another build on the same
    engine takes from that build."""
    return _COUNTER_RE.sub(r"[\1]", name)


def _keys(table: StepTable, ref: str, arch_tag: str) -> list[tuple[str, str, Step]]:
    """Each step's matching key (:func:`match_key` of its normalised name, numbered when a
    name repeats), its normalised name, and the step."""
    seen: dict[str, int] = {}
    keyed = []
    for step in table.steps:
        name = normalise_name(step.name, ref=ref, arch_tag=arch_tag)
        key = match_key(name)
        count = seen.get(key, 0)
        seen[key] = count + 1
        keyed.append((key if not count else f"{key}\x00{count}", name, step))
    return keyed


# -- arches side by side -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One arch's part of a row."""

    arch: str
    state: RowState
    seconds: float | None = None
    number: int | None = None
    """The step's ``#N`` on this arch (None: not reached)."""
    start: float | None = None
    end: float | None = None

    @property
    def cached(self) -> bool:
        return self.state is RowState.CACHED

    def label(self) -> str:
        """``done 1.2s``, ``cached``, ``error 0.3s``, ``not reached``."""
        if self.seconds is not None and self.state is not RowState.CACHED:
            return f"{self.state} {self.seconds:.1f}s"
        return str(self.state)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "seconds": self.seconds,
            "cached": self.cached,
            "number": self.number,
            "start": _round(self.start),
            "end": _round(self.end),
        }


@dataclass(frozen=True)
class CompareRow:
    """One step, aligned across the arches."""

    number: int
    """Its ``#N`` on the first arch that has it (the same on every arch, as a rule)."""
    name: str
    """Normalised (see :func:`normalise_name`)."""
    stage: str | None
    cells: tuple[Cell, ...]
    diverges: bool = False
    """The first row where the arches part ways."""

    def cell(self, arch: str) -> Cell:
        for cell in self.cells:
            if cell.arch == arch:
                return cell
        raise KeyError(arch)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "step": self.name,
            "stage": self.stage,
            "diverges": self.diverges,
            "arches": {c.arch: c.to_json() for c in self.cells},
        }


@dataclass(frozen=True)
class Lane:
    """One arch's timeline: one bar per row, each exactly ``width`` characters."""

    arch: str
    bars: tuple[str, ...]
    estimated: bool


BAR_CHARS = {
    RowState.DONE: "█",
    RowState.CACHED: "░",
    RowState.ERROR: "X",
    RowState.CANCELED: "-",
    RowState.RUNNING: ">",
    RowState.NO_END: "?",
}
"""A bar's fill by state, told apart without colour (16 colours, a log pasted in a ticket)."""


@dataclass(frozen=True)
class Comparison:
    """A run's arches side by side."""

    run: str
    arches: tuple[str, ...]
    jobs: tuple[tuple[str, str, float | None], ...]
    """Per arch: (arch, job state, job seconds)."""
    rows: tuple[CompareRow, ...]
    first_divergence: int | None
    """Index into :attr:`rows` of the first row where the arches part ways."""
    why: str
    """One line: how they part ways there (``arm64 error 0.4s; amd64 done 0.3s``), or why
    they do not."""
    estimated: tuple[str, ...] = field(default_factory=tuple)
    """Arches whose timeline is laid out from durations, not observed."""

    @property
    def span(self) -> float:
        """The time axis: the latest end of any step on any arch (seconds)."""
        ends = [c.end for r in self.rows for c in r.cells if c.end is not None]
        return max(ends, default=0.0)

    @property
    def diverging(self) -> CompareRow | None:
        return None if self.first_divergence is None else self.rows[self.first_divergence]

    def find(self, which: str) -> CompareRow:
        """A row by ``#N`` (a number) or by a piece of its name; LookupError names the fix."""
        text = which.strip().removeprefix("#")
        if text.isdigit():
            number = int(text)
            found = [r for r in self.rows if r.number == number]
            if not found:
                found = [r for r in self.rows if any(c.number == number for c in r.cells)]
        else:
            found = [r for r in self.rows if which in r.name]
        if len(found) == 1:
            return found[0]
        listing = "; ".join(f"#{r.number} {r.name}" for r in (found or self.rows)[:8])
        if not found:
            raise LookupError(
                f"--step {which}: run {self.run} has no such step (it has: {listing or 'none'})"
            )
        raise LookupError(f"--step {which}: matches {len(found)} steps ({listing}); be precise")

    def timeline(self, width: int) -> tuple[Lane, ...]:
        """Per arch, one bar per row on one time axis (0 .. :attr:`span`), ``width`` columns:
        the slow arch and the slow step show at a glance. A step that ran gets one column at
        least; one never reached gets none."""
        width = max(1, width)
        span = self.span
        lanes = []
        for arch in self.arches:
            bars = []
            for row in self.rows:
                cell = row.cell(arch)
                bars.append(_bar(cell, span, width))
            lanes.append(Lane(arch, tuple(bars), arch in self.estimated))
        return tuple(lanes)

    def to_json(self, width: int = 40) -> dict[str, Any]:
        diverging = self.diverging
        return {
            "run": self.run,
            "arches": list(self.arches),
            "jobs": {arch: {"state": s, "seconds": sec} for arch, s, sec in self.jobs},
            "first_divergence": None
            if diverging is None
            else {
                "row": self.first_divergence,
                "number": diverging.number,
                "step": diverging.name,
                "why": self.why,
            },
            "why": self.why,
            "rows": [r.to_json() for r in self.rows],
            "timeline": {
                "width": width,
                "span": round(self.span, 3),
                "estimated": list(self.estimated),
                "lanes": {lane.arch: list(lane.bars) for lane in self.timeline(width)},
            },
        }


def _bar(cell: Cell, span: float, width: int) -> str:
    if cell.start is None or cell.state is RowState.NOT_REACHED:
        return " " * width
    scale = width / span if span > 0 else 0.0
    first = min(width - 1, int(cell.start * scale))
    last = max(first + 1, min(width, round((cell.end or cell.start) * scale)))
    return " " * first + BAR_CHARS[cell.state] * (last - first) + " " * (width - last)


def compare(
    run: str,
    jobs: Sequence[JobRecord],
    tables: Mapping[str, StepTable],
) -> Comparison:
    """The arches of a run side by side: ``jobs`` in the run's order, ``tables`` their step
    tables by job key (a job without one never reached any step)."""
    arches = tuple(j.arch for j in jobs)
    keyed = {j.key: _keys(tables.get(j.key, StepTable()), j.ref, j.arch_tag) for j in jobs}
    # One order for every arch: the first arch's build order, each other arch's extra steps
    # placed after the step they follow on that arch.
    order: list[str] = []
    for job in jobs:
        after = -1
        for key, _, _ in keyed[job.key]:
            if key in order:
                after = order.index(key)
                continue
            after += 1
            order.insert(after, key)
    by_arch = {j.key: {key: (name, step) for key, name, step in keyed[j.key]} for j in jobs}
    rows: list[CompareRow] = []
    for key in order:
        cells = []
        first: Step | None = None
        name = ""
        for job in jobs:
            found = by_arch[job.key].get(key)
            if found is None:
                cells.append(Cell(job.arch, RowState.NOT_REACHED))
                continue
            if first is None:
                name, first = found
            step = found[1]
            cells.append(
                Cell(job.arch, step.state, step.seconds, step.number, step.start, step.end)
            )
        assert first is not None
        rows.append(CompareRow(first.number, name, first.stage, tuple(cells)))
    first_divergence = None
    why = "one arch only: nothing to compare" if len(jobs) < 2 else "the arches agree at every step"
    for i, row in enumerate(rows):
        if len({c.state.outcome for c in row.cells}) > 1:
            first_divergence = i
            rows[i] = CompareRow(row.number, row.name, row.stage, row.cells, diverges=True)
            worst = sorted(row.cells, key=lambda c: c.state.outcome == "ok")
            why = "; ".join(f"{c.arch} {c.label()}" for c in worst)
            break
    if first_divergence is None and len(jobs) >= 2:
        states = {str(j.state) for j in jobs}
        if len(states) > 1:
            why = "the steps agree; the jobs ended " + ", ".join(
                f"{j.arch} {j.state}" for j in jobs
            )
    estimated = tuple(j.arch for j in jobs if tables.get(j.key, StepTable()).estimated)
    return Comparison(
        run,
        arches,
        tuple((j.arch, str(j.state), j.seconds) for j in jobs),
        tuple(rows),
        first_divergence,
        why,
        estimated,
    )


def compare_run(
    record: RunRecord, observed: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
) -> Comparison:
    """:func:`compare` of a recorded run, each job's table read from its stored log;
    ``observed`` overrides the saved step times by job key (a live run's, not saved yet)."""
    tables = {
        j.key: job_table(record, j, None if observed is None else observed.get(j.key))
        for j in record.jobs
    }
    return compare(record.id, record.jobs, tables)


def elsewhere(
    step: str,
    failed: JobNames,
    passed: Iterable[tuple[JobNames, StepTable]],
) -> dict[str, float]:
    """How long the step that failed on ``failed`` (its name as buildx printed it) took on each
    arch that passed, by arch; an arch where it was cached or printed no time is left out."""
    wanted = normalise_name(step, ref=failed.ref, arch_tag=failed.arch_tag)
    out: dict[str, float] = {}
    for job, table in passed:
        for s in table.steps:
            if normalise_name(s.name, ref=job.ref, arch_tag=job.arch_tag) == wanted:
                if s.seconds is not None and s.state is RowState.DONE:
                    out[job.arch] = s.seconds
                break
    return out


# -- one step's output -------------------------------------------------------------------------


@dataclass(frozen=True)
class StepOutput:
    """One step's own lines on one arch (its last :data:`OUTPUT_LINES`), without ``#N``."""

    arch: str
    number: int | None
    lines: tuple[str, ...]
    dropped: int = 0
    """Earlier lines of the step left out."""

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "number": self.number,
            "lines": list(self.lines),
            "dropped": self.dropped,
        }


def step_output(
    lines: Iterable[str], arch: str, number: int | None, limit: int = OUTPUT_LINES
) -> StepOutput:
    """Step ``#number``'s own lines of one job's log (the last attempt's), ``#N `` cut off
    (BuildKit's timestamp stays: it is the time within the step)."""
    kept: deque[str] = deque(maxlen=limit)
    total = 0
    if number is None:
        return StepOutput(arch, None, ())
    prefix = f"#{number} "
    for line in lines:
        if line.startswith(_BANNER):
            kept.clear()
            total = 0
            continue
        if line.startswith(prefix) and step_of(line) == number:
            kept.append(line[len(prefix) :])
            total += 1
    return StepOutput(arch, number, tuple(kept), total - len(kept))


def run_step_output(record: RunRecord, row: CompareRow) -> tuple[StepOutput, ...]:
    """``row``'s own lines on each arch of a recorded run."""
    outputs = []
    for job in record.jobs:
        cell = row.cell(job.arch)
        outputs.append(step_output(log_lines(record.log_path(job.key)), job.arch, cell.number))
    return tuple(outputs)


def side_by_side(outputs: Sequence[StepOutput], width: int) -> list[str]:
    """The outputs in columns across ``width`` characters (a header per arch; long lines
    wrapped, never cut; tabs expanded), for a terminal."""
    if not outputs:
        return []
    sep = " │ "
    col = max(8, (width - len(sep) * (len(outputs) - 1)) // len(outputs))
    columns: list[list[str]] = []
    for out in outputs:
        head = f"{out.arch} #{out.number}" if out.number is not None else f"{out.arch}: not reached"
        cells = [head[:col], "─" * min(col, max(len(head), 1))]
        if out.dropped:
            cells.append(f"({out.dropped} earlier lines)"[:col])
        for line in out.lines:
            text = line.expandtabs(4)
            cells.extend(text[i : i + col] for i in range(0, max(len(text), 1), col))
        columns.append(cells)
    height = max(len(c) for c in columns)
    return [
        sep.join((c[i] if i < len(c) else "").ljust(col) for c in columns).rstrip()
        for i in range(height)
    ]
