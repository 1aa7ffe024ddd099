"""Run records under the user's state dir: what was planned, where it ran, what came out.

Layout: ``$XDG_STATE_HOME/matui/runs/<run id>/run.json`` plus one ``<arch>.log`` per job holding
the job's output bytes exactly as the host wrote them.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "matui"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass
class RunRecord:
    """A run on disk; ``data`` is the JSON document, saved atomically on every change."""

    dir: Path
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["run"])

    @classmethod
    def create(cls, root: Path, data: dict[str, Any]) -> RunRecord:
        run_id = str(data.get("run") or new_run_id())
        data = {"run": run_id, "created": time.time(), **data}
        record = cls(root / "runs" / run_id, data)
        record.dir.mkdir(parents=True, exist_ok=False)
        record.save()
        return record

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        return cls(path, json.loads((path / "run.json").read_text()))

    def save(self) -> None:
        tmp = self.dir / "run.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.dir / "run.json")

    def log_path(self, job_key: str) -> Path:
        return self.dir / f"{job_key}.log"

    def job(self, key: str) -> dict[str, Any]:
        for job in self.data.get("jobs", []):
            if job.get("key") == key:
                return dict(job)
        raise KeyError(key)

    def update_job(self, key: str, /, **fields: Any) -> None:
        for job in self.data.setdefault("jobs", []):
            if job.get("key") == key:
                job.update(fields)
                break
        else:
            self.data["jobs"].append({"key": key, **fields})
        self.save()


def list_runs(root: Path) -> list[RunRecord]:
    """Every readable run, newest first; a damaged record is skipped, not fatal."""
    runs_dir = root / "runs"
    if not runs_dir.is_dir():
        return []
    records = []
    for path in runs_dir.iterdir():
        try:
            records.append(RunRecord.load(path))
        except (OSError, ValueError):
            continue
    records.sort(key=lambda r: (r.data.get("created", 0), r.id), reverse=True)
    return records


def unfinished_runs(root: Path, image: str | None = None) -> list[RunRecord]:
    """Runs an earlier matui left with builds still going (newest first)."""
    return [
        r
        for r in list_runs(root)
        if r.data.get("state") == "running" and (image is None or r.data.get("image") == image)
    ]


def local_lines(record: RunRecord, job_key: str) -> list[str]:
    """The complete lines already received for a job, decoded as the live stream decodes them."""
    path = record.log_path(job_key)
    if not path.exists():
        return []
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    return [line.decode("utf-8", "replace").rstrip("\r") for line in data.split(b"\n")[:-1]]


def find_run(root: Path, run_id: str | None, image: str | None = None) -> RunRecord:
    """A run by id (a unique prefix will do), else the newest run, of ``image`` when given."""
    runs = [r for r in list_runs(root) if image is None or r.data.get("image") == image]
    if run_id:
        matches = [r for r in runs if r.id == run_id or r.id.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise LookupError(f"no run {run_id!r} under {root / 'runs'}; `matui runs` lists them")
        raise LookupError(f"run id {run_id!r} is ambiguous: {', '.join(r.id for r in matches)}")
    if not runs:
        what = f" of {image}" if image else ""
        raise LookupError(f"no run{what} recorded yet; start one with `matui build`")
    return runs[0]
