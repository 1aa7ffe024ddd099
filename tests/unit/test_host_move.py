"""Host moves: a job that fails for its host's sake (unreachable, engine gone, disk full, lost)
moves to another healthy host that may build its platform, at most once per host, and its card
says so; a build error never moves; emulation is never a fallback for a native job."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from matui.engine.arch import Platform
from matui.engine.build.failure import BUILD_ERROR, CAUSES, DISK_FULL, HOST_LOST, FailureRecord
from matui.engine.build.retry import MOVING_CAUSES, HostMove, move_target, moves_host
from matui.engine.build.run import BuildRun, NoteEvent, StateEvent
from matui.engine.config import Config, HostConfig
from matui.engine.plan import BuildJob
from matui.engine.probe import HostProbe, HostState, failed_probe
from matui.engine.records import JobRecord, JobState, RunRecord
from matui.engine.ssh import SshPool
from tests.helpers.rig import free_port
from tests.helpers.runs import feed
from tests.unit.test_events import make_run, queued

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64")
GIB = 1024**3
LOST = HOST_LOST.name
FAILURES = Path(__file__).parent.parent / "data" / "failures"


def job(host: str = "amd64-1", platform: Platform = AMD64, *, emulated: bool = False) -> BuildJob:
    arch = platform.arch
    return BuildJob(platform, host, emulated, f"1.0-{arch}", f"r/app:1.0-{arch}")


def host(
    name: str,
    arch: str = "amd64",
    *,
    emulation: bool = False,
    max_jobs: int | None = None,
    min_free_disk: int = 0,
) -> HostConfig:
    return HostConfig(
        name,
        arch,
        "192.0.2.10",
        allow_emulation=emulation,
        max_jobs=max_jobs,
        min_free_disk=min_free_disk,
    )


def ok(
    name: str,
    native: str = "amd64",
    *,
    jobs: int = 0,
    load: float = 0.3,
    free: int = 100 * GIB,
    emulation: tuple[str, ...] = (),
) -> HostProbe:
    return HostProbe(
        name,
        native,
        reachable=True,
        native_arch=native,
        emulation=emulation,
        cpus=4,
        load=load,
        jobs_running=jobs,
        free_bytes=free,
        machine=f"m-{name}",
    )


def down(name: str) -> HostProbe:
    return failed_probe(host(name), HostState.UNREACHABLE, f"cannot reach host '{name}': refused")


POOL = [host("amd64-1"), host("amd64-2"), host("amd64-3")]
PROBES = [ok("amd64-1"), ok("amd64-2", jobs=1), ok("amd64-3")]


# -- which causes move ---------------------------------------------------------------------------


@pytest.mark.parametrize("cause", sorted(MOVING_CAUSES))
def test_an_infrastructure_cause_moves_to_the_least_busy_healthy_host(cause: str) -> None:
    move = move_target(cause, job(), POOL, PROBES, ["amd64-1"])
    assert move is not None
    assert (move.source, move.target, move.cause, move.emulated) == (
        "amd64-1",
        "amd64-3",
        cause,
        False,
    )
    assert move.reason == "least busy: 0 matui jobs, load 0.30"


def test_the_moving_causes_are_the_hosts_own() -> None:
    assert set(MOVING_CAUSES) == {HOST_LOST.name, DISK_FULL.name}
    assert {c.name for c in CAUSES} >= set(MOVING_CAUSES)  # matui's own names, not made up


@pytest.mark.parametrize(
    "cause",
    [
        BUILD_ERROR.name,
        *(c.name for c in CAUSES if c.name not in MOVING_CAUSES),
        "flaky-mirror",  # a user signature's cause
        None,  # no failure record (cancelled)
    ],
)
def test_a_build_error_or_any_other_cause_never_moves(cause: str | None) -> None:
    assert not moves_host(cause)
    assert move_target(cause, job(), POOL, PROBES, ["amd64-1"]) is None


# -- once per host -------------------------------------------------------------------------------


def test_a_job_moves_at_most_once_per_host_and_never_back() -> None:
    first = move_target(LOST, job("amd64-1"), POOL, PROBES, ["amd64-1"])
    assert first is not None and first.target == "amd64-3"
    # It fails there too: the one host left is the busier one, never the first again.
    second = move_target(LOST, job("amd64-3"), POOL, PROBES, ["amd64-1", "amd64-3"])
    assert second is not None and (second.source, second.target) == ("amd64-3", "amd64-2")
    # And there: every host was tried, the healthy first one included: no target.
    tried = ["amd64-1", "amd64-3", "amd64-2"]
    assert move_target(LOST, job("amd64-2"), POOL, PROBES, tried) is None


def test_its_own_host_is_never_a_target_even_when_not_listed_as_tried() -> None:
    move = move_target(LOST, job("amd64-3"), POOL, PROBES, [])
    assert move is not None and move.target == "amd64-1"


# -- healthy hosts only --------------------------------------------------------------------------


def test_hosts_that_are_down_low_on_disk_full_or_unprobed_are_not_targets() -> None:
    hosts = [
        host("amd64-1"),
        host("down"),
        host("low", min_free_disk=20 * GIB),
        host("full", max_jobs=1),
        host("unprobed"),
        host("fine"),
    ]
    probes = [
        ok("amd64-1"),
        down("down"),
        ok("low", free=5 * GIB),
        ok("full", jobs=1),
        ok("fine", jobs=3, load=3.9),
    ]
    move = move_target(DISK_FULL.name, job(), hosts, probes, ["amd64-1"])
    assert move is not None and move.target == "fine"
    assert move.reason == "the only other healthy host for linux/amd64 (3 matui jobs, load 3.90)"
    assert move_target(DISK_FULL.name, job(), hosts[:-1], probes, ["amd64-1"]) is None


def test_a_host_declared_amd64_that_is_really_arm64_is_not_a_target() -> None:
    probes = [ok("amd64-1"), ok("amd64-2", native="arm64"), ok("amd64-3", jobs=5)]
    move = move_target(LOST, job(), POOL, probes, ["amd64-1"])
    assert move is not None and move.target == "amd64-3"


def test_this_runs_own_jobs_count_as_busy() -> None:
    probes = [ok("amd64-1"), ok("amd64-2"), ok("amd64-3")]
    move = move_target(LOST, job(), POOL, probes, ["amd64-1"], running={"amd64-2": 2})
    assert move is not None and move.target == "amd64-3"
    move = move_target(LOST, job(), POOL, probes, ["amd64-1"], running={"amd64-3": 1})
    assert move is not None and move.target == "amd64-2"


def test_equally_busy_hosts_keep_config_order_and_load_breaks_ties_first() -> None:
    probes = [ok("amd64-1"), ok("amd64-2", load=3.0), ok("amd64-3", load=0.1)]
    move = move_target(LOST, job(), POOL, probes, ["amd64-1"])
    assert move is not None and move.target == "amd64-3"
    probes = [ok("amd64-1"), ok("amd64-2"), ok("amd64-3")]
    move = move_target(LOST, job(), POOL, probes, ["amd64-1"])
    assert move is not None and move.target == "amd64-2"


# -- emulation is never a fallback ---------------------------------------------------------------


def test_a_native_job_never_moves_to_an_emulating_host() -> None:
    hosts = [host("amd64-1"), host("arm-emu", "arm64", emulation=True)]
    probes = [ok("amd64-1"), ok("arm-emu", native="arm64", emulation=("amd64",))]
    assert move_target(LOST, job(), hosts, probes, ["amd64-1"]) is None


def test_an_emulated_job_moves_to_a_native_host_first_then_an_allowed_emulator() -> None:
    emulated = job("emu-1", ARM64, emulated=True)
    hosts = [
        host("emu-1", emulation=True),
        host("emu-2", emulation=True),
        host("no-emu"),  # has the handler but does not allow emulation
        host("arm-1", "arm64"),
    ]
    probes = [
        ok("emu-1", emulation=("arm64",)),
        ok("emu-2", emulation=("arm64",)),
        ok("no-emu", emulation=("arm64",)),
        ok("arm-1", native="arm64", jobs=4),
    ]
    move = move_target(LOST, emulated, hosts, probes, ["emu-1"])
    assert move is not None and (move.target, move.emulated) == ("arm-1", False)
    move = move_target(LOST, emulated, hosts, probes, ["emu-1", "arm-1"])
    assert move is not None and (move.target, move.emulated) == ("emu-2", True)
    assert move_target(LOST, emulated, hosts, probes, ["emu-1", "arm-1", "emu-2"]) is None


# -- what the move says, and keeps ---------------------------------------------------------------


def test_a_move_reads_as_one_line_and_round_trips() -> None:
    move = HostMove("amd64-1", "amd64-2", LOST, False, "least busy", "engine gone (EOF)")
    assert (
        move.line("linux/amd64") == "moved linux/amd64 from amd64-1 to amd64-2: engine gone (EOF)"
    )
    assert HostMove.from_json(json.loads(json.dumps(move.to_json()))) == move
    bare = HostMove("a", "b", DISK_FULL.name)
    assert bare.line("linux/arm64") == "moved linux/arm64 from a to b: disk full"


def _record(cause: str, **values: object) -> FailureRecord:
    return FailureRecord(
        step=None,
        step_number=None,
        stage=None,
        dockerfile=None,
        dockerfile_line=None,
        exit_code=None,
        error="boom",
        cause=cause,
        advice="advice",
        retry=True,
        **values,  # type: ignore[arg-type]
    )


def test_the_card_shows_the_moves_and_the_hosts_tried() -> None:
    move = HostMove("amd64-1", "amd64-2", LOST, False, "least busy", "engine gone (EOF)")
    failure = _record(LOST, moves=(move,), tried_hosts=("amd64-1", "amd64-2"))
    card = dict(failure.card())
    assert card["moved"] == "from amd64-1 to amd64-2: engine gone (EOF)"
    assert card["hosts tried"] == (
        "amd64-1, amd64-2 (no other healthy host that may build this platform is left to move to)"
    )
    assert "  moved           from amd64-1 to amd64-2: engine gone (EOF)" in failure.summary_lines(
        "amd64"
    )
    assert FailureRecord.from_json(json.loads(json.dumps(failure.to_json()))) == failure


def test_a_build_error_card_names_no_move_and_no_hosts_left() -> None:
    card = dict(_record(BUILD_ERROR.name, tried_hosts=("amd64-1",)).card())
    assert "moved" not in card and "hosts tried" not in card


def test_records_written_before_moves_load_without_them() -> None:
    failure = _record(LOST).to_json()
    del failure["moves"], failure["tried_hosts"]
    assert FailureRecord.from_json(failure).moves == ()
    saved = JobRecord.for_job(job()).to_json()
    del saved["moves"], saved["tried_hosts"]
    old = JobRecord.from_json(saved)
    assert (old.moves, old.tried_hosts) == ([], [])


# -- the runner moves it, through its one retry path ---------------------------------------------


def pool_run(tmp_path: Path) -> BuildRun:
    """One amd64 job on amd64-1 and a second amd64 host, both probed healthy."""
    run = make_run(tmp_path)
    run.config = Config(None, (*run.config.hosts, host("amd64-2")), run.config.images)
    run.probes = [ok("amd64-1"), ok("amd64-2")]
    return run


async def _stop(run: BuildRun) -> None:
    """The hosts are never dialled: stop the moved job's new attempt before it gets anywhere."""
    tasks = [t for t in (run._tasks.get("amd64"), run._supervisor) if t is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def fail(run: BuildRun, error: str, *, state: JobState = JobState.FAILED) -> None:
    status = run.status["amd64"]
    status.exit_code = 1
    status.error = error
    run._set_state(status, state, error)


ENGINE_GONE = (
    "the docker engine on amd64-1 went away during the build (stopped or restarted; it is not "
    "answering now) — buildx said: failed to receive status: error reading from server: EOF"
)


def test_the_runner_moves_an_engine_gone_job_and_records_the_move(tmp_path: Path) -> None:
    run = pool_run(tmp_path)

    async def go() -> None:
        fail(run, ENGINE_GONE)
        run._move_on("amd64")
        await _stop(run)

    asyncio.run(go())
    status = run.status["amd64"]
    assert status.job.host == "amd64-2" and status.attempt == 2
    assert status.tried_hosts == ["amd64-1", "amd64-2"]
    (move,) = status.moves
    assert (move.source, move.target, move.cause) == ("amd64-1", "amd64-2", LOST)
    assert move.detail.startswith("engine gone (failed to receive status")
    line = f"moved linux/amd64 from amd64-1 to amd64-2: {move.detail}"
    events = queued(run)
    notes = [e.text for e in events if isinstance(e, NoteEvent)]
    assert line in notes
    states = [e.state for e in events if isinstance(e, StateEvent)]
    assert states[-2:] == [JobState.FAILED, JobState.QUEUED]
    saved = RunRecord.load(run.record.dir).job("amd64")
    assert (saved.host, saved.attempt, saved.tried_hosts) == ("amd64-2", 2, ["amd64-1", "amd64-2"])
    assert saved.moves == [move.to_json()] and line in saved.notes
    assert saved.retry_options == {"no_cache": False, "pull": False, "host": "amd64-2"}


def test_a_build_error_stays_failed_on_its_host(tmp_path: Path) -> None:
    """A real buildx log of a step that exited 3: the code's failure, not the host's."""
    run = pool_run(tmp_path)
    feed(run, "amd64", (FAILURES / "exit3.log").read_bytes())
    fail(run, "exit code: 3")
    status = run.status["amd64"]
    assert status.failure is not None and status.failure.cause == BUILD_ERROR.name
    run._move_on("amd64")
    assert (status.state, status.job.host, status.attempt, status.moves) == (
        JobState.FAILED,
        "amd64-1",
        1,
        [],
    )
    assert "amd64" not in run._tasks
    assert not [e for e in queued(run) if isinstance(e, NoteEvent) and "moved" in e.text]


def test_a_full_disk_moves_the_job(tmp_path: Path) -> None:
    """A real buildx log of a step that hit "no space left on device"."""
    run = pool_run(tmp_path)

    async def go() -> None:
        feed(run, "amd64", (FAILURES / "disk_full.log").read_bytes())
        fail(run, "exit code: 1")
        run._move_on("amd64")
        await _stop(run)

    asyncio.run(go())
    status = run.status["amd64"]
    (move,) = status.moves
    assert (move.target, move.cause) == ("amd64-2", DISK_FULL.name)
    assert move.detail.startswith("disk full (") and status.job.host == "amd64-2"


def test_a_cancelled_or_read_only_job_never_moves(tmp_path: Path) -> None:
    run = pool_run(tmp_path)
    fail(run, ENGINE_GONE)
    run._cancelled.add("amd64")
    run._move_on("amd64")
    run._cancelled.clear()
    run.follow_only = True
    run._move_on("amd64")
    assert run.status["amd64"].job.host == "amd64-1" and run.status["amd64"].moves == []


def test_a_job_lost_twice_ends_failed_naming_every_host_tried(tmp_path: Path) -> None:
    run = pool_run(tmp_path)

    async def go() -> None:
        fail(run, "lost the connection to amd64-1", state=JobState.LOST)
        run._move_on("amd64")
        await _stop(run)
        # Lost on the second host too: the first is healthy, but the job never goes back.
        fail(run, "lost the connection to amd64-2", state=JobState.LOST)
        run._move_on("amd64")

    asyncio.run(go())
    status = run.status["amd64"]
    assert status.state is JobState.LOST and status.job.host == "amd64-2"
    assert [m.words() for m in status.moves] == [
        "from amd64-1 to amd64-2: host lost (lost the connection to amd64-1)"
    ]
    assert status.failure is not None
    card = dict(status.failure.card())
    assert card["hosts tried"].startswith("amd64-1, amd64-2 (no other healthy host")
    assert card["moved"] == "from amd64-1 to amd64-2: host lost (lost the connection to amd64-1)"


def test_an_unreachable_host_moves_the_job_before_its_build_starts(tmp_path: Path) -> None:
    """Both hosts refuse the connection (closed loopback ports): the job is sent to the first,
    moves once to the second, and ends failed there, its card naming both."""
    run = make_run(tmp_path)
    closed = [free_port(), free_port()]
    hosts = tuple(
        HostConfig(f"amd64-{n}", "amd64", "127.0.0.1", port=port, user="build")
        for n, port in zip((1, 2), closed, strict=True)
    )
    run.config = Config(None, hosts, run.config.images)
    run.pool = SshPool(hosts)
    run.probes = [ok("amd64-1"), ok("amd64-2")]

    async def go() -> None:
        run.start()
        await asyncio.wait_for(run.wait(), 60)
        await run.pool.close()

    asyncio.run(go())
    status = run.status["amd64"]
    assert status.state is JobState.FAILED, status
    assert status.tried_hosts == ["amd64-1", "amd64-2"] and status.attempt == 2
    (move,) = status.moves
    assert move.words().startswith("from amd64-1 to amd64-2: unreachable (")
    assert status.failure is not None and status.failure.cause == LOST
    assert dict(status.failure.card())["hosts tried"].startswith("amd64-1, amd64-2 (no other")
    saved = RunRecord.load(run.record.dir).job("amd64")
    assert saved.moves == [move.to_json()] and saved.state is JobState.FAILED


def test_an_engine_down_when_the_build_starts_moves_the_job(tmp_path: Path) -> None:
    """buildx could not reach the engine at all (it stopped between the probe and the launch):
    the runner's own verdict on its exit, then the move."""
    run = pool_run(tmp_path)

    async def go() -> None:
        feed(
            run,
            "amd64",
            b"ERROR: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            b"Is the docker daemon running?\n",
        )
        status = run.status["amd64"]
        run._finish(status, run._logs["amd64"].parser, {"exit": "1", "engine": False})
        assert status.state is JobState.FAILED
        assert status.failure is not None and status.failure.cause == LOST
        run._move_on("amd64")
        await _stop(run)

    asyncio.run(go())
    (move,) = run.status["amd64"].moves
    assert move.target == "amd64-2"
    assert move.detail.startswith("engine gone (") and "Cannot connect" in move.detail


def test_a_status_stream_buildx_dropped_on_a_live_engine_does_not_move(tmp_path: Path) -> None:
    """buildx 0.13.1 gives up on a burst of output (``code = Canceled``) while the engine keeps
    answering: not the host's failure, so the job stays, with the parser's note on bursts."""
    run = pool_run(tmp_path)
    feed(
        run,
        "amd64",
        b"#5 [2/2] RUN yes | head -n 200000\n"
        b"ERROR: failed to receive status: rpc error: code = Canceled desc = context canceled\n",
    )
    status = run.status["amd64"]
    run._finish(status, run._logs["amd64"].parser, {"exit": "1", "engine": True})
    assert status.state is JobState.FAILED and "went away" not in (status.error or "")
    assert status.failure is not None and not moves_host(status.failure.cause)
    run._move_on("amd64")
    assert status.moves == [] and status.job.host == "amd64-1"


def test_an_engine_stopped_under_the_build_gets_no_note_about_output_bursts(
    tmp_path: Path,
) -> None:
    """The status stream went with the engine (it does not answer now): the parser's note on
    bursts of output would send the operator the wrong way; the move says what happened."""
    run = pool_run(tmp_path)

    async def go() -> None:
        feed(
            run,
            "amd64",
            b"#5 [2/2] RUN sleep 30\n"
            b"ERROR: failed to receive status: rpc error: code = Unavailable desc = error "
            b"reading from server: EOF\n",
        )
        run._finish(run.status["amd64"], run._logs["amd64"].parser, {"exit": "1", "engine": False})
        run._move_on("amd64")
        await _stop(run)

    asyncio.run(go())
    notes = [e.text for e in queued(run) if isinstance(e, NoteEvent)]
    assert notes == [
        "moved linux/amd64 from amd64-1 to amd64-2: engine gone (failed to receive status: rpc "
        "error: code = Unavailable desc = error reading from server: EOF)"
    ]
