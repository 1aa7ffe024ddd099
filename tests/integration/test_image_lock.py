"""One build of an image per arch at a time, across matui processes and operators.

On the rig's two builder hosts: two `matui build` of the same image started together run one
buildx per arch (the hosts' process list says so) and the second follows the first read-only or
is refused naming it; another operator (another state directory) is refused with the holder
named (user, machine, run, since); two different images build in parallel as before.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from matui.engine.records import list_runs
from tests.helpers.projects import make_project
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

SLOW = """\
ARG BASE
FROM ${BASE}
RUN for i in $(seq 1 16); do echo "tick $i"; sleep 0.5; done
"""


class Matui:
    """`matui build --json` in a subprocess; its stderr lines collected as they come."""

    def __init__(self, config: Path, state: Path) -> None:
        env = {**os.environ, "XDG_STATE_HOME": str(state), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "matui", "build", "--config", str(config), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.out = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None and self.proc.stdout is not None
        for line in self.proc.stderr:
            self.lines.append(line)
        self.out = self.proc.stdout.read()

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        return code, self.out, "".join(self.lines)


def wait_for(predicate: object, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert callable(predicate)
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def buildx_per_arch(repo: str) -> dict[str, int]:
    """`docker buildx build` processes on the hosts (one loopback machine here) per arch tag of
    ``repo``: the docker CLI process of each build (its plugin child is not counted)."""
    found = subprocess.run(["pgrep", "-af", "buildx build"], capture_output=True, text=True)
    counts = {"amd64": 0, "arm64": 0}
    for line in found.stdout.splitlines():
        argv = line.split()[1:]
        if not argv or Path(argv[0]).name != "docker":
            continue
        for arch in counts:
            if f"--tag={repo}:1.0-{arch}" in argv:
                counts[arch] += 1
    return counts


def test_two_builds_of_one_image_started_together_run_one_buildx_per_arch(
    rig: Rig, tmp_path: Path
) -> None:
    config, repo = make_project(tmp_path, rig, SLOW)
    state = tmp_path / "state"
    first, second = Matui(config, state), Matui(config, state)
    samples: list[dict[str, int]] = []

    def both_building() -> bool:
        samples.append(buildx_per_arch(repo))
        return samples[-1] == {"amd64": 1, "arm64": 1}

    wait_for(both_building, what="a buildx per arch on the hosts")
    while first.proc.poll() is None or second.proc.poll() is None:
        samples.append(buildx_per_arch(repo))
        time.sleep(0.2)
    assert all(n <= 1 for sample in samples for n in sample.values()), samples
    results = [first.finish(), second.finish()]
    runs = {json.loads(out)["run"] for _, out, _ in results if out.strip().startswith("{")}
    texts = [err for _, _, err in results]
    # The one that lost the race followed the holder read-only, or was refused naming it.
    followed = [t for t in texts if "attaching to it read-only" in t]
    refused = [t for t in texts if "already being built" in t or "is being built on" in t]
    assert len(followed) + len(refused) == 1, texts
    holder_code, holder_out, _ = next(r for r in results if r[2] not in followed + refused)
    assert holder_code == 0
    holder_run = json.loads(holder_out)["run"]
    assert {job["state"] for job in json.loads(holder_out)["jobs"]} == {"succeeded"}
    (other,) = followed + refused
    assert holder_run in other
    if followed:
        assert runs == {holder_run}  # it showed the holder's run, to its end


def test_a_second_build_on_this_machine_follows_the_running_one_read_only(
    rig: Rig, tmp_path: Path
) -> None:
    """Same operator, same state directory, the first build running: the second shows its logs
    and outcome (same run, same digests) without starting anything or writing into its record;
    Ctrl-C would only detach it."""
    config, repo = make_project(tmp_path, rig, SLOW)
    state = tmp_path / "state"
    first = Matui(config, state)
    wait_for(lambda: first.saw("tick 2"), what="the first build to run")
    second = Matui(config, state)
    wait_for(lambda: second.saw("attaching to it read-only"), what="the second to follow")
    assert buildx_per_arch(repo) == {"amd64": 1, "arm64": 1} or first.proc.poll() is not None
    code, out, err = first.finish()
    assert code == 0, err[-3000:]
    code2, out2, err2 = second.finish()
    assert code2 == 0, err2[-3000:]
    doc, doc2 = json.loads(out), json.loads(out2)
    assert doc2["run"] == doc["run"]
    digests = {job["arch"]: job["digest"] for job in doc["jobs"]}
    assert {job["arch"]: job["digest"] for job in doc2["jobs"]} == digests
    assert all(digests.values())
    assert "[amd64] " in err2 and "tick 16" in err2  # the same logs, to the end
    # The holder's record and local log copies are its own: byte for byte the hosts' logs.
    (record,) = list_runs(state / "matui")
    for key in ("amd64", "arm64"):
        host_log = (rig.host_job_dir(record.id, key) / "build.log").read_bytes()
        assert record.log_path(key).read_bytes() == host_log


def test_another_operator_is_refused_with_the_holder_named(rig: Rig, tmp_path: Path) -> None:
    config, repo = make_project(tmp_path, rig, SLOW)
    first = Matui(config, tmp_path / "state-a")
    wait_for(lambda: first.saw("tick 2"), what="the first build to run")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state-b")}
    second = subprocess.run(
        [sys.executable, "-m", "matui", "build", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert second.returncode == 1, second.stdout + second.stderr
    assert buildx_per_arch(repo) == {"amd64": 1, "arm64": 1} or first.proc.poll() is not None
    code, out, err = first.finish()
    assert code == 0, err[-3000:]
    run_id = json.loads(out)["run"]
    message = second.stderr
    assert "this image is already being built" in message
    assert run_id in message
    assert f"{getpass.getuser()}@{socket.gethostname()}" in message
    assert "since 20" in message  # the host's UTC stamp, e.g. 2026-12-01T03:20:00Z
    assert f"matui attach {run_id}" in message
    assert "linux/amd64" in message and "linux/arm64" in message
    assert "[amd64]" not in second.stdout  # nothing was built or followed


def test_two_different_images_build_in_parallel(rig: Rig, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config_a, repo_a = make_project(tmp_path / "a", rig, SLOW)
    config_b, repo_b = make_project(tmp_path / "b", rig, SLOW)
    a, b = Matui(config_a, tmp_path / "state"), Matui(config_b, tmp_path / "state")

    def both_images_building() -> bool:
        return buildx_per_arch(repo_a)["amd64"] == 1 and buildx_per_arch(repo_b)["amd64"] == 1

    wait_for(both_images_building, what="both images building at once")
    for proc in (a, b):
        code, out, err = proc.finish()
        assert code == 0, err[-3000:]
        assert {job["state"] for job in json.loads(out)["jobs"]} == {"succeeded"}
