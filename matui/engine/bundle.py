"""A run's stored logs read back, and the incident bundle: one ``.tar.gz`` holding everything an
engineer needs to look at a run elsewhere.

Both read only what the run left on this machine (its record directory, see
:mod:`matui.engine.records`): ``matui logs`` prints a job's stored log, ``matui bundle`` packs
every log, the record, the host probes, the plan, the flags, the source lists and the Dockerfile.
Log bytes go through the one decoder (:func:`matui.engine.text.decode_lines`), so what is
printed or packed is inert text; the step of a line is read by the progress parser's own
:func:`~matui.engine.build.progress.step_of`.

Build-arg values never enter a record, and the hosts already blot secret-looking values out of
the logs; the bundle still replaces every value of a secret-looking build arg (read from the run's
config when it is still there) in every file it packs, and the default of a secret-looking
``ARG NAME=default`` in the Dockerfile, with ``***``: a bundle is made to be passed around.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matui.engine.build.progress import step_of
from matui.engine.config import ConfigError, ImageConfig, load_config, looks_like_secret
from matui.engine.records import JobRecord, JobState, RunRecord
from matui.engine.text import decode_lines

REDACTED = "***"
MIN_REDACT = 4
"""Shorter values are not replaced (as on the hosts): ``***`` for every ``1`` would ruin a log."""

_BLOCK = 1 << 20


# -- stored logs ------------------------------------------------------------------------------


def stored_lines(path: Path, *, step: int | None = None) -> Iterator[str]:
    """The lines of a stored log, decoded once, read 1 MiB at a time (a log can be big); with
    ``step``, only the lines of buildx step ``#step``. A missing file has no lines."""
    if not path.exists():
        return
    with open(path, "rb") as log:
        rest = b""
        while block := log.read(_BLOCK):
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            rest = block[cut + 1 :]
            yield from _only_step(decode_lines(block[:cut]), step)
        if rest:
            yield from _only_step(decode_lines(rest), step)


def _only_step(lines: list[str], step: int | None) -> list[str]:
    if step is None:
        return lines
    return [line for line in lines if step_of(line) == step]


def failing_step_number(job: JobRecord) -> int | None:
    """The buildx step number of a job's recorded failing step (``#7 [2/3] RUN ...``)."""
    return step_of(job.failing_step) if job.failing_step else None


@dataclass(frozen=True)
class LogPart:
    """One job's share of what ``matui logs`` prints: its lines, or why there are none."""

    job: JobRecord
    path: Path
    step: int | None
    note: str | None = None

    def lines(self) -> Iterator[str]:
        return stored_lines(self.path, step=self.step)


class LogSelectionError(LookupError):
    """A ``--arch``/``--failed`` choice this run cannot answer (the message names the fix)."""


def select_logs(
    record: RunRecord, *, arch: str | None = None, step: int | None = None, failed: bool = False
) -> list[LogPart]:
    """What ``matui logs`` prints for a run: every job (or ``arch``'s), whole or one step;
    ``failed``: the failing step of each failed job (its whole log when no step was recorded)."""
    jobs = list(record.jobs)
    if arch is not None:
        jobs = [j for j in jobs if arch in (j.arch, j.platform, j.key)]
        if not jobs:
            known = ", ".join(j.arch for j in record.jobs) or "none"
            raise LogSelectionError(
                f"--arch {arch}: run {record.id} has no such arch (it has: {known})"
            )
    if not failed:
        return [LogPart(j, record.log_path(j.key), step) for j in jobs]
    parts = []
    for job in jobs:
        if job.state is not JobState.FAILED:
            continue
        number = failing_step_number(job)
        note = None if number is not None else "no failing step recorded: the whole log"
        parts.append(LogPart(job, record.log_path(job.key), number, note))
    if not parts:
        raise LogSelectionError(f"--failed: no job of run {record.id} failed")
    return parts


# -- the bundle -------------------------------------------------------------------------------


class BundleExists(FileExistsError):
    """The bundle's file exists already and was not named explicitly."""


def default_bundle_name(record: RunRecord) -> str:
    return f"matui-{record.id}.tar.gz"


@dataclass
class BundleReport:
    """What :func:`write_bundle` wrote: the file, the member names, and the notes it made."""

    path: Path
    members: list[str]
    notes: list[str] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)  # build-arg names whose values it blots


def run_image_config(record: RunRecord) -> ImageConfig | None:
    """The run's image as its config file says now (None: the file is gone or unreadable)."""
    if not record.config:
        return None
    try:
        return load_config(Path(record.config)).image(record.image)
    except (OSError, ConfigError, LookupError, ValueError):
        return None


