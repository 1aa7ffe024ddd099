"""History on the rig: two real builds of one image, the second with a changed build arg and
Dockerfile; `matui runs --json` gives both verdicts and `matui changes` names what changed
since the last green run — as hashes, never a build arg's value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
ARG API_TOKEN
RUN test -n "$API_TOKEN" && echo token set
"""
FIRST_TOKEN = "first-token-value-4f1c"
SECOND_TOKEN = "second-token-value-9a2e"


def _set_token(config: Path, value: str) -> None:
    text = config.read_text()
    before, _, rest = text.partition("build_args = { ")
    assert rest, "make_project writes one build_args line"
    base = rest.split('"', 2)[1]
    config.write_text(before + f'build_args = {{ BASE = "{base}", API_TOKEN = "{value}" }}\n')


def test_two_runs_then_runs_json_and_changes_since_green(rig: Rig, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config, _ = make_project(tmp_path, rig, DOCKERFILE)
    _set_token(config, FIRST_TOKEN)
    first = run_matui("build", "--config", config, "--json", state=state)
    assert first.returncode == 0, first.stderr[-3000:]
    first_id = json.loads(first.stdout)["run"]

    dockerfile = tmp_path / "ctx" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN echo second\n")
    _set_token(config, SECOND_TOKEN)
    second = run_matui("build", "--config", config, "--json", state=state)
    assert second.returncode == 0, second.stderr[-3000:]
    second_id = json.loads(second.stdout)["run"]

    listed = run_matui("runs", "--json", state=state, timeout=60)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [r["run"] for r in runs] == [second_id, first_id]
    assert [r["verdict"]["kind"] for r in runs] == ["built", "built"]
    for run in runs:
        assert set(run["arches"]) == {"amd64", "arm64"}
        for arch in run["arches"].values():
            assert arch["state"] == "succeeded"
            assert arch["digest"].startswith("sha256:") and arch["seconds"] > 0
        assert "@" in run["who"]
    assert all(len(values) == 2 for values in runs[0]["trend"].values())

    changes = run_matui("changes", "--arch", "amd64", "--json", state=state, timeout=60)
    assert changes.returncode == 0, changes.stderr
    doc = json.loads(changes.stdout)
    assert doc["run"] == second_id and doc["green_run"] == first_id
    rows = {row["what"]: row for row in doc["rows"]}
    changed = {what for what, row in rows.items() if row["changed"]}
    assert {"Dockerfile sha256", "build arg API_TOKEN", "source"} <= changed
    assert not rows["build arg BASE"]["changed"]
    assert not rows["host"]["changed"] and rows["host"]["now"] == "amd64-1"
    # the base image as buildx resolved it, the same digest in both runs
    [base] = [row for what, row in rows.items() if what.startswith("base image ")]
    assert base["now"].startswith("sha256:") and not base["changed"]
    assert rows["docker version"]["now"] and rows["buildx version"]["now"]
    assert rows["Dockerfile sha256"]["now"].startswith("sha256:")

    table = run_matui("changes", "--arch", "arm64", state=state, timeout=60)
    assert f"since green run {first_id}" in table.stdout
    text = run_matui("runs", state=state, timeout=60)
    assert text.returncode == 0 and "TIME AND TREND" in text.stdout

    # a build arg's value is never kept nor shown: only its hash
    for output in (changes.stdout, table.stdout, listed.stdout):
        assert FIRST_TOKEN not in output and SECOND_TOKEN not in output
    for run_json in (state / "matui" / "runs").glob("*/run.json"):
        assert FIRST_TOKEN not in run_json.read_text()
        assert SECOND_TOKEN not in run_json.read_text()
