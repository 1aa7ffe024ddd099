"""On the rig: ``matui compare`` on real two-arch builds. One whose arm64 step exits 3 while
amd64 passes names that step as where the arches part ways (JSON and text), shows each arch's
state there, prints that step's own output from both arches side by side, and the arm64 failure
record carries how long the step took on amd64; a build that passes on both arches gives every
step's seconds on both, on a timeline the runner observed live (not estimated)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

FAILING = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"; sleep 0.3
RUN if [ "$(uname -m)" = aarch64 ]; then echo boom one; echo boom two >&2; exit 3; fi; echo fine
RUN echo built > /built
"""

PASSING = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"; sleep 0.3
RUN echo built > /built
"""


def compare_json(state: Path, *args: str) -> dict[str, Any]:
    result = run_matui("compare", "--json", *args, state=state)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_compare_names_the_step_where_arm64_failed(rig: Rig, tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, rig, FAILING)
    state = tmp_path / "state"
    build = run_matui("build", "--config", config, "--json", state=state)
    assert build.returncode == 1, build.stderr
    jobs = {job["arch"]: job for job in json.loads(build.stdout)["jobs"]}
    assert jobs["arm64"]["state"] == "failed" and jobs["amd64"]["state"] == "succeeded"

    data = compare_json(state, "--width", "30")
    diverging = data["first_divergence"]
    assert diverging is not None and "RUN if" in diverging["step"]
    row = data["rows"][diverging["row"]]
    assert row["diverges"] is True
    assert row["arches"]["amd64"]["state"] == "done"
    assert row["arches"]["arm64"]["state"] == "error"
    assert row["arches"]["amd64"]["seconds"] is not None
    # Every row before it agrees; the step after it ran on amd64 only.
    for earlier in data["rows"][: diverging["row"]]:
        states = {c["state"] for c in earlier["arches"].values()}
        assert states <= {"done", "cached"}, earlier
    later = [r for r in data["rows"] if "echo built" in r["step"]]
    assert [r["arches"]["arm64"]["state"] for r in later] == ["not reached"]
    assert [r["arches"]["amd64"]["state"] for r in later] == ["done"]
    # The runner saw the steps live: the timeline is observed, and the bars are as wide as asked.
    assert data["timeline"]["estimated"] == []
    assert all(len(bar) == 30 for bars in data["timeline"]["lanes"].values() for bar in bars)
    assert "X" in data["timeline"]["lanes"]["arm64"][diverging["row"]]

    # The failure record: how long the same step took on the arch that passed.
    failure = jobs["arm64"]["failure"]
    assert set(failure["elsewhere"]) == {"amd64"}
    assert failure["elsewhere"]["amd64"] == row["arches"]["amd64"]["seconds"]
    (record_file,) = state.rglob("run.json")
    saved = {job["arch"]: job for job in json.loads(record_file.read_text())["jobs"]}
    assert saved["arm64"]["failure"]["elsewhere"] == failure["elsewhere"]
    assert saved["amd64"]["steps"] and saved["arm64"]["steps"]

    text = run_matui("compare", "--width", "100", state=state)
    assert text.returncode == 0, text.stderr
    marked = [line for line in text.stdout.splitlines() if line.startswith("* #")]
    assert len(marked) == 1 and "RUN if" in marked[0], text.stdout
    assert "error" in marked[0] and "done" in marked[0]
    assert "parts ways at" in text.stdout and "timeline:" in text.stdout

    side = run_matui("compare", "--step", str(diverging["number"]), "--width", "100", state=state)
    assert side.returncode == 0, side.stderr
    lines = side.stdout.splitlines()
    assert lines[0].startswith(f"#{diverging['number']} ") and "RUN if" in lines[0]
    header = lines[1]
    assert header.index("amd64") < header.index("│") < header.index("arm64")
    # arm64's own lines sit in the right-hand column, amd64's "fine" in the left-hand one.
    assert any("boom one" in line.partition("│")[2] for line in lines), side.stdout
    assert any("fine" in line.partition("│")[0] for line in lines), side.stdout
    assert not any("arch is" in line for line in lines)  # another step's output


def test_a_passing_run_has_every_steps_seconds_on_both_arches(rig: Rig, tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, rig, PASSING)
    state = tmp_path / "state"
    build = run_matui("build", "--config", config, "--json", state=state)
    assert build.returncode == 0, build.stderr

    data = compare_json(state)
    assert data["first_divergence"] is None
    assert {j["state"] for j in data["jobs"].values()} == {"succeeded"}
    runs = [r for r in data["rows"] if "] RUN " in r["step"]]
    assert len(runs) == 3  # the project's cache-key step and the two above
    for row in runs:
        for arch in ("amd64", "arm64"):
            cell = row["arches"][arch]
            assert cell["state"] == "done", row
            assert isinstance(cell["seconds"], float), row
            assert cell["start"] is not None and cell["end"] >= cell["start"]
    sleepy = next(r for r in runs if "sleep 0.3" in r["step"])
    assert all(c["seconds"] >= 0.3 for c in sleepy["arches"].values())
    assert data["timeline"]["estimated"] == []
