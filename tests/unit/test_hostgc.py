"""Hosts that do not fill up: which job directories are due (pure), the host's listing parsed,
the scripts themselves run by a real ``sh`` in a scratch ``$HOME`` (a held lock is a real
``flock``), the ``job_retention_days`` key, ``matui check``'s disk column and ``matui gc``'s
table.

The same scripts against the rig's sshd hosts: ``tests/integration/test_hostgc.py``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matui.cli import format_gc
from matui.engine import shell
from matui.engine.config import ConfigError, HostConfig, parse_config
from matui.engine.hostgc import (
    DAY,
    UNFINISHED_GRACE,
    Action,
    Decision,
    GcItem,
    GcReport,
    HostGc,
    HostListing,
    JobDir,
    JobDirState,
    ListingError,
    Result,
    decide,
    format_age,
    parse_listing,
    parse_results,
)
from matui.engine.probe import parse_probe
from matui.engine.shell import GcTarget, UnsafeValue

NOW = 1_800_000_000


def job(
    key: str = "amd64",
    *,
    run: str = "20260101-000000-abcdef",
    running: bool = False,
    ended_ago: int | None = 60,
    written_ago: int = 60,
    context: int | None = None,
    size: int = 32768,
) -> JobDir:
    return JobDir(
        run_id=run,
        job_key=key,
        running=running,
        ended=None if ended_ago is None else NOW - ended_ago,
        exit_code=None if ended_ago is None else 0,
        newest=NOW - written_ago,
        bytes=size,
        context_bytes=context,
    )


def one(j: JobDir, retention_days: int = 14) -> Decision:
    (decision,) = decide(HostListing(NOW, "m 1000 /home/b", 1 << 20, (j,)), retention_days)
    return decision


# --------------------------------------------------------------------------------------------
# which directories are due


def test_a_finished_job_is_kept_for_the_retention_then_removed_whole() -> None:
    young = one(job(ended_ago=13 * DAY))
    assert (young.job.state, young.action) == (JobDirState.FINISHED, Action.KEEP)
    assert young.reason == "log and outcome kept 14d after the build (1d left)"
    old = one(job(ended_ago=14 * DAY, size=5000))
    assert old.action is Action.REMOVE_JOB and old.frees == 5000
    assert old.reason == "ended 14d ago, past the 14-day retention"
    assert one(job(ended_ago=2 * DAY), retention_days=1).action is Action.REMOVE_JOB


def test_a_finished_job_with_its_context_left_loses_the_context_at_once() -> None:
    decision = one(job(ended_ago=5, context=70000, size=90000))
    assert decision.job.state is JobDirState.CONTEXT_LEFT
    assert decision.action is Action.REMOVE_CONTEXT and decision.frees == 70000
    # Past the retention, the whole directory goes (context included).
    old = one(job(ended_ago=20 * DAY, context=70000, size=90000))
    assert old.action is Action.REMOVE_JOB and old.frees == 90000


def test_an_unfinished_job_keeps_its_context_while_it_may_be_about_to_launch() -> None:
    fresh = one(job(ended_ago=None, written_ago=UNFINISHED_GRACE - 1, context=100))
    assert (fresh.job.state, fresh.action) == (JobDirState.UNFINISHED, Action.KEEP)
    stale = one(job(ended_ago=None, written_ago=UNFINISHED_GRACE, context=100))
    assert stale.action is Action.REMOVE_CONTEXT and stale.frees == 100
    gone = one(job(ended_ago=None, written_ago=15 * DAY, context=100, size=400))
    assert gone.action is Action.REMOVE_JOB and gone.frees == 400
    assert gone.reason.startswith("last written 15d ago")
    # No context left and no exit code: nothing to do until the retention.
    quiet = one(job(ended_ago=None, written_ago=2 * DAY))
    assert quiet.action is Action.KEEP
    assert quiet.reason.startswith("no exit code and not running (never launched, or died")
    assert fresh.reason == "no exit code yet: may be about to launch"


@given(
    ended_ago=st.one_of(st.none(), st.integers(0, 10_000 * DAY)),
    written_ago=st.integers(0, 10_000 * DAY),
    context=st.one_of(st.none(), st.integers(0, 1 << 40)),
    retention=st.integers(1, 3650),
)
def test_a_running_job_is_never_due_whatever_its_age(
    ended_ago: int | None, written_ago: int, context: int | None, retention: int
) -> None:
    decision = one(
        job(running=True, ended_ago=ended_ago, written_ago=written_ago, context=context),
        retention,
    )
    assert decision.job.state is JobDirState.RUNNING
    assert decision.action is Action.KEEP and decision.frees == 0


def test_ages_use_the_hosts_clock_and_never_go_negative() -> None:
    # A job stamped "in the future" (clock adjusted since) is age 0, not due.
    assert one(job(ended_ago=-5 * DAY)).age == 0
    assert [format_age(s) for s in (0, 59, 60, 3599, 3600, DAY - 1, DAY, 40 * DAY)] == [
        *("0s", "59s", "1m", "59m", "1h", "23h", "1d", "40d")
    ]


# --------------------------------------------------------------------------------------------
# the host's listing


LISTING = """\
@@matui:now=1800000000
@@matui:storage=3d1219c7c4c5404aaa1f6d2a48adfda4 1001 /home/builder
@@matui:total=300
@@matui:sizes
100\t./r1/amd64/context
120\t./r1/amd64
24\t./r1/arm64
144\t./r1
8\t./r2/amd64
8\t./bad name/amd64
8\t./r2/..
12\t./r2
300\t.
@@matui:mtimes
1700000000 r1/amd64
1700000005 r1/amd64/build.log
1700000009 r1/amd64/exit
1700000001 r1/amd64/lock
1799999000 r1/arm64
1799999100 r1/arm64/build.log
1799999990 r1/arm64/pid
1799990000 r2/amd64
not-a-time r2/amd64/pid
@@matui:exits
r1/amd64/exit:0
r1/arm64/exit:garbage
@@matui:running
r1/arm64
../etc
@@matui:end
"""


def test_the_listing_becomes_job_directories() -> None:
    listing = parse_listing(LISTING)
    assert (listing.now, listing.total_bytes) == (NOW, 300 * 1024)
    assert listing.storage == "3d1219c7c4c5404aaa1f6d2a48adfda4 1001 /home/builder"
    amd64, arm64, r2 = listing.jobs
    assert amd64 == JobDir("r1", "amd64", False, 1700000009, 0, 1700000009, 120 * 1024, 100 * 1024)
    assert amd64.state is JobDirState.CONTEXT_LEFT
    assert arm64 == JobDir("r1", "arm64", True, None, None, 1799999990, 24 * 1024, None)
    # No file of its own: the directory's own mtime says when it was last written.
    assert (r2.run_id, r2.newest, r2.ended) == ("r2", 1799990000, None)


def test_names_matui_would_not_make_are_never_listed() -> None:
    listing = parse_listing(LISTING)
    assert {(j.run_id, j.job_key) for j in listing.jobs} == {
        ("r1", "amd64"),
        ("r1", "arm64"),
        ("r2", "amd64"),
    }


def test_a_host_without_matui_directories_lists_nothing() -> None:
    listing = parse_listing("@@matui:now=5\n@@matui:storage=m 1 /h\n@@matui:end\n")
    assert (listing.now, listing.total_bytes, listing.jobs) == (5, None, ())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no clock reading"),
        ("@@matui:now=x\n@@matui:end\n", "no clock reading"),
        (LISTING.replace("@@matui:end\n", ""), "cut short"),
    ],
)
def test_a_listing_that_is_not_one_is_refused(text: str, why: str) -> None:
    with pytest.raises(ListingError, match=why):
        parse_listing(text)


def test_removal_results_by_index_and_unknown_where_silent() -> None:
    text = (
        "@@matui:result 0 removed\n@@matui:result 2 running\n"
        "@@matui:result 9 removed\n@@matui:result 1 exploded\n@@matui:total=12\n"
    )
    assert parse_results(text, 3) == ([Result.REMOVED, Result.UNKNOWN, Result.RUNNING], 12288)
    assert parse_results("", 2) == ([Result.UNKNOWN, Result.UNKNOWN], None)


# --------------------------------------------------------------------------------------------
# the scripts, run by a real sh in a scratch $HOME


def sh(home: Path, script: shell.RemoteScript) -> str:
    result = subprocess.run(
        ["sh", "-c", script.script],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def make_job(
    home: Path, run: str, key: str, *, exit_code: str | None = "0", context: bool = False
) -> Path:
    path = home / ".matui" / "runs" / run / key
    path.mkdir(parents=True)
    (path / "build.log").write_bytes(b"#1 DONE\n" * 100)
    (path / "lock").touch()
    if exit_code is not None:
        (path / "exit").write_text(f"{exit_code}\n")
    if context:
        (path / "context").mkdir()
        (path / "context" / "Dockerfile").write_bytes(b"FROM scratch\n" + b"#" * 50_000)
    return path


def age(path: Path, days: float) -> None:
    """Make a job directory (and everything in it) look ``days`` old."""
    stamp = time.time() - days * DAY
    for item in [*path.rglob("*"), path]:
        os.utime(item, (stamp, stamp), follow_symlinks=False)


def test_list_decide_remove_on_a_real_sh(tmp_path: Path) -> None:
    old = make_job(tmp_path, "r1", "amd64")
    age(old, 30)
    left = make_job(tmp_path, "r1", "arm64", context=True)
    kept = make_job(tmp_path, "r2", "amd64")
    listing = parse_listing(sh(tmp_path, shell.gc_list_script()))
    decisions = {(d.job.run_id, d.job.job_key): d for d in decide(listing, 14)}
    assert decisions["r1", "amd64"].action is Action.REMOVE_JOB
    assert decisions["r1", "arm64"].action is Action.REMOVE_CONTEXT
    assert decisions["r1", "arm64"].frees >= 50_000
    assert decisions["r2", "amd64"].action is Action.KEEP
    due = [d for d in decisions.values() if d.action is not Action.KEEP]
    results, total = parse_results(
        sh(tmp_path, shell.gc_remove_script([d.target() for d in due])), len(due)
    )
    assert results == [Result.REMOVED, Result.REMOVED]
    assert not old.exists() and not (left / "context").exists()
    assert (left / "build.log").exists() and (left / "exit").exists()
    assert (kept / "build.log").exists()
    assert total is not None and listing.total_bytes is not None
    assert total < listing.total_bytes
    # Nothing moved aside is left behind, and the emptied run stays only while it holds a job.
    assert sorted(p.name for p in (tmp_path / ".matui").iterdir()) == ["runs"]
    assert (tmp_path / ".matui" / "runs" / "r1").is_dir()


def test_a_job_whose_lock_is_held_is_listed_running_and_never_removed(tmp_path: Path) -> None:
    path = make_job(tmp_path, "r1", "amd64", exit_code=None, context=True)
    age(path, 400)
    with (path / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (listed,) = parse_listing(sh(tmp_path, shell.gc_list_script())).jobs
        assert listed.state is JobDirState.RUNNING
        assert one_of(decide_for(listed)).action is Action.KEEP
        # Even a removal asked for outright (a stale listing, another matui) is refused.
        forged = GcTarget("r1", "amd64", True, None, listed.newest)
        text = sh(tmp_path, shell.gc_remove_script([forged]))
        assert parse_results(text, 1)[0] == [Result.RUNNING]
    assert (path / "context" / "Dockerfile").exists()


def decide_for(j: JobDir) -> list[Decision]:
    return decide(HostListing(int(time.time()), "s", None, (j,)), 14)


def one_of(decisions: list[Decision]) -> Decision:
    (decision,) = decisions
    return decision


def test_a_job_that_changed_since_the_listing_is_left_alone(tmp_path: Path) -> None:
    path = make_job(tmp_path, "r1", "amd64")
    age(path, 30)
    (listed,) = parse_listing(sh(tmp_path, shell.gc_list_script())).jobs
    (decision,) = decide_for(listed)
    assert decision.action is Action.REMOVE_JOB
    # A retry started meanwhile: its upload dropped the old exit code.
    (path / "exit").unlink()
    text = sh(tmp_path, shell.gc_remove_script([decision.target()]))
    assert parse_results(text, 1)[0] == [Result.CHANGED]
    assert (path / "build.log").exists()


def test_the_job_script_removes_the_context_before_writing_the_exit_code(tmp_path: Path) -> None:
    path = make_job(tmp_path, "r1", "amd64", exit_code=None, context=True)
    (path / "lock").unlink()
    argv = ["sh", "-c", "test -f context/Dockerfile && echo saw-the-context"]
    assert sh(tmp_path, shell.launch_script("r1", "amd64", argv)).startswith("started ")
    deadline = time.monotonic() + 30
    while not (path / "exit").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (path / "exit").read_text() == "0\n"
    assert not (path / "context").exists()
    assert "saw-the-context" in (path / "build.log").read_text()


def test_a_cancel_removes_the_context_too(tmp_path: Path) -> None:
    path = make_job(tmp_path, "r1", "amd64", exit_code=None, context=True)
    (path / "lock").unlink()
    out = sh(tmp_path, shell.launch_script("r1", "amd64", ["sleep", "60"]))
    assert out.startswith("started ")
    sh(tmp_path, shell.cancel_script("r1", "amd64", grace=2))
    assert (path / "exit").read_text().strip() in ("143", "-15")
    assert not (path / "context").exists()
    assert (path / "build.log").exists()


def test_an_upload_holds_the_lock_and_drops_the_previous_exit_code(tmp_path: Path) -> None:
    path = make_job(tmp_path, "r1", "amd64", exit_code="1")
    tar = subprocess.run(
        ["tar", "-c", "-f", "-", "-C", str(path), "build.log"], capture_output=True, check=True
    ).stdout
    result = subprocess.run(
        ["sh", "-c", shell.upload_script("r1", "amd64").script],
        input=tar,
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    assert (path / "context" / "build.log").exists() and not (path / "exit").exists()
    # While a build holds the lock, an upload into its directory is refused, not mixed in.
    with (path / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = subprocess.run(
            ["sh", "-c", shell.upload_script("r1", "amd64").script],
            input=tar,
            env={**os.environ, "HOME": str(tmp_path)},
            capture_output=True,
            text=False,
        )
    assert busy.returncode == 75 and b"try again" in busy.stderr


def test_the_removal_refuses_a_hostile_run_id_or_key() -> None:
    for bad in ["../../x", "a\nb", "$(touch x)", "-x", "a/b"]:
        with pytest.raises(UnsafeValue):
            shell.gc_remove_script([GcTarget(bad, "amd64", True, None, 1)])
        with pytest.raises(UnsafeValue):
            shell.gc_remove_script([GcTarget("r1", bad, False, 1, 1)])


# --------------------------------------------------------------------------------------------
# the config key


HOST = '[[hosts]]\nname = "a"\narch = "amd64"\naddress = "h"\n'


def parse(text: str, tmp_path: Path) -> list[HostConfig]:
    return list(parse_config(text, tmp_path / "matui.toml", tmp_path).hosts)


def test_retention_defaults_to_14_days_and_is_set_per_host_or_in_defaults(tmp_path: Path) -> None:
    assert [h.job_retention_days for h in parse(HOST, tmp_path)] == [14]
    other = HOST.replace('"a"', '"b"')
    text = f"[defaults]\njob_retention_days = 3\n{HOST}{other}job_retention_days = 30\n"
    assert [h.job_retention_days for h in parse(text, tmp_path)] == [3, 30]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "job_retention_days = 0",
            "0 is not a number of days matui can keep finished jobs for; use 1 to 3650",
        ),
        ("job_retention_days = 4000", "4000 is not a number of days"),
        ("job_retention_days = 2.5", "expected an integer, got a float (2.5); write it as "),
        ('job_retention_days = "14"', 'expected an integer, got a string ("14")'),
        ("job_retention_days = true", "expected an integer, got a boolean"),
    ],
)
def test_a_bad_retention_is_one_line_naming_the_key_and_the_fix(
    tmp_path: Path, line: str, message: str
) -> None:
    for text, where in [
        (f"{HOST}{line}\n", "hosts[0].job_retention_days"),
        (f"[defaults]\n{line}\n{HOST}", "defaults.job_retention_days"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse(text, tmp_path)
        (problem,) = info.value.problems
        assert problem.path == where
        assert message in problem.message and "job_retention_days = 14" in problem.message


# --------------------------------------------------------------------------------------------
# matui check's disk column, matui gc's table


def test_the_probe_reads_matuis_disk_use() -> None:
    host = HostConfig("a", "amd64", "h")
    text = "@@matui:matui\n9264\t/home/b/.matui\n@@matui:matui:rc=0\n"
    assert parse_probe(host, text).matui_bytes == 9264 * 1024
    partial = "@@matui:matui\ndu: cannot read 'x': Permission denied\n12\t/h/.matui\n"
    assert parse_probe(host, partial + "@@matui:matui:rc=1\n").matui_bytes == 12 * 1024
    assert parse_probe(host, "@@matui:matui\n0\n@@matui:matui:rc=0\n").matui_bytes == 0
    assert parse_probe(host, "").matui_bytes is None


def test_gc_table_says_what_happened_and_what_was_freed() -> None:
    old = one(job("amd64", ended_ago=20 * DAY, size=3 << 20))
    running = one(job("arm64", running=True, ended_ago=None))
    report = GcReport(
        (
            HostGc(
                "amd64-1",
                14,
                False,
                total_before=4 << 20,
                total_after=1 << 20,
                items=(GcItem(old, Result.REMOVED), GcItem(running)),
            ),
            HostGc("emu-1", 14, False, same_as="amd64-1"),
            HostGc("arm-1", 14, False, error="host 'arm-1' is unreachable"),
        ),
        dry_run=False,
    )
    text = format_gc(report)
    assert "remove job" in text and "removed" in text and "running: its lock is held" in text
    assert "freed 3.0 MiB, 1.0 MiB left in ~/.matui" in text
    assert "emu-1: same machine, user and ~/.matui as amd64-1" in text
    assert "ERROR host 'arm-1' is unreachable" in text
    assert text.splitlines()[-1] == "3 host(s): freed 3.0 MiB in all"
    assert not report.ok
    doc = report.to_json()
    assert doc["freed_bytes"] == 3 << 20
    assert doc["hosts"][0]["jobs"][0]["result"] == "removed"
    dry = GcReport((HostGc("amd64-1", 14, True, total_before=4 << 20, items=(GcItem(old),)),), True)
    assert "would free 3.0 MiB" in format_gc(dry) and dry.ok and dry.freed_bytes == 0
