"""A image's earlier runs, as the on-call engineer reads them the next morning.

BuildKit keeps only recent build records on the host, so matui's own run records are the
history: this module turns them into what both front ends show — one row per run (when, who,
the verdict, each arch's state, failing step, seconds and digest, who published which tags), a
per-arch duration trend across runs (and a text sparkline of it), and "what changed since the
last green run of this arch": base images' digests, build args, the Dockerfile's hash, the
source, the host and its docker and buildx versions, side by side.

It also holds what a job records about its inputs when it ends (:func:`job_inputs`, called by
``build/run.py``): the base images' resolved digests parsed from the buildx log, and each build
arg as a hash of its value — never the value, which may be a secret.

Pure functions over :class:`~matui.engine.records.RunRecord`; reading the records from disk is
``records.list_runs``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matui.engine.records import JobRecord, JobState, RunRecord, Verdict
from matui.engine.text import neutralise

TREND_RUNS = 8
"""Runs a trend spans (the row's own run and the ones before it)."""

SPARK = "▁▂▃▄▅▆▇█"
SPARK_ASCII = "_.-:=+*#"
"""The same eight levels for a terminal without the block characters (a plain console)."""
SPARK_GAP = " "
"""A run without a duration for that arch (it failed, or did not build it)."""

ARG_HASH_CHARS = 12
"""Hex characters of a build arg's value hash: enough to tell values apart, never the value."""


# --- one run as a row ----------------------------------------------------------------------


@dataclass(frozen=True)
class ArchRun:
    """One arch of one run."""

    arch: str
    state: str
    host: str
    seconds: float | None = None
    digest: str | None = None
    failing_step: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "state": self.state,
            "host": self.host,
            "seconds": self.seconds,
            "digest": self.digest,
            "failing_step": self.failing_step,
        }


@dataclass(frozen=True)
class Published:
    """A release tag a run's publishes made serve its index: who, when, which digest."""

    tag: str
    outcome: str
    digest: str | None
    at: float
    by: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "outcome": self.outcome,
            "digest": self.digest,
            "at": self.at,
            "by": self.by,
        }


@dataclass(frozen=True)
class HistoryRow:
    """One run as the history shows it."""

    run: str
    image: str
    tags: tuple[str, ...]
    started: float
    who: str | None
    verdict: Verdict
    arches: tuple[ArchRun, ...]
    published: tuple[Published, ...] = ()
    trend: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)
    """Per arch, its seconds over this run and up to :data:`TREND_RUNS` - 1 runs of the same
    image before it, oldest first (None: that run has no duration for it)."""

    @property
    def failed(self) -> list[ArchRun]:
        """The arches that failed or were lost, for "arch@step"."""
        return [a for a in self.arches if a.state in (JobState.FAILED, JobState.LOST)]

    def failed_text(self) -> str:
        """``arm64@#6 [3/3] RUN make`` for each failed arch ("" when none failed)."""
        return ", ".join(
            f"{a.arch}@{a.failing_step}" if a.failing_step else f"{a.arch} ({a.state})"
            for a in self.failed
        )

    def arch(self, name: str) -> ArchRun | None:
        return next((a for a in self.arches if a.arch == name), None)

    def time_text(self, *, ascii_only: bool = False) -> str:
        """Each arch's seconds and trend: ``amd64 12s ▃▅█  arm64 33s ▂▄ ``."""
        return "  ".join(
            f"{a.arch} {seconds_text(a.seconds)} "
            f"{sparkline(self.trend.get(a.arch, ()), ascii_only=ascii_only)}".rstrip()
            for a in self.arches
        )

    def published_text(self) -> str:
        """``1.0,latest by rel@laptop`` ("" when nothing was published)."""
        by: dict[str | None, list[str]] = {}
        for p in self.published:
            by.setdefault(p.by, []).append(p.tag)
        return "; ".join(",".join(tags) + (f" by {who}" if who else "") for who, tags in by.items())

    def to_json(self) -> dict[str, Any]:
        """The row's own keys, joined to the run record's in ``matui runs --json``."""
        return {
            "who": self.who,
            "verdict": {"kind": str(self.verdict.kind), "reason": self.verdict.reason},
            "arches": {a.arch: a.to_json() for a in self.arches},
            "published": [p.to_json() for p in self.published],
            "trend": {arch: list(values) for arch, values in self.trend.items()},
        }


