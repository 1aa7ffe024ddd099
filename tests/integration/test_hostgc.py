"""Hosts that do not fill up, on the rig: a build leaves no context copy behind, `matui gc`
lists and (without --dry-run) frees job directories past their retention, never a running job,
every build cleans its hosts, and `matui check` shows matui's disk use.

The rig's builder hosts log in as one local user, whose ``~/.matui`` every test running now
shares, and every build now cleans it up. So the tests that count or remove job directories
reach the builder user through a private sshd that gives its sessions a home of their own
(``SetEnv HOME=``): what they see is only what they made.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from matui.engine.build import start_build
from matui.engine.config import load_config
from matui.engine.hostgc import DAY, GcReport
from matui.engine.records import JobState, list_runs, new_run_id
from matui.engine.ssh import SshPool
from tests.helpers.cli import read_until, run_matui, spawn_matui
from tests.helpers.projects import make_project, project
from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd, private_sshd

pytestmark = pytest.mark.rig

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo "hello from $(uname -m)"
"""


@dataclass(frozen=True)
class OwnHome:
    """A private sshd whose sessions (as the rig's builder user) have ``home`` as $HOME."""

    sshd: Sshd
    home: Path

    def job_dir(self, run_id: str, key: str = "amd64") -> Path:
        return self.home / ".matui" / "runs" / run_id / key


@pytest.fixture
def own_home(rig: Rig, tmp_path: Path) -> Iterator[OwnHome]:
    # Under /tmp, not tmp_path: the builder user must be able to reach it.
    home = Path(tempfile.mkdtemp(prefix="matui-gc-home-", dir="/tmp"))
    home.chmod(0o755)
    shutil.chown(home, rig.user, rig.user)
    # sshd takes its first SetEnv line only: one line, replacing the rig's, sets both.
    server = private_sshd(
        rig, tmp_path / "sshd", options=[f"SetEnv DOCKER_HOST={rig.docker_host} HOME={home}"]
    )
    try:
        yield OwnHome(server, home)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def gc_json(tmp_path: Path, config: Path, *extra: str) -> dict[str, Any]:
    result = run_matui("gc", "--config", config, "--json", *extra, state=tmp_path / "state")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def jobs_of(doc: dict[str, Any], run_id: str) -> dict[str, dict[str, Any]]:
    """The run's job directories as `matui gc --json` showed them (on the host that lists them)."""
    return {
        job["job"]: job for host in doc["hosts"] for job in host["jobs"] if job["run"] == run_id
    }


def make_old(path: Path, days: float) -> None:
    """`touch -d 'N days ago'` on a job directory and everything in it."""
    subprocess.run(
        ["find", str(path), "-exec", "touch", "-h", "-d", f"{days} days ago", "{}", "+"],
        check=True,
    )


def left_by_an_old_matui(rig: Rig, host: OwnHome, key: str = "amd64") -> tuple[str, Path]:
    """A finished job directory whose context copy is still there, as a matui before this
    change (or a cancel cut short) left them: owned by the builder user, like the real ones."""
    return plant(host.home, rig.user, key)


def plant(home: Path, user: str, key: str = "amd64") -> tuple[str, Path]:
    """:func:`left_by_an_old_matui` in ``user``'s ``home``; returns (run id, job directory)."""
    run_id = f"{new_run_id()}-old"
    job = home / ".matui" / "runs" / run_id / key
    (job / "context").mkdir(parents=True)
    (job / "context" / "Dockerfile").write_bytes(b"FROM scratch\n" + os.urandom(200_000))
    (job / "build.log").write_text("#1 DONE 0.1s\n")
    (job / "exit").write_text("0\n")
    (job / "lock").touch()
    for path in [home / ".matui", *(home / ".matui").rglob("*")]:
        shutil.chown(path, user, user)
    return run_id, job


def two_entries(config: Path) -> Path:
    """The project's config with a second host entry for the same sshd (same home)."""
    text = config.read_text()
    first = text[text.index("[[hosts]]") : text.index("[[images]]")]
    config.write_text(text.replace("[[images]]", first.replace('"h"', '"h2"') + "[[images]]", 1))
    return config


def test_a_two_arch_build_leaves_its_log_and_outcome_but_no_context(
    rig: Rig, tmp_path: Path
) -> None:
    config, _ = make_project(tmp_path, rig, DOCKERFILE)
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 0, build.stderr[-3000:]
    run_id = str(json.loads(build.stdout)["run"])
    for key in ("amd64", "arm64"):
        job = rig.host_job_dir(run_id, key)
        # The context copy went with the end of the build; the log and the outcome stay.
        assert not (job / "context").exists()
        assert (job / "exit").read_text() == "0\n"
        assert "hello from" in (job / "build.log").read_text()


