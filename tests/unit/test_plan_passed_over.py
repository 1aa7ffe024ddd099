"""Planning names every host it does not use and why, and a platform with no host gets the fix
that fits: a host whose probe failed carries its own fix, allow_emulation is suggested only
where it is not set already."""

from __future__ import annotations

from pathlib import Path

from matui.engine.arch import Platform
from matui.engine.config import HostConfig, ImageConfig
from matui.engine.plan import PlanError, plan_build
from matui.engine.probe import HostProbe, HostState, failed_probe

AMD64, ARM64 = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")


def image(*platforms: Platform) -> ImageConfig:
    return ImageConfig(
        name="127.0.0.1:5000/team/app", tags=("1.0",), context=Path("/ctx"), platforms=platforms
    )


def host(name: str, arch: str = "amd64", emulate: bool = False) -> HostConfig:
    return HostConfig(name=name, arch=arch, address="h", allow_emulation=emulate)


def ok(name: str, native: str = "amd64", emulation: tuple[str, ...] = ("arm64",)) -> HostProbe:
    return HostProbe(name, native, reachable=True, native_arch=native, emulation=emulation)


def test_every_unused_host_is_named_with_its_reason() -> None:
    hosts = [
        host("x"),
        host("down"),
        host("locked"),
        host("nobuildx"),
        host("spare"),
        host("arm", "arm64"),
    ]
    probes = [
        ok("x"),
        failed_probe(host("down"), HostState.UNREACHABLE, "cannot reach host 'down': refused"),
        failed_probe(
            host("locked"), HostState.AUTH_FAILED, "host 'locked' is reachable, but auth failed"
        ),
        HostProbe(
            "nobuildx",
            "amd64",
            reachable=True,
            native_arch="amd64",
            error="docker buildx plugin missing; install docker-buildx on the host",
        ),
        ok("spare"),
        ok("arm", "arm64"),
    ]
    plan = plan_build(image(AMD64), ["1.0"], hosts, probes)
    assert [j.host for j in plan.jobs] == ["x"]
    why = {p.host: p for p in plan.passed_over}
    assert list(why) == ["down", "locked", "nobuildx", "spare", "arm"]  # config order
    assert why["down"].state == "unreachable"
    assert why["down"].reason == "UNREACHABLE: cannot reach host 'down': refused"
    assert why["locked"].state == "auth-failed"
    assert why["locked"].reason.startswith("AUTH FAILED: host 'locked' is reachable")
    assert why["nobuildx"].state == "broken" and "buildx plugin missing" in why["nobuildx"].reason
    assert why["spare"].state == "not-needed"
    assert why["spare"].reason == "not needed: linux/amd64 is built on x"
    assert why["arm"].state == "wrong-arch"
    assert why["arm"].reason == "wrong arch: it is arm64 and the image builds linux/amd64"
    assert why["arm"].line() == f"not using host arm: {why['arm'].reason}"
    assert why["down"].to_json() == {
        "host": "down",
        "state": "unreachable",
        "reason": why["down"].reason,
    }


def test_wrong_arch_says_what_emulation_would_need() -> None:
    hosts = [host("a", "arm64"), host("x"), host("e", emulate=True)]
    probes = [ok("a", "arm64"), ok("x", emulation=("riscv64",)), ok("e", emulation=())]
    plan = plan_build(image(ARM64), ["1.0"], hosts, probes)
    why = {p.host: p.reason for p in plan.passed_over}
    assert why["x"] == "wrong arch: it is amd64 and the image builds linux/arm64"
    assert why["e"].endswith("has allow_emulation = true but no QEMU handler for arm64")
    liar = plan_build(image(ARM64), ["1.0"], [host("a", "arm64"), host("l", "arm64")], [
        ok("a", "arm64"), ok("l", "amd64")
    ])  # fmt: skip
    (passed,) = liar.passed_over
    assert passed.reason.startswith("wrong arch: it is amd64 (declared arm64)")
    assert "allow_emulation is off" in passed.reason  # it could emulate arm64 if allowed


def test_a_host_that_would_build_but_failed_gets_its_own_fix_not_allow_emulation() -> None:
    """The platform's only candidate failed its probe (a changed host key): the message shows
    that host's own error and fix, and does not suggest allow_emulation, which is set
    already, nor adding a host."""
    hosts = [host("x"), host("e", emulate=True)]
    probes = [
        ok("x"),
        failed_probe(
            host("e"),
            HostState.HOST_KEY_CHANGED,
            "HOST KEY CHANGED for host 'e' (h:22): ... Fix: only if the change is expected, "
            "remove the old entry with `ssh-keygen -R h -f kh` and trust the new key.",
        ),
    ]
    try:
        plan_build(image(AMD64, ARM64), ["1.0"], hosts, probes)
    except PlanError as exc:
        message = str(exc)
    else:
        raise AssertionError("planned without an arm64 host")
    assert message.startswith("linux/arm64: no reachable arm64 host (e: KEY CHANGED: HOST KEY")
    assert "ssh-keygen -R h -f kh" in message
    assert message.endswith("; fix the host as its message says")
    assert "set allow_emulation" not in message and "matui host add" not in message


def test_no_candidate_at_all_suggests_adding_a_host_and_emulation() -> None:
    try:
        plan_build(image(ARM64), ["1.0"], [host("x")], [ok("x")])
    except PlanError as exc:
        message = str(exc)
    else:
        raise AssertionError("planned without an arm64 host")
    assert "matui host add NAME --arch arm64" in message
    assert "set allow_emulation = true" in message
    assert "fix the host" not in message
