"""Run records for tests, staged without building: one arch's job with the names every matui
run derives from the arch (platform, host, arch tag, ref), and a run saved with its logs, so
each test spells out only the fields it is about."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from matui.engine.records import JobRecord, RunRecord

DEFAULT_REPO = "r.example/app"


def job_record(arch: str, repo: object = DEFAULT_REPO, **values: Any) -> JobRecord:
    """The job for ``arch``: platform ``linux/<arch>``, host ``<arch>-1`` (unless ``host`` is
    given), tag ``1.0-<arch>`` and ref ``<repo>:1.0-<arch>``; ``values`` sets the other fields."""
    values.setdefault("host", f"{arch}-1")
    return JobRecord(
        key=arch,
        arch=arch,
        platform=f"linux/{arch}",
        arch_tag=f"1.0-{arch}",
        ref=f"{repo}:1.0-{arch}",
        **values,
    )


def staged_run(
    root: Path, repo: str, jobs: Iterable[JobRecord], logs: Mapping[str, Iterable[str]]
) -> RunRecord:
    """A run of ``repo:1.0`` saved under ``root`` with ``jobs``, each key's log holding the
    lines ``logs`` gives it (one per line, newline-ended)."""
    record = RunRecord.create(root, image=repo, tags=["1.0"], platforms=[], jobs=list(jobs))
    for key, lines in logs.items():
        record.log_path(key).write_text("\n".join(lines) + "\n")
    return record
