"""Host pools: several hosts of one arch, and the planner picks one for each job with a reason —
reachable and healthy first (disk above its floor, below max_jobs), then the host that built the
image last (warm cache), then the least busy — and names every host it passed over and why."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from matui.engine.arch import Platform
from matui.engine.config import HostConfig, ImageConfig
from matui.engine.plan import PlanError, plan_build
from matui.engine.probe import HostProbe, HostState, failed_probe, parse_busy

AMD64, ARM64 = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")
GIB = 1024**3


def image(*platforms: Platform) -> ImageConfig:
    return ImageConfig(
        name="127.0.0.1:5000/team/app", tags=("1.0",), context=Path("/ctx"), platforms=platforms
    )


def host(name: str, arch: str = "amd64", max_jobs: int | None = None) -> HostConfig:
    return HostConfig(name=name, arch=arch, address="h", max_jobs=max_jobs)


def ok(
    name: str, native: str = "amd64", *, jobs: int = 0, load: float = 0.3, free: int = 100 * GIB
) -> HostProbe:
    return HostProbe(
        name,
        native,
        reachable=True,
        native_arch=native,
        cpus=4,
        load=load,
        jobs_running=jobs,
        free_bytes=free,
        machine=f"m-{name}",
    )


def down(name: str) -> HostProbe:
    return failed_probe(host(name), HostState.UNREACHABLE, f"cannot reach host '{name}': refused")


def test_one_unreachable_the_other_builds_and_the_plan_says_why() -> None:
    plan = plan_build(
        image(AMD64), ["1.0"], [host("amd64-1"), host("amd64-2")], [down("amd64-1"), ok("amd64-2")]
    )
    (job,) = plan.jobs
    assert job.host == "amd64-2"
    assert job.reason == "the only usable amd64 host (0 matui jobs, load 0.30 on 4 CPUs)"
    assert job.candidates == 2  # the host that is down is of the pool too
    (passed,) = plan.passed_over
    assert (passed.host, passed.state) == ("amd64-1", "unreachable")
    assert passed.reason == "UNREACHABLE: cannot reach host 'amd64-1': refused"
    assert job.line() == f"linux/amd64 on amd64-2: {job.reason}"
    assert job.plan_json()["reason"] == job.reason


def test_the_host_that_built_the_image_last_is_preferred_though_busier() -> None:
    hosts = [host("amd64-1"), host("amd64-2")]
    probes = [ok("amd64-1"), ok("amd64-2", jobs=1, load=2.0)]
    plan = plan_build(image(AMD64), ["1.0"], hosts, probes, warm={"linux/amd64": "amd64-2"})
    (job,) = plan.jobs
    assert job.host == "amd64-2"
    assert job.reason == "built this image's linux/amd64 last (cache warm)"
    assert job.candidates == 2
    (passed,) = plan.passed_over
    assert (passed.host, passed.state) == ("amd64-1", "not-needed")
    assert passed.reason == (
        "not needed: linux/amd64 is built on amd64-2, which built it last (cache warm)"
    )


def test_least_busy_by_matui_jobs_then_by_load() -> None:
    hosts = [host("amd64-1"), host("amd64-2"), host("amd64-3")]
    probes = [ok("amd64-1", jobs=2), ok("amd64-2", jobs=0, load=3.0), ok("amd64-3", load=0.4)]
    plan = plan_build(image(AMD64), ["1.0"], hosts, probes)
    (job,) = plan.jobs
    assert job.host == "amd64-3"
    assert job.reason == "least busy: 0 matui jobs, load 0.40 on 4 CPUs"
    why = {p.host: p.reason for p in plan.passed_over}
    assert why == {
        "amd64-1": "not needed: linux/amd64 is built on amd64-3, which is less busy "
        "(0 matui jobs there, 2 here)",
        "amd64-2": "not needed: linux/amd64 is built on amd64-3, which is less loaded "
        "(0.1 per CPU there, 0.8 here)",
    }


def test_equal_hosts_keep_config_order_and_one_machine_counts_once() -> None:
    """Two entries that are one machine were probed a moment apart (a job started between):
    they share the group's figures, so config order decides, not the timing."""
    hosts = [host("amd64-1"), host("amd64-2")]
    same = [
        replace(ok("amd64-1", jobs=0), machine="m"),
        replace(ok("amd64-2", jobs=1), machine="m"),
    ]
    plan = plan_build(image(AMD64), ["1.0"], hosts, same)
    assert plan.jobs[0].host == "amd64-1"
    assert plan.jobs[0].reason == (
        "least busy: 1 matui job, load 0.30 on 4 CPUs; first in the config of 2 equally busy hosts"
    )
    assert plan.passed_over[0].reason == "not needed: linux/amd64 is built on amd64-1"


