"""`matui logs` and `matui bundle` on the rig: a real two-arch build whose arm64 step fails with
exit code 3, its stored logs read back (one arch, the failing step), a live run followed
read-only, and the incident bundle opened with `tar`, holding no secret build-arg value."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from matui.engine.records import RunRecord, list_runs
from tests.helpers.cli import run_matui
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

SECRET = "tok-5e6f7a8b9c0d"
DEFAULT_SECRET = "dflt-0a1b2c3d4e"

DOCKERFILE = f"""\
ARG BASE
FROM ${{BASE}}
ARG API_TOKEN={DEFAULT_SECRET}
RUN echo "arch is $(uname -m)"; echo "token $API_TOKEN"
RUN if [ "$(uname -m)" = aarch64 ]; then echo boom; exit 3; fi
"""


def _project(tmp_path: Path, rig: Rig, dockerfile: str) -> Path:
    config, _ = make_project(tmp_path, rig, dockerfile)
    text = config.read_text()
    assert "build_args = { BASE = " in text
    config.write_text(
        text.replace("build_args = { BASE = ", f'build_args = {{ API_TOKEN = "{SECRET}", BASE = ')
    )
    return config


def test_logs_and_bundle_of_a_run_whose_arm64_failed(rig: Rig, tmp_path: Path) -> None:
    config = _project(tmp_path, rig, DOCKERFILE)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 1, build.stderr[-3000:]
    doc = json.loads(build.stdout)
    jobs = {job["arch"]: job for job in doc["jobs"]}
    assert jobs["arm64"]["state"] == "failed" and jobs["amd64"]["state"] == "succeeded"
    failing = jobs["arm64"]["failing_step"]
    step = int(failing[1:].split()[0])

    arm = run_matui("logs", "--arch", "arm64", state=tmp_path / "state")
    assert arm.returncode == 0, arm.stderr
    assert "arch is aarch64" in arm.stdout
    assert "[arm64]" not in arm.stdout  # one arch: no prefix
    both = run_matui("logs", state=tmp_path / "state")
    assert "[amd64] " in both.stdout and "[arm64] " in both.stdout
    assert "[arm64] " + arm.stdout.splitlines()[0] in both.stdout.splitlines()

    failed = run_matui("logs", "--failed", state=tmp_path / "state")
    assert failed.returncode == 0, failed.stderr
    lines = failed.stdout.splitlines()
    assert lines and all(line.startswith(f"#{step} ") for line in lines), lines
    assert any(line.endswith(" boom") for line in lines)
    assert any("exit code: 3" in line for line in lines)
    assert (
        run_matui("logs", "--step", str(step), "--arch", "arm64", state=tmp_path / "state").stdout
        == failed.stdout
    )

    made = run_matui("bundle", cwd=tmp_path, state=tmp_path / "state")
    assert made.returncode == 0, made.stderr
    assert "API_TOKEN" in made.stderr  # says which build arg it blotted
    bundle = tmp_path / f"matui-{doc['run']}.tar.gz"
    listing = subprocess.run(
        ["tar", "tzf", str(bundle)], capture_output=True, text=True, check=True
    ).stdout.split()
    top = f"matui-{doc['run']}/"
    expected = [
        "README.txt",
        "SUMMARY.txt",
        "run.json",
        "hosts.json",
        "plan.json",
        "flags.json",
        "Dockerfile",
        "logs/amd64.log",
        "logs/arm64.log",
        "sources/amd64.source.json",
        "sources/arm64.source.json",
    ]
    assert sorted(listing) == sorted(top + name for name in expected)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "xzf", str(bundle), "-C", str(out)], check=True)
    for path in (out / top).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data, path
            assert DEFAULT_SECRET.encode() not in data, path
    summary = (out / top / "SUMMARY.txt").read_text()
    assert "verdict: failed: arm64 failed" in summary
    assert "arm64: failed exit 1 on emu-1 (emulated) in " in summary and failing in summary
    assert "amd64: succeeded exit 0 on amd64-1 in " in summary
    assert "ARG API_TOKEN=***" in (out / top / "Dockerfile").read_text()
    assert "token ***" in (out / top / "logs/amd64.log").read_text()
    assert json.loads((out / top / "hosts.json").read_text())  # the probes are there

    again = run_matui("bundle", cwd=tmp_path, state=tmp_path / "state")
    assert again.returncode == 2 and "exists" in again.stderr
    with tarfile.open(bundle) as tar:  # untouched by the refused second bundle
        assert len(tar.getnames()) == len(expected)


def test_logs_follow_a_run_still_building(rig: Rig, tmp_path: Path) -> None:
    dockerfile = "ARG BASE\nFROM ${BASE}\nRUN sleep 8; echo follow-end-$(uname -m)\n"
    config = _project(tmp_path, rig, dockerfile)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    build = subprocess.Popen(
        [sys.executable, "-m", "matui", "build", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        # Follow once both jobs are launched on their hosts (the record has their pids).
        deadline = time.monotonic() + 120
        record: RunRecord | None = None
        while time.monotonic() < deadline and build.poll() is None:
            runs = list_runs(tmp_path / "state" / "matui")
            if runs and all(job.pid for job in runs[0].jobs):
                record = runs[0]
                break
            time.sleep(0.2)
        assert record is not None, "the build never launched both jobs"
        # Ctrl-C detaches: the follower says so and ends; the build goes on.
        detaching = subprocess.Popen(
            [sys.executable, "-m", "matui", "logs", "--follow", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert detaching.stdout is not None
        first = detaching.stdout.readline()  # following: the run's lines so far arrive
        assert first.startswith(("[amd64] ", "[arm64] ")), first
        detaching.send_signal(signal.SIGINT)
        _, err = detaching.communicate(timeout=60)
        assert detaching.returncode == 0, err
        assert f"detached from run {record.id}; its builds go on" in err
        assert build.poll() is None
        follow = run_matui(
            "logs", "--follow", "--arch", "arm64", "--config", config, state=tmp_path / "state"
        )
        assert follow.returncode == 0, follow.stderr[-2000:]
        assert "has finished" not in follow.stderr  # it followed live (the step sleeps 8 s)
        assert "follow-end-aarch64" in follow.stdout
        assert "follow-end-x86_64" not in follow.stdout  # only the arch asked for
        assert build.wait(timeout=600) == 0
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    # The followed run's own record was not written by the follower: the builder finished it.
    final = RunRecord.load(record.dir)
    assert str(final.state) == "succeeded"