def test_gc_lists_then_frees_what_is_due_and_nothing_in_a_dry_run(
    rig: Rig, own_home: OwnHome, tmp_path: Path
) -> None:
    config = two_entries(project(tmp_path, rig, own_home.sshd, quick=True))
    build = run_matui("build", "--config", config, "--json", state=tmp_path / "state")
    assert build.returncode == 0, build.stderr[-3000:]
    run_id = str(json.loads(build.stdout)["run"])
    job = own_home.job_dir(run_id)
    assert not (job / "context").exists() and (job / "exit").read_text() == "0\n"

    # Just built: listed, finished, kept; the two host entries share one ~/.matui.
    doc = gc_json(tmp_path, config, "--dry-run")
    assert doc["dry_run"] is True and doc["freed_bytes"] == doc["due_bytes"] == 0
    assert [h["host"] for h in doc["hosts"]] == ["h", "h2"]
    assert doc["hosts"][1]["same_as"] == "h" and doc["hosts"][1]["jobs"] == []
    (listed,) = doc["hosts"][0]["jobs"]
    assert (listed["run"], listed["state"], listed["action"]) == (run_id, "finished", "keep")
    assert listed["exit_code"] == 0 and listed["bytes"] > 0
    assert listed["reason"].startswith("log and outcome kept 14d after the build")

    # Past the retention (14 days by default), and a context left behind by an older matui.
    make_old(job, 15)
    old_run, left = left_by_an_old_matui(rig, own_home)
    doc = gc_json(tmp_path, config, "--dry-run")
    due = {j["run"]: j for j in doc["hosts"][0]["jobs"]}
    assert {r: (j["state"], j["action"], j["result"]) for r, j in due.items()} == {
        run_id: ("finished", "remove job", None),
        old_run: ("context left", "remove context", None),
    }
    assert due[run_id]["age_seconds"] >= 15 * DAY
    assert due[old_run]["frees_bytes"] >= 200_000
    assert doc["freed_bytes"] == 0
    assert doc["due_bytes"] == due[run_id]["bytes"] + due[old_run]["frees_bytes"]
    human = run_matui("gc", "--config", config, "--dry-run", state=tmp_path / "state")
    assert human.returncode == 0, human.stderr
    assert run_id in human.stdout and "would free" in human.stdout
    assert "dry run: nothing was removed" in human.stdout
    # The dry runs removed nothing.
    assert (job / "build.log").exists() and (left / "context" / "Dockerfile").exists()

    human = run_matui("gc", "--config", config, state=tmp_path / "state")
    assert human.returncode == 0, human.stdout + human.stderr
    assert not job.exists() and not job.parent.exists()
    assert not (left / "context").exists() and (left / "exit").read_text() == "0\n"
    rows = {r: [line for line in human.stdout.splitlines() if r in line] for r in due}
    assert "remove job" in rows[run_id][0] and "removed" in rows[run_id][0]
    assert "remove context" in rows[old_run][0] and "removed" in rows[old_run][0]
    assert "freed " in human.stdout.splitlines()[-1]

    # What is gone is gone; the old matui's job keeps its log and outcome for the retention.
    doc = gc_json(tmp_path, config)
    (kept,) = doc["hosts"][0]["jobs"]
    assert (kept["run"], kept["state"], kept["action"]) == (old_run, "finished", "keep")
    assert doc["freed_bytes"] == 0


def test_a_running_job_is_never_removed_however_old_it_looks(
    rig: Rig, own_home: OwnHome, tmp_path: Path
) -> None:
    config = project(tmp_path, rig, own_home.sshd)  # 12 ticks over 6 s
    proc = spawn_matui("build", "--config", config, state=tmp_path / "state")
    seen = read_until(proc, "tick 2")
    (record,) = list_runs(tmp_path / "state" / "matui")
    job = own_home.job_dir(record.id)
    try:
        make_old(job, 400)
        assert (job / "context").is_dir()
        doc = gc_json(tmp_path, config)
        (listed,) = doc["hosts"][0]["jobs"]
        assert (listed["run"], listed["state"]) == (record.id, "running")
        assert (listed["action"], listed["result"]) == ("keep", None)
        assert listed["reason"] == "running: its lock is held"
        assert doc["freed_bytes"] == 0
        assert (job / "context").is_dir()
    finally:
        rest, _ = proc.communicate(timeout=120)
    # The build went on, unharmed, to its end; then its context copy went.
    output = "".join(seen) + rest
    assert proc.returncode == 0, output
    assert "tick 12" in (job / "build.log").read_text()
    assert not (job / "context").exists() and (job / "exit").read_text() == "0\n"