class Redactor:
    """Blots the values of secret-looking build args out of text, and the defaults of
    secret-looking ``ARG`` lines out of a Dockerfile."""

    _ARG_LINE_RE = re.compile(r"^(\s*ARG\s+)(.*)$", re.IGNORECASE | re.MULTILINE)
    _ARG_PAIR_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|'[^']*'|\S*)")

    def __init__(self, build_args: Mapping[str, str]) -> None:
        self.names = sorted(n for n in build_args if looks_like_secret(n))
        values = {build_args[n] for n in self.names}
        self.values = sorted((v for v in values if len(v) >= MIN_REDACT), key=lambda v: -len(v))

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        return text

    def dockerfile(self, text: str) -> str:
        def pair(match: re.Match[str]) -> str:
            name = match.group(1)
            return f"{name}={REDACTED}" if looks_like_secret(name) else match.group(0)

        def line(match: re.Match[str]) -> str:
            return match.group(1) + self._ARG_PAIR_RE.sub(pair, match.group(2))

        return self.text(self._ARG_LINE_RE.sub(line, text))


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def summary_text(record: RunRecord) -> str:
    """``SUMMARY.txt``: the verdict, then one line per arch (state, host, duration, failing
    step or error)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.created))
    lines = [
        f"run {record.id}: {record.image}:{','.join(record.tags)} started {when}",
        f"verdict: {record.verdict().line()}",
        "",
    ]
    for job in record.jobs:
        host = job.host + (" (emulated)" if job.emulated else "")
        detail = job.failing_step or job.error or ""
        exit_code = f" exit {job.exit_code}" if job.exit_code is not None else ""
        lines.append(
            f"{job.arch}: {job.state}{exit_code} on {host} in {_duration(job.seconds)}"
            + (f" at {detail}" if detail else "")
        )
    for flag in record.flags:
        lines.append(f"flag: {flag.severity} {flag.kind} {flag.subject}: {flag.message}")
    return "\n".join(lines) + "\n"


def _plan(record: RunRecord, dockerfile: str) -> dict[str, Any]:
    return {
        "image": record.image,
        "tags": list(record.tags),
        "platforms": list(record.platforms),
        "config": record.config,
        "context": record.context,
        "dockerfile": dockerfile,
        "jobs": [
            {
                "arch": j.arch,
                "platform": j.platform,
                "host": j.host,
                "emulated": j.emulated,
                "arch_tag": j.arch_tag,
                "ref": j.ref,
            }
            for j in record.jobs
        ],
    }


def bundle_members(record: RunRecord, image: ImageConfig | None = None) -> BundleContents:
    """Every file of the bundle as text (redacted), by its name inside the bundle."""
    redactor = Redactor(image.build_args if image is not None else {})
    notes: list[str] = []
    files: dict[str, str] = {}
    for job in record.jobs:
        path = record.log_path(job.key)
        if path.exists():
            files[f"logs/{job.arch}.log"] = "".join(f"{line}\n" for line in stored_lines(path))
        else:
            notes.append(f"{job.arch}: no local log (the job never started sending output)")
        source = record.source_path(job.key)
        if source.exists():
            with contextlib.suppress(OSError):
                files[f"sources/{job.arch}.source.json"] = source.read_text(errors="replace")
    files["run.json"] = _json(record.to_json())
    files["hosts.json"] = _json([h.to_json() for h in record.hosts])
    dockerfile_name = image.dockerfile if image is not None else "Dockerfile"
    files["plan.json"] = _json(_plan(record, dockerfile_name))
    flags = [*record.flags, *record.source_flags()]
    files["flags.json"] = _json([f.to_json() for f in flags])
    if record.context is None:
        notes.append("Dockerfile: the run recorded no build context")
    else:
        dockerfile = Path(record.context) / dockerfile_name
        try:
            files["Dockerfile"] = redactor.dockerfile(dockerfile.read_text(errors="replace"))
            notes.append(
                f"Dockerfile: read from {dockerfile} when the bundle was made "
                "(it may have changed since the run)"
            )
        except OSError as exc:
            notes.append(f"Dockerfile: not included: {dockerfile} cannot be read now ({exc})")
    if image is None:
        notes.append(
            "build args: the run's config is gone or unreadable, so only the hosts' own "
            "redaction of the logs applies"
        )
    files["SUMMARY.txt"] = summary_text(record)
    readme = [
        f"matui incident bundle of run {record.id}, made "
        + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "",
        "SUMMARY.txt      the verdict and each arch's state, host, duration, failing step",
        "run.json         the run record",
        "plan.json        what was built where (image, tags, jobs, context, Dockerfile name)",
        "hosts.json       the builder hosts as probed (arch, docker, buildx, QEMU, disk)",
        "flags.json       the run's flags",
        "logs/ARCH.log    each arch's build log (control sequences removed)",
        "sources/         each arch's source file list (path -> digest), when recorded",
        "Dockerfile       the Dockerfile, when it could still be read",
        "",
        f"Values of secret-looking build args are replaced with {REDACTED}.",
        "",
        *notes,
    ]
    files["README.txt"] = "\n".join(readme) + "\n"
    return BundleContents(
        {name: redactor.text(text) for name, text in files.items()}, notes, redactor.names
    )


@dataclass(frozen=True)
class BundleContents:
    files: dict[str, str]
    notes: list[str]
    redacted: list[str]


def write_bundle(
    record: RunRecord, out: Path, *, overwrite: bool = False, image: ImageConfig | None = None
) -> BundleReport:
    """Write the run's bundle to ``out`` (a ``.tar.gz``, mode 0600: it holds logs). An existing
    ``out`` is replaced only with ``overwrite``; else :class:`BundleExists`. ``image``: the run's
    image config (default: read from the run's config file) for the build-arg values to blot."""
    if image is None:
        image = run_image_config(record)
    contents = bundle_members(record, image)
    top = f"matui-{record.id}"
    now = time.time()
    out = out.absolute()
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name in _ordered(contents.files):
                data = contents.files[name].encode()
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size = len(data)
                info.mtime = int(now)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        if overwrite:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)  # fails if out exists, even when made meanwhile
            except FileExistsError:
                raise BundleExists(
                    f"{out} exists; name it with -o to replace it, or choose another name"
                ) from None
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return BundleReport(
        out,
        [f"{top}/{name}" for name in _ordered(contents.files)],
        contents.notes,
        contents.redacted,
    )


def _ordered(names: Mapping[str, str]) -> list[str]:
    first = ["README.txt", "SUMMARY.txt"]
    return [n for n in first if n in names] + sorted(n for n in names if n not in first)