def _failing_step(job: JobRecord) -> str | None:
    if job.failing_step:
        return job.failing_step
    step = (job.failure or {}).get("step")
    return str(step) if step else None


def published_tags(record: RunRecord) -> list[Published]:
    """Each release tag whose latest outcome serves the run's index, with who did it."""
    out: list[Published] = []
    for attempt in record.publishes:
        for result in attempt.results:
            if result.verified:
                out = [p for p in out if p.tag != result.tag]
                out.append(
                    Published(
                        result.tag, str(result.outcome), result.digest, attempt.at, attempt.by
                    )
                )
    return out


def job_seconds(job: JobRecord) -> float | None:
    """The duration a trend plots: a succeeded build's seconds (a failed build stops early, and
    would read as a fast one)."""
    if job.state is not JobState.SUCCEEDED or job.seconds is None:
        return None
    return float(job.seconds)


def history(
    runs: Iterable[RunRecord],
    *,
    image: str | None = None,
    limit: int | None = None,
    trend_runs: int = TREND_RUNS,
) -> list[HistoryRow]:
    """The runs (of ``image`` when given) newest first, as rows, each with its trend.

    ``runs`` is every run read (``records.list_runs``): a row's trend reaches back past
    ``limit`` into older runs of the same image.
    """
    ordered = sorted(
        (r for r in runs if image is None or r.image == image),
        key=lambda r: (r.created, r.id),
    )
    by_image: dict[str, list[RunRecord]] = {}
    rows: list[HistoryRow] = []
    for record in ordered:
        earlier = by_image.setdefault(record.image, [])
        earlier.append(record)
        window = earlier[-trend_runs:]
        trend = {job.arch: tuple(_seconds_of(r, job.arch) for r in window) for job in record.jobs}
        rows.append(row(record, trend))
    rows.reverse()
    return rows if limit is None else rows[:limit]


def _seconds_of(record: RunRecord, arch: str) -> float | None:
    job = next((j for j in record.jobs if j.arch == arch), None)
    return None if job is None else job_seconds(job)


def row(
    record: RunRecord, trend: Mapping[str, tuple[float | None, ...]] | None = None
) -> HistoryRow:
    """One run as a row (its trend as given: :func:`history` computes it across runs)."""
    return HistoryRow(
        run=record.id,
        image=record.image,
        tags=tuple(record.tags),
        started=record.created,
        who=record.started_by,
        verdict=record.verdict(),
        arches=tuple(
            ArchRun(
                arch=j.arch,
                state=str(j.state),
                host=j.host,
                seconds=None if j.seconds is None else round(float(j.seconds), 3),
                digest=j.digest,
                failing_step=_failing_step(j),
            )
            for j in record.jobs
        ),
        published=tuple(published_tags(record)),
        trend=dict(trend or {}),
    )