def test_a_host_at_max_jobs_is_passed_over() -> None:
    hosts = [host("amd64-1", max_jobs=2), host("amd64-2")]
    probes = [ok("amd64-1", jobs=2), ok("amd64-2", jobs=3)]
    plan = plan_build(image(AMD64), ["1.0"], hosts, probes, warm={"linux/amd64": "amd64-1"})
    assert plan.jobs[0].host == "amd64-2"
    (passed,) = plan.passed_over
    assert (passed.host, passed.state) == ("amd64-1", "at-max-jobs")
    assert passed.reason == "at max_jobs: 2 matui jobs running there (max_jobs = 2)"


def test_this_plans_own_jobs_past_max_jobs_wait_for_a_slot() -> None:
    """One host that emulates arm64 and builds amd64 natively, max_jobs = 1: the second job
    waits for the first to end there, and its reason says so."""
    h = HostConfig("x", "amd64", "h", allow_emulation=True, max_jobs=1)
    probe = HostProbe("x", "amd64", reachable=True, native_arch="amd64", emulation=("arm64",))
    plan = plan_build(image(AMD64, ARM64), ["1.0"], [h], [probe])
    assert [job.host for job in plan.jobs] == ["x", "x"]
    assert "waits for a slot" not in plan.jobs[0].reason
    assert plan.jobs[1].reason.endswith(
        "; waits for a slot there (max_jobs = 1: 1 matui job running or planned before it)"
    )


def test_a_host_full_of_other_runs_jobs_refuses_with_the_fix() -> None:
    h = HostConfig("x", "amd64", "h", max_jobs=1)
    probe = HostProbe("x", "amd64", reachable=True, native_arch="amd64", jobs_running=1)
    with pytest.raises(PlanError) as caught:
        plan_build(image(AMD64), ["1.0"], [h], [probe])
    assert str(caught.value) == (
        "linux/amd64: every host that could build it is at max_jobs (x: at max_jobs: 1 matui "
        "jobs running there (max_jobs = 1)); wait for a build there to end, or raise max_jobs"
    )


def test_disk_below_floor_is_passed_over_while_another_host_can_build() -> None:
    hosts = [host("amd64-1"), host("amd64-2")]
    probes = [ok("amd64-1", free=1 * GIB), ok("amd64-2", jobs=4)]
    plan = plan_build(image(AMD64), ["1.0"], hosts, probes, warm={"linux/amd64": "amd64-1"})
    assert plan.jobs[0].host == "amd64-2"
    (passed,) = plan.passed_over
    assert (passed.host, passed.state) == ("amd64-1", "disk-low")
    assert passed.reason == "disk below floor: 1.0 GiB free, min_free_disk = 2.0 GiB"
    # Alone below its floor, the host stays planned: the pre-flight's disk-space error refuses
    # the build, naming the host and how to free space.
    alone = plan_build(image(AMD64), ["1.0"], hosts[:1], probes[:1])
    assert alone.jobs[0].host == "amd64-1"


def test_all_unhealthy_is_an_error_naming_each_host_and_why() -> None:
    hosts = [host("amd64-1"), host("amd64-2")]
    broken = HostProbe(
        "amd64-2",
        "amd64",
        reachable=True,
        native_arch="amd64",
        error="docker engine not answering: Cannot connect to the Docker daemon",
    )
    with pytest.raises(PlanError) as caught:
        plan_build(image(AMD64), ["1.0"], hosts, [down("amd64-1"), broken])
    message = str(caught.value)
    assert message.startswith("linux/amd64: no reachable amd64 host (")
    assert "amd64-1: UNREACHABLE: cannot reach host 'amd64-1': refused" in message
    assert "amd64-2: BROKEN: docker engine not answering" in message
    assert message.endswith("fix the host as its message says")


def test_emulation_is_never_a_fallback_for_a_pool_that_is_down() -> None:
    """Both amd64 hosts down, an arm64 host that could emulate amd64 but is not allowed to:
    an error, not a build under QEMU."""
    hosts = [host("amd64-1"), host("amd64-2"), host("arm64-1", "arm64")]
    arm = HostProbe("arm64-1", "arm64", reachable=True, native_arch="arm64", emulation=("amd64",))
    with pytest.raises(PlanError):
        plan_build(image(AMD64), ["1.0"], hosts, [down("amd64-1"), down("amd64-2"), arm])


def test_parse_busy_reads_the_probe_section() -> None:
    assert parse_busy("cpus 8\nload 0.52\njobs 3\nmachine 123456\nnoise\n") == {
        "cpus": "8",
        "load": "0.52",
        "jobs": "3",
        "machine": "123456",
    }