def test_every_build_removes_job_directories_past_retention_on_its_hosts(
    rig: Rig, own_home: OwnHome, tmp_path: Path
) -> None:
    config_path = project(tmp_path, rig, own_home.sshd, quick=True)
    old_run, old = left_by_an_old_matui(rig, own_home)
    make_old(old, 30)

    async def build() -> tuple[GcReport, JobState]:
        config = load_config(config_path)
        async with SshPool(config.hosts) as pool:
            prepared = await start_build(config, pool, state_root=tmp_path / "state")
            assert prepared.housekeeping is not None
            report = await prepared.housekeeping
            status = await prepared.run.wait()
            return report, status["amd64"].state

    report, state = asyncio.run(build())
    assert state is JobState.SUCCEEDED
    (host,) = report.hosts
    (item,) = host.items
    assert item.decision.job.run_id == old_run
    assert (str(item.decision.action), str(item.result)) == ("remove job", "removed")
    assert not old.exists() and not old.parent.exists()


def test_check_shows_matuis_disk_use_per_host(rig: Rig, own_home: OwnHome, tmp_path: Path) -> None:
    config = two_entries(project(tmp_path, rig, own_home.sshd, quick=True))
    _, job = left_by_an_old_matui(rig, own_home)
    (job / "build.log").write_bytes(b"x" * 3_000_000)
    result = run_matui("check", "--config", config, "--json", state=tmp_path / "state")
    assert result.returncode == 0, result.stderr
    used = subprocess.run(
        ["du", "-sk", str(own_home.home / ".matui")], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    for host in json.loads(result.stdout)["hosts"]:
        assert host["matui_bytes"] == int(used) * 1024
        assert 3_200_000 <= host["matui_bytes"] < 3_400_000
    human = run_matui("check", "--config", config, state=tmp_path / "state")
    header, *rows = human.stdout.splitlines()
    column = header.index("MATUI")
    for row in rows[:2]:
        assert row[column:].split()[:2] == ["3.1", "MiB"], row


def test_gc_and_check_work_under_sh_fish_and_tcsh_logins(
    rig: Rig, own_home: OwnHome, tmp_path: Path
) -> None:
    """The scripts go base64-wrapped through `sh` whatever the login shell: each login's aged
    job directory is listed and removed, and check reads each login's ~/.matui. (The fish and
    tcsh logins' homes are their own: no build runs there, so no other test's gc.)"""
    logins = {
        "sh": (rig.user, own_home.home, own_home.sshd.port, own_home.sshd.known_hosts),
        "fish": (f"{rig.user}fish", None, rig.port_amd64, rig.known_hosts),
        "tcsh": (f"{rig.user}tcsh", None, rig.port_amd64, rig.known_hosts),
    }
    planted: dict[str, tuple[str, Path]] = {}
    hosts = ""
    for shell_name, (user, home, port, known_hosts) in logins.items():
        run_id, job = plant(home or Path(f"~{user}").expanduser(), user)
        make_old(job, 20)
        planted[shell_name] = (run_id, job)
        hosts += (
            f'[[hosts]]\nname = "{shell_name}"\narch = "amd64"\naddress = "127.0.0.1"\n'
            f'port = {port}\nuser = "{user}"\nknown_hosts = "{known_hosts}"\n\n'
        )
    config = tmp_path / "matui.toml"
    config.write_text(f'[defaults]\nidentity = "{rig.key}"\n\n{hosts}')
    check = run_matui("check", "--config", config, "--json", state=tmp_path / "state")
    assert check.returncode == 0, check.stderr
    for probe in json.loads(check.stdout)["hosts"]:
        assert probe["matui_bytes"] >= 200_000, probe
    doc = gc_json(tmp_path, config)
    for host in doc["hosts"]:
        assert host["error"] is None and host["same_as"] is None
        run_id, job = planted[host["host"]]
        (mine,) = [j for j in host["jobs"] if j["run"] == run_id]
        assert (mine["state"], mine["action"], mine["result"]) == (
            "context left",
            "remove job",
            "removed",
        )
        assert not job.exists()