def sparkline(values: Sequence[float | None], *, ascii_only: bool = False) -> str:
    """One character per value, its height scaled between the smallest and largest value (all
    equal: the middle); a gap for None."""
    levels = SPARK_ASCII if ascii_only else SPARK
    known = [v for v in values if v is not None]
    if not known:
        return SPARK_GAP * len(values)
    low, high = min(known), max(known)
    out = []
    for value in values:
        if value is None:
            out.append(SPARK_GAP)
        elif high == low:
            out.append(levels[len(levels) // 2 - 1])
        else:
            out.append(levels[round((value - low) / (high - low) * (len(levels) - 1))])
    return "".join(out)


def seconds_text(seconds: float | None) -> str:
    """``42s``, ``3m05s``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


# --- what a job was built from -------------------------------------------------------------

_DIGEST = rb"sha256:[0-9a-f]{64}"
_REF = rb"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}"
# "#3 [internal] load metadata for REF" ("[linux/arm64 internal]" in a multi-platform build)
_METADATA_RE = re.compile(
    rb"^#[0-9]+ \[(?:[^\]\n]* )?internal\] load metadata for (" + _REF + rb")\r?$", re.M
)
# "#4 [1/3] FROM REF@sha256:..." and "#4 resolve REF@sha256:... done" (a pull)
_FROM_RE = re.compile(
    rb"^#[0-9]+ (?:\[[^\]\n]*\] FROM|resolve) (" + _REF + rb")@(" + _DIGEST + rb")(?=[\s\r]|$)",
    re.M,
)
_SCAN_BLOCK = 1 << 20


def base_images(path: Path) -> dict[str, str | None]:
    """The base images a build resolved, from its buildx log: each ``FROM`` reference as buildx
    named it, with the digest it resolved to (None: buildx loaded its metadata but never said
    the digest, e.g. the build failed first). Read in blocks; only the matching lines are
    decoded, and each reference is made inert (it is host text)."""
    found: dict[str, str | None] = {}
    try:
        file = path.open("rb")
    except OSError:
        return found
    with file:
        rest = b""
        while block := file.read(_SCAN_BLOCK):
            data = rest + block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data[-4096:]  # one line longer than any reference: only its end matters
                continue
            rest = data[cut + 1 :]
            _scan(data[:cut], found)
        if rest:
            _scan(rest, found)
    return found


def _scan(data: bytes, found: dict[str, str | None]) -> None:
    if b"load metadata for " in data:
        for match in _METADATA_RE.finditer(data):
            found.setdefault(_text(match.group(1)), None)
    if b"@sha256:" in data:
        for match in _FROM_RE.finditer(data):
            found[_text(match.group(1))] = match.group(2).decode("ascii")


def _text(raw: bytes) -> str:
    return neutralise(raw.decode("ascii", "replace"))


def arg_hash(value: str) -> str:
    """A build arg's value as the record keeps it: the start of its sha256, never the value."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:ARG_HASH_CHARS]


def job_inputs(
    *,
    log: Path,
    build_args: Mapping[str, str],
    dockerfile: str,
    source: str | None,
    source_files: Mapping[str, str] | None,
) -> dict[str, Any]:
    """What a job was built from (``JobRecord.inputs``): base images (ref → digest), build args
    (name → :func:`arg_hash` of the value), the Dockerfile's path and content hash (from the
    source manifest the job was sent), and the source digest."""
    path = os.path.normpath(dockerfile)
    entry = (source_files or {}).get(path)
    return {
        "base_images": base_images(log),
        "build_args": {name: arg_hash(value) for name, value in sorted(build_args.items())},
        "dockerfile": path,
        "dockerfile_sha256": entry.split()[0] if entry else None,
        "source": source,
    }


# --- what changed since the last green run -------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One input, in the green run and in this one."""

    what: str
    green: str | None
    now: str | None

    @property
    def changed(self) -> bool:
        return self.green != self.now

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "green": self.green, "now": self.now, "changed": self.changed}


@dataclass(frozen=True)
class Changes:
    """This run's arch against the last earlier run of the image where that arch succeeded."""

    run: str
    arch: str
    green_run: str | None
    green_started: float | None
    rows: tuple[Change, ...] = ()

    @property
    def changed(self) -> list[Change]:
        return [c for c in self.rows if c.changed]

    def message(self) -> str:
        """One line: what the comparison found."""
        if self.green_run is None:
            return f"no earlier green run of {self.arch}"
        n = len(self.changed)
        if n == 0:
            return f"{self.arch}: nothing recorded changed since green run {self.green_run}"
        return f"{self.arch}: {n} change{'s' if n != 1 else ''} since green run {self.green_run}"

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "arch": self.arch,
            "green_run": self.green_run,
            "green_started": self.green_started,
            "message": self.message(),
            "rows": [c.to_json() for c in self.rows],
        }


