"""Planning: each platform goes to a host whose *probed* arch matches; emulation is flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.arch import Platform
from matui.engine.config import HostConfig, ImageConfig
from matui.engine.flags import FlagKind, Severity, emulation_flags
from matui.engine.plan import PlanError, plan_build
from matui.engine.probe import HostProbe

AMD64, ARM64 = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")


def image(*platforms: Platform, arch_tag: str = "{tag}-{arch}") -> ImageConfig:
    return ImageConfig(
        name="127.0.0.1:5000/team/app",
        tags=("1.0", "latest"),
        context=Path("/ctx"),
        platforms=platforms,
        arch_tag=arch_tag,
    )


def host(name: str, arch: str, emulate: bool = False) -> HostConfig:
    return HostConfig(name=name, arch=arch, address="h", allow_emulation=emulate)


def probe(
    name: str,
    declared: str,
    native: str | None,
    *,
    ok: bool = True,
    emulation: tuple[str, ...] = ("arm64",),
) -> HostProbe:
    return HostProbe(
        name,
        declared,
        reachable=ok,
        native_arch=native,
        emulation=emulation,
        error=None if ok else "unreachable",
    )


def test_native_hosts_get_their_arch_and_no_flag() -> None:
    hosts = [host("x", "amd64"), host("a", "arm64")]
    probes = [probe("x", "amd64", "amd64"), probe("a", "arm64", "arm64")]
    plan = plan_build(image(AMD64, ARM64), ["1.0"], hosts, probes)
    assert [(j.arch, j.host, j.emulated) for j in plan.jobs] == [
        ("amd64", "x", False),
        ("arm64", "a", False),
    ]
    assert plan.jobs[1].ref == "127.0.0.1:5000/team/app:1.0-arm64"


def test_probed_arch_wins_over_declared_arch() -> None:
    # "a" claims arm64 but is x86_64: it must not build arm64 natively.
    hosts = [host("x", "amd64"), host("a", "arm64")]
    probes = [probe("x", "amd64", "amd64"), probe("a", "arm64", "amd64")]
    with pytest.raises(
        PlanError, match=r"linux/arm64: no reachable arm64 host \(a is really amd64\)"
    ):
        plan_build(image(AMD64, ARM64), ["1.0"], hosts, probes)


def test_emulation_only_when_allowed_and_flagged_as_warning() -> None:
    hosts = [host("x", "amd64"), host("e", "amd64", emulate=True)]
    probes = [probe("x", "amd64", "amd64"), probe("e", "amd64", "amd64")]
    plan = plan_build(image(AMD64, ARM64), ["1.0"], hosts, probes)
    arm = plan.job("arm64")
    assert arm.host == "e" and arm.emulated
    (flag,) = emulation_flags(plan, hosts, probes)
    assert flag.kind is FlagKind.ARCH_MISMATCH and flag.severity is Severity.WARNING
    assert "QEMU" in flag.message and flag.subject == "arm64"


def test_no_emulation_without_binfmt_handler() -> None:
    hosts = [host("e", "amd64", emulate=True)]
    probes = [probe("e", "amd64", "amd64", emulation=())]
    with pytest.raises(PlanError, match="allow_emulation"):
        plan_build(image(AMD64, ARM64), ["1.0"], hosts, probes)


def test_unreachable_host_is_skipped_and_jobs_spread_over_hosts() -> None:
    hosts = [
        host("down", "amd64"),
        host("x1", "amd64", emulate=True),
        host("x2", "amd64", emulate=True),
    ]
    probes = [
        probe("down", "amd64", None, ok=False),
        probe("x1", "amd64", "amd64"),
        probe("x2", "amd64", "amd64"),
    ]
    plan = plan_build(image(AMD64, ARM64), ["1.0"], hosts, probes)
    assert plan.job("amd64").host == "x1"  # first usable native host
    assert plan.job("arm64").host == "x2"  # the less loaded of the equally good ones


def test_every_missing_platform_is_named_at_once() -> None:
    with pytest.raises(PlanError) as err:
        plan_build(image(AMD64, ARM64), ["1.0"], [], [])
    assert "linux/amd64" in str(err.value) and "linux/arm64" in str(err.value)
