"""The probe's output parser and the host arch checks: pure functions over captured text."""

from __future__ import annotations

from matui.engine.config import HostConfig
from matui.engine.flags import FlagKind, Severity, host_arch_flags
from matui.engine.probe import parse_probe, split_sections


def Host(name: str, arch: str) -> HostConfig:
    return HostConfig(name, arch, f"{name}.example")


DOCKER_JSON = (
    '{"Client":{"Version":"28.2.2","Arch":"amd64"},'
    '"Server":{"Version":"20.10.24+dfsg1","Os":"linux","Arch":"%s"}}'
)


def probe_text(uname: str = "x86_64", docker_arch: str = "amd64", buildx: bool = True) -> str:
    buildx_body = (
        "github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3"
        if buildx
        else ("docker: 'buildx' is not a docker command.")
    )
    return (
        "\n".join(
            [
                "@@matui:uname",
                uname,
                "@@matui:uname:rc=0",
                "@@matui:docker",
                DOCKER_JSON % docker_arch,
                "@@matui:docker:rc=0",
                "@@matui:buildx",
                buildx_body,
                f"@@matui:buildx:rc={0 if buildx else 1}",
                "@@matui:binfmt",
                "qemu-aarch64",
                "qemu-arm",
                "qemu-x86_64",
                "qemu-mips",
                "@@matui:binfmt:rc=0",
                "@@matui:df",
                "Filesystem 1024-blocks Used Available Capacity Mounted on",
                "/dev/vda 264212084 23825748 82565164 23% /",
                "@@matui:df:rc=0",
            ]
        )
        + "\n"
    )


def test_native_amd64_host() -> None:
    probe = parse_probe(Host("a", "amd64"), probe_text())
    assert probe.reachable and probe.usable
    assert (probe.uname, probe.native_arch, probe.docker_arch) == ("x86_64", "amd64", "amd64")
    assert probe.docker_version == "20.10.24+dfsg1"
    assert probe.buildx_version == "0.13.1+ds1"
    # The host's own arch is not "emulation"; arm covers both arm/v7 and arm/v6.
    assert probe.emulation == ("arm64", "arm/v7", "arm/v6")
    assert probe.free_bytes == 82565164 * 1024
    assert host_arch_flags([probe]) == []


def test_declared_arm64_but_x86_64_is_an_error_flag() -> None:
    probe = parse_probe(Host("liar", "arm64"), probe_text())
    (flag,) = host_arch_flags([probe])
    assert flag.kind is FlagKind.ARCH_MISMATCH and flag.severity is Severity.ERROR
    assert flag.subject == "liar"
    assert "declared arm64" in flag.message and "x86_64" in flag.message
    assert flag.evidence["native"] == "amd64"


def test_emulated_docker_engine_is_flagged() -> None:
    probe = parse_probe(Host("odd", "arm64"), probe_text(uname="aarch64", docker_arch="amd64"))
    (flag,) = host_arch_flags([probe])
    assert flag.kind is FlagKind.ARCH_MISMATCH
    assert "docker engine runs as amd64" in flag.message


def test_missing_buildx_and_dead_docker_are_named_problems() -> None:
    text = probe_text(buildx=False).replace(
        DOCKER_JSON % "amd64",
        '{"Client":{"Version":"28.2.2"},"Server":null}\nCannot connect to the Docker daemon',
    )
    probe = parse_probe(Host("h", "amd64"), text)
    assert not probe.usable
    assert probe.error is not None
    assert "docker engine not answering: Cannot connect to the Docker daemon" in probe.error
    assert "buildx plugin missing" in probe.error


def test_truncated_output_keeps_what_arrived() -> None:
    text = probe_text().split("@@matui:buildx:rc")[0]
    sections = split_sections(text)
    assert sections["uname"] == ("x86_64", 0)
    assert sections["buildx"][1] is None  # cut short: no exit code
    probe = parse_probe(Host("h", "amd64"), text)
    assert probe.native_arch == "amd64"
    assert probe.buildx_version is None and probe.error


def test_unknown_uname_is_reported_not_guessed() -> None:
    probe = parse_probe(Host("h", "amd64"), probe_text(uname="mips64"))
    assert probe.native_arch is None
    assert probe.error and "mips64" in probe.error