def last_green(record: RunRecord, arch: str, runs: Iterable[RunRecord]) -> RunRecord | None:
    """The newest run of the same image, started before ``record``, where ``arch`` succeeded."""
    candidates = [
        r
        for r in runs
        if r.image == record.image
        and r.id != record.id
        and (r.created, r.id) < (record.created, record.id)
        and any(j.arch == arch and j.state is JobState.SUCCEEDED for j in r.jobs)
    ]
    return max(candidates, key=lambda r: (r.created, r.id), default=None)


def _facts(record: RunRecord, job: JobRecord) -> dict[str, Any]:
    """The job's host facts: its own (``host_facts``, from the pre-flight probe) when recorded,
    else the run's probe of that host; {} when neither says."""
    own = getattr(job, "host_facts", None)
    if own is not None and not isinstance(own, Mapping):
        own = own.to_json() if hasattr(own, "to_json") else None
    if isinstance(own, Mapping) and own:
        return dict(own)
    probe = next((h for h in record.hosts if h.name == job.host), None)
    if probe is None:
        return {}
    return {
        "docker_version": probe.docker_version,
        "buildx_version": probe.buildx_version,
        "native_arch": probe.native_arch,
    }


def _text_or_none(value: Any) -> str | None:
    return None if value is None else neutralise(str(value))


def _keyed_rows(label: str, a: Any, b: Any, missing: str | None) -> list[Change]:
    """A row per key of either side's mapping (``{ref: digest}``, ``{arg: hash}``), sorted;
    a key one side lacks reads ``missing`` there."""
    a, b = a or {}, b or {}
    return [
        Change(
            f"{label} {neutralise(str(key))}",
            _text_or_none(a.get(key)) if key in a else missing,
            _text_or_none(b.get(key)) if key in b else missing,
        )
        for key in sorted(set(a) | set(b))
    ]


def _inputs(job: JobRecord) -> dict[str, Any]:
    inputs = job.inputs if isinstance(job.inputs, Mapping) else {}
    return dict(inputs)


def compare_jobs(
    green: tuple[RunRecord, JobRecord], now: tuple[RunRecord, JobRecord]
) -> list[Change]:
    """Every input of two jobs of one arch, side by side (unknown on either side: None)."""
    (green_run, green_job), (now_run, now_job) = green, now
    a, b = _inputs(green_job), _inputs(now_job)
    fa, fb = _facts(green_run, green_job), _facts(now_run, now_job)
    rows = [
        Change("host", green_job.host, now_job.host),
        Change("emulated", str(green_job.emulated).lower(), str(now_job.emulated).lower()),
    ]
    for name in ("docker_version", "buildx_version"):
        rows.append(
            Change(name.replace("_", " "), _text_or_none(fa.get(name)), _text_or_none(fb.get(name)))
        )
    rows += _keyed_rows("base image", a.get("base_images"), b.get("base_images"), None)
    rows += _keyed_rows("build arg", a.get("build_args"), b.get("build_args"), "(not set)")
    rows.append(
        Change(
            "Dockerfile sha256",
            _text_or_none(a.get("dockerfile_sha256")),
            _text_or_none(b.get("dockerfile_sha256")),
        )
    )
    rows.append(
        Change(
            "source",
            _text_or_none(green_job.source or a.get("source")),
            _text_or_none(now_job.source or b.get("source")),
        )
    )
    return rows


def changes_since_green(record: RunRecord, arch: str, runs: Iterable[RunRecord]) -> Changes:
    """What changed for ``arch`` (``arm64`` or ``linux/arm64``) between the last earlier green
    run of the image and ``record``. Raises LookupError when ``record`` has no job of that
    arch."""
    job = next((j for j in record.jobs if arch in (j.arch, j.platform)), None)
    if job is None:
        have = ", ".join(j.arch for j in record.jobs) or "none"
        raise LookupError(f"run {record.id} has no arch {arch!r} (it built: {have})")
    arch = job.arch
    green = last_green(record, arch, runs)
    if green is None:
        return Changes(record.id, arch, None, None)
    green_job = next(j for j in green.jobs if j.arch == arch)
    return Changes(
        record.id,
        arch,
        green.id,
        green.created,
        tuple(compare_jobs((green, green_job), (record, job))),
    )
