"""On the rig: a build whose arm64 step fails with exit code 3 while amd64 succeeds carries, in
``matui build --json``, the arm64 failure record (step, the step's own exit code, its own lines,
a cause) and none for amd64; a user signature from the config names the cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run_matui
from tests.helpers.projects import ARM64_EXITS_3, make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig


def test_arm64_step_exit_3_has_a_failure_record(rig: Rig, tmp_path: Path) -> None:
    config, _ = make_project(tmp_path, rig, ARM64_EXITS_3)
    with config.open("a") as file:
        file.write(
            "\n[[failure_signatures]]\npattern = '^boom two$'\ncause = \"boom\"\n"
            'advice = "the boom step is known to fail on arm64"\n'
        )
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 1, build.stderr
    jobs = {job["arch"]: job for job in json.loads(build.stdout)["jobs"]}
    assert jobs["amd64"]["state"] == "succeeded" and jobs["amd64"]["failure"] is None
    arm = jobs["arm64"]
    assert arm["state"] == "failed"
    assert arm["exit_code"] == 1  # buildx's own
    failure = arm["failure"]
    assert failure["exit_code"] == 3  # the step's own
    assert failure["step"].startswith("[") and "RUN if" in failure["step"]
    assert failure["step"] in arm["failing_step"]
    # That step's own lines, not the log's tail; BuildKit does not keep stdout and stderr in
    # order (seen here: "boom two" first now and then).
    assert sorted(failure["lines"]) == ["boom one", "boom two"]
    assert failure["cause"] == "boom" and failure["retry"] is False
    assert failure["advice"] == "the boom step is known to fail on arm64"
    for key in ("stage", "dockerfile_line"):
        assert key in failure

    # The run's record keeps it for the next morning.
    (record_file,) = (tmp_path / "state").rglob("run.json")
    saved = {job["arch"]: job for job in json.loads(record_file.read_text())["jobs"]}
    assert saved["arm64"]["failure"] == failure
