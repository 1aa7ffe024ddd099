"""A host entry naming a buildx builder: its config keys, the probe's reading of the builder
(``buildx inspect`` outputs recorded on real builders, tests/data/builders/), and the pre-flight
and ``matui check`` refusal of a cache or attestations its driver cannot honour."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.config import ConfigError, HostConfig, ImageConfig, parse_config
from matui.engine.flags import FlagKind, Severity
from matui.engine.flags.driver import driver_flags
from matui.engine.probe import HostProbe, builder_probe
from matui.engine.shell import builder_inspect_script

DATA = Path(__file__).parent.parent / "data" / "builders"
#: A build context with a Dockerfile (the config checker looks for it).
CONTEXT = Path(__file__).parents[2] / "examples" / "hello"

CONFIG = """
[[hosts]]
name = "a"
arch = "amd64"
address = "a.example"
{host}

[[images]]
name = "registry.example.com/team/app"
tags = ["1.0"]
context = "."
platforms = ["linux/amd64"]
{image}
"""


def load(host: str = "", image: str = "") -> tuple[HostConfig, ImageConfig]:
    config = parse_config(CONFIG.format(host=host, image=image), None, CONTEXT)
    return config.hosts[0], config.images[0]


def config_problems(host: str = "", image: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(host, image)
    return [str(p) for p in caught.value.problems]


# -- config --------------------------------------------------------------------------------------


def test_keys_load() -> None:
    host, image = load(
        'builder = "second"',
        'cache = "registry.example.com/team/cache"\nattestations = ["sbom", "provenance", "sbom"]',
    )
    assert host.builder == "second"
    assert image.cache == "registry.example.com/team/cache"
    assert image.attestations == ("sbom", "provenance")
    assert load() == (HostConfig("a", "amd64", "a.example"), load()[1])
    assert load()[0].builder is None and load()[1].cache is None


def test_bad_values_are_one_problem_each_naming_the_key() -> None:
    (problem,) = config_problems('builder = "x; rm"')
    assert problem.startswith('hosts[0].builder: "x; rm" is not a buildx builder name')
    (problem,) = config_problems(image='attestations = ["slsa"]')
    assert problem.startswith('images[0].attestations[0]: "slsa" is not an attestation')
    assert '"provenance" or "sbom"' in problem
    (problem,) = config_problems(image='cache = "Not A Repo"')
    assert problem.startswith("images[0].cache:")


# -- the probe -----------------------------------------------------------------------------------


def probed(
    name: str, *, arch: str = "amd64", emulation: bool = False, error: str = ""
) -> HostProbe:
    host = HostConfig("a", arch, "a.example", builder="b", allow_emulation=emulation)
    text = (DATA / name).read_text() if name else ""
    return builder_probe(host, HostProbe("a", arch, True, native_arch="amd64"), text, error)


def test_docker_context_builder_of_the_hosts_arch_is_usable() -> None:
    probe = probed("docker-context.txt")
    assert probe.usable
    assert (probe.builder, probe.builder_driver, probe.builder_nodes) == (
        "b",
        "docker",
        ("second=amd64",),
    )
    assert HostProbe.from_json(probe.to_json()) == probe


def test_builder_with_no_native_node_is_a_problem_of_the_host() -> None:
    """The rig's engine lists linux/arm64 (QEMU): not a native arm64 node."""
    probe = probed("docker-default.txt", arch="arm64")
    assert not probe.usable
    assert probe.error is not None
    assert "builder default (docker driver) has no running arm64 node" in probe.error
    assert probed("docker-default.txt", arch="arm64", emulation=True).usable


@pytest.mark.parametrize(
    ("name", "driver", "nodes"),
    [
        ("docker-container-two-nodes.txt", "docker-container", "elated_tesla0=amd64"),
        ("kubernetes-two-nodes.txt", "kubernetes", "builder-amd64=amd64"),
        ("remote.txt", "remote", "buildkit-exp0=amd64"),
    ],
)
def test_other_drivers_are_driven(name: str, driver: str, nodes: str) -> None:
    probe = probed(name)
    assert probe.usable, probe.error
    assert probe.builder_driver == driver
    assert probe.builder_nodes[0] == nodes
    assert probe.builder_line.endswith(": pushes by digest")
    assert probe.builder_line.startswith(f"builder b ({driver} driver; nodes {nodes}")
    assert HostProbe.from_json(probe.to_json()) == probe


def test_other_drivers_still_refuse_an_arch_with_no_native_node() -> None:
    """The kubernetes builder has an amd64 node (which lists linux/386 too) and an arm64 node
    (arm64 only): a 386 host is refused unless it allows emulation; arm/v7, which no node
    lists, is refused either way."""
    probe = probed("kubernetes-two-nodes.txt", arch="386")
    assert not probe.usable
    assert "builder kube (kubernetes driver) has no running 386 node" in (probe.error or "")
    assert "builder-amd64 would emulate it" in (probe.error or "")
    assert probed("kubernetes-two-nodes.txt", arch="386", emulation=True).usable
    assert not probed("kubernetes-two-nodes.txt", arch="arm/v7", emulation=True).usable
    assert probed("kubernetes-two-nodes.txt", arch="arm64").usable


def test_docker_context_builder_line_says_per_arch_tags() -> None:
    assert probed("docker-context.txt").builder_line == (
        "builder b (docker driver; nodes second=amd64): pushes per-arch tags"
    )
    assert HostProbe("a", "amd64", True).builder_line == ""


def test_missing_builder() -> None:
    probe = probed("", error='ERROR: no builder "b" found')
    assert probe.error is not None
    assert 'docker buildx inspect b` failed (ERROR: no builder "b" found)' in probe.error


def test_inspect_script() -> None:
    assert builder_inspect_script("second").script == "docker buildx inspect second"


# -- the driver's capabilities, at pre-flight and matui check -----------------------------------


def test_cache_and_attestations_on_docker_driver_hosts_are_refused() -> None:
    host, image = load(image='cache = "registry.example.com/cache"\nattestations = ["sbom"]')
    flags = driver_flags(image, [host])  # no builder: the engine's own, the docker driver
    assert [(f.kind, f.severity, f.subject) for f in flags] == [
        (FlagKind.BUILDER_DRIVER, Severity.ERROR, "a")
    ] * 2
    assert "the engine's own builder (docker driver)" in flags[0].message
    assert "docker-container, remote or kubernetes" in flags[0].message

    context_host = HostConfig("a", "amd64", "a.example", builder="second")
    probe = probed("docker-context.txt")
    (cache, _) = driver_flags(image, [context_host], [probe])
    assert "builds with second (docker driver)" in cache.message
    # A builder the probe could not read is judged by its probe, not here.
    assert driver_flags(image, [context_host], []) == []
    # Nothing asked, nothing refused.
    assert driver_flags(load()[1], [host]) == []


def test_matui_check_names_each_hosts_builder_and_how_it_pushes() -> None:
    from matui.cli import format_check
    from matui.engine.flags import CheckReport

    report = CheckReport((probed("kubernetes-two-nodes.txt"), HostProbe("c", "arm64", True)), ())
    lines = format_check(report).splitlines()
    assert (
        "a: builder b (kubernetes driver; nodes builder-amd64=amd64, builder-arm64=arm64): "
        "pushes by digest"
    ) in lines
    assert not any(line.startswith("c: ") for line in lines)  # the engine's own builder
