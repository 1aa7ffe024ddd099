"""Builders a team already runs: ``buildx inspect`` read from outputs recorded on real builders
(tests/data/builders/README.md says where each came from), the driver's capabilities, and the
command line :func:`matui.engine.shell.buildx_argv` chooses for each driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine import builders, shell
from matui.engine.builders import BuilderInfo, InspectError, capabilities, parse_inspect

DATA = Path(__file__).parent.parent / "data" / "builders"


def recorded(name: str) -> BuilderInfo:
    return parse_inspect((DATA / name).read_text())


# -- the parser, on recorded outputs ---------------------------------------------------------


def test_docker_driver_native_arch_is_the_engines_not_every_listed_platform() -> None:
    """The rig's engine lists eight platforms (QEMU's too): only amd64 is its own."""
    info = recorded("docker-default.txt")
    assert (info.name, info.driver) == ("default", "docker")
    (node,) = info.nodes
    assert node.status == "running" and node.buildkit == "v0.8+unknown"
    assert "linux/arm64" in node.platforms
    assert node.native_arch == "amd64"
    assert info.native_nodes("amd64") == [node]
    assert info.native_nodes("arm64") == []


def test_docker_context_builder() -> None:
    info = recorded("docker-context.txt")
    assert (info.name, info.driver) == ("second", "docker")
    assert [(n.name, n.endpoint, n.native_arch) for n in info.nodes] == [
        ("second", "second", "amd64")
    ]


def test_docker_container_builder_with_two_nodes() -> None:
    """The ``*`` buildx prints after a platform set at create time is not part of its name."""
    info = recorded("docker-container-two-nodes.txt")
    assert info.driver == "docker-container"
    assert [(n.name, n.endpoint, n.native_arch) for n in info.nodes] == [
        ("elated_tesla0", "unix:///var/run/docker.sock", "amd64"),
        ("elated_tesla1", "ssh://ubuntu@1.2.3.4", "arm64"),
    ]
    assert info.nodes[1].platforms == ("linux/arm64", "linux/arm/v7", "linux/arm/v6")
    assert [n.name for n in info.native_nodes("arm64")] == ["elated_tesla1"]
    assert info.nodes[1].buildkit == "v0.10.3"


def test_kubernetes_builder_with_a_node_per_arch() -> None:
    """Reconstructed from the kubernetes driver guide's ``buildx ls`` (README says how)."""
    info = recorded("kubernetes-two-nodes.txt")
    assert (info.name, info.driver) == ("kube", "kubernetes")
    assert [(n.name, n.native_arch, n.running) for n in info.nodes] == [
        ("builder-amd64", "amd64", True),
        ("builder-arm64", "arm64", True),
    ]
    assert info.nodes[0].endpoint == "kubernetes:///kube?deployment=builder-amd64&kubeconfig="
    assert info.nodes[0].platforms[:2] == ("linux/amd64", "linux/amd64/v2")
    assert info.refusal("arm64") is None
    why = info.refusal("arm/v7")
    assert why is not None and why.startswith("builder kube (kubernetes driver)")


def test_remote_builder() -> None:
    info = recorded("remote.txt")
    assert info.driver == "remote"
    (node,) = info.nodes
    assert (node.endpoint, node.buildkit, node.native_arch) == (
        "npipe:////./pipe/buildkitd",
        "v0.13.1",
        "amd64",
    )


def test_not_a_builder_is_an_error() -> None:
    with pytest.raises(InspectError):
        parse_inspect('ERROR: no builder "nope" found\n')


# -- refusing a platform with no native node -------------------------------------------------


def test_emulated_platform_is_refused_naming_builder_driver_and_nodes() -> None:
    info = recorded("docker-default.txt")
    assert info.refusal("amd64") is None
    why = info.refusal("arm64")
    assert why is not None
    assert why.startswith("builder default (docker driver) has no running arm64 node")
    assert "default (amd64, running)" in why
    assert "allow_emulation = true" in why
    assert info.refusal("arm64", allow_emulation=True) is None


def test_arch_no_node_lists_is_refused_even_with_emulation() -> None:
    info = recorded("docker-container-two-nodes.txt")
    assert info.refusal("arm/v7") is not None  # only emulated... by the arm64 node
    assert info.refusal("arm/v7", allow_emulation=True) is None
    why = info.refusal("s390x", allow_emulation=True)
    assert why is not None and "allow_emulation" not in why


def test_stopped_node_does_not_count() -> None:
    text = (DATA / "docker-container-two-nodes.txt").read_text()
    info = parse_inspect(
        text.replace(
            "Status:    running\nBuildkit:  v0.10.3\nPlatforms: linux/arm64",
            "Status:    stopped\nBuildkit:  v0.10.3\nPlatforms: linux/arm64",
        )
    )
    why = info.refusal("arm64")
    assert why is not None and "elated_tesla1 (arm64, stopped)" in why


# -- the node that built a job ----------------------------------------------------------------


def test_node_and_digest_from_docker_container_metadata() -> None:
    """A docker-container build's metadata (buildx's reference): the node from
    ``buildx.build.ref``, the digest the index is made from from ``containerimage.digest``, read
    as the run reads it (progress.parse_metadata)."""
    from matui.engine.build.progress import parse_metadata

    text = (DATA / "metadata-docker-container.json").read_text()
    assert builders.node_from_metadata(text, "mybuilder") == "mybuilder0"
    meta = parse_metadata(text)
    assert meta["digest"] == (
        "sha256:19ffeab6f8bc9293ac2c3fdf94ebe28396254c993aea0b5a542cfb02e0883fa3"
    )
    assert meta["media_type"] == "application/vnd.oci.image.manifest.v1+json"


def test_node_from_recorded_metadata() -> None:
    text = (DATA / "metadata-docker-context.json").read_text()
    assert builders.node_from_metadata(text, "second") == "second"
    assert builders.node_from_metadata(text, "other") is None
    assert builders.node_from_metadata("{not json", "second") is None
    assert builders.node_from_metadata('{"containerimage.digest": "sha256:1"}', "second") is None


# -- capabilities per driver ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("docker-default.txt", False),
        ("docker-context.txt", False),
        ("docker-container-two-nodes.txt", True),
        ("remote.txt", True),
        ("kubernetes-two-nodes.txt", True),
    ],
)
def test_capabilities_of_recorded_drivers(name: str, full: bool) -> None:
    caps = capabilities(recorded(name).driver)
    assert (caps.push_by_digest, caps.attestations, caps.registry_cache) == (full, full, full)


def test_docker_driver_refuses_cache_and_attestations_with_the_reason() -> None:
    caps = capabilities("docker")
    problems = caps.problems(cache="registry.example.com/cache", attestations=["sbom"])
    assert len(problems) == 2
    assert all("docker driver" in p for p in problems)
    assert all("docker-container, remote or kubernetes" in p for p in problems)
    assert capabilities("kubernetes").problems(cache="r/c", attestations=["provenance"]) == []
    assert caps.problems(cache=None, attestations=[]) == []


def test_cache_ref_and_attestation_names() -> None:
    assert builders.cache_ref("r.example/cache", "app", "arm/v7") == "r.example/cache:app-arm-v7"
    assert builders.check_attestations(["sbom", "provenance", "slsa"]) == ["slsa"]


# -- the command line each driver gets --------------------------------------------------------


def argv_for(
    info: BuilderInfo,
    *,
    attestations: tuple[str, ...] = (),
    cache: bool = False,
    platform: str = "linux/arm64",
) -> list[str]:
    """The argv the build chooses for ``info`` as the probe read it: the route
    (:func:`builders.build_route`, what the run asks) turned into flags by buildx_argv."""
    arch = platform.partition("/")[2]
    route = builders.build_route(
        info.name,
        info.driver,
        repository="registry.example.com/app",
        arch=arch,
        cache="registry.example.com/cache" if cache else None,
        attestations=attestations,
    )
    return shell.buildx_argv(
        platform=platform,
        ref=f"registry.example.com/app:1.0-{arch.replace('/', '')}",
        dockerfile="Dockerfile",
        build_args=[],
        labels={},
        target=None,
        **route.buildx_options(),
    )


def test_argv_docker_context_builder() -> None:
    argv = argv_for(recorded("docker-context.txt"))
    assert argv[:4] == ["docker", "--context=second", "buildx", "build"]
    assert "--builder=second" not in argv
    assert "--push" in argv and "--tag=registry.example.com/app:1.0-arm64" in argv
    assert not any(a.startswith("--output") or a.startswith("--cache") for a in argv)
    # Asked for on a docker-driver host (the config check refuses that), never on its argv.
    argv = argv_for(recorded("docker-context.txt"), attestations=("sbom",), cache=True)
    assert "--sbom=true" not in argv and "--provenance=false" in argv
    assert not any(a.startswith("--output") or a.startswith("--cache") for a in argv)


def test_argv_docker_container_builder_pushes_by_digest_with_cache_and_attestations() -> None:
    argv = argv_for(
        recorded("docker-container-two-nodes.txt"), attestations=("sbom", "provenance"), cache=True
    )
    assert argv[:4] == ["docker", "buildx", "build", "--builder=elated_tesla"]
    assert "--push" not in argv and not any(a.startswith("--tag") for a in argv)
    assert (
        "--output=type=image,name=registry.example.com/app,push-by-digest=true,"
        "name-canonical=true,push=true,oci-mediatypes=true"
    ) in argv
    assert "--provenance=mode=max" in argv and "--sbom=true" in argv
    ref = "registry.example.com/cache:app-arm64"
    assert f"--cache-to=type=registry,ref={ref},mode=max,ignore-error=true" in argv
    assert f"--cache-from=type=registry,ref={ref}" in argv
    assert argv[-2:] == ["--", "context"]


def test_argv_kubernetes_builder_pushes_by_digest_per_arch_cache() -> None:
    """The kubernetes builder (reconstructed from Docker's guide, README says how): by digest,
    with provenance only when asked, and a cache ref per image and arch (arm/v7 as arm-v7)."""
    info = recorded("kubernetes-two-nodes.txt")
    argv = argv_for(info, attestations=("provenance",), cache=True, platform="linux/arm/v7")
    assert argv[:4] == ["docker", "buildx", "build", "--builder=kube"]
    assert not any(a == "--push" or a.startswith("--tag") for a in argv)
    assert "--provenance=mode=max" in argv and "--sbom=true" not in argv
    assert (
        "--output=type=image,name=registry.example.com/app,push-by-digest=true,"
        "name-canonical=true,push=true,oci-mediatypes=true"
    ) in argv
    assert "--cache-from=type=registry,ref=registry.example.com/cache:app-arm-v7" in argv
    assert "--metadata-file=metadata.json" in argv


@pytest.mark.parametrize(
    ("name", "builder", "by_digest", "context"),
    [
        ("docker-default.txt", "default", False, True),
        ("docker-context.txt", "second", False, True),
        ("docker-container-two-nodes.txt", "elated_tesla", True, False),
        ("remote.txt", "buildkit-exp", True, False),
        ("kubernetes-two-nodes.txt", "kube", True, False),
    ],
)
def test_route_per_recorded_driver(name: str, builder: str, by_digest: bool, context: bool) -> None:
    info = recorded(name)
    route = builders.build_route(info.name, info.driver, repository="r.example/app", arch="amd64")
    assert (route.builder, route.push_by_digest, route.builder_is_context) == (
        builder,
        by_digest,
        context,
    )
    assert route.pushed_as == (builders.BY_DIGEST if by_digest else None)


def test_route_without_builder_or_driver_is_the_docker_drivers() -> None:
    """No builder: the engine's own. A builder whose driver was never read (a record from before
    the probe read it) was a docker context, the only kind driven then."""
    own = builders.build_route(
        None, "kubernetes", repository="r.example/app", arch="amd64", cache="r.example/c"
    )
    assert (own.driver, own.push_by_digest, own.builder_is_context, own.cache_ref) == (
        "docker",
        False,
        False,
        None,
    )
    unread = builders.build_route("second", None, repository="r.example/app", arch="amd64")
    assert (unread.driver, unread.builder_is_context, unread.push_by_digest) == (
        "docker",
        True,
        False,
    )


def test_pushed_line() -> None:
    assert builders.pushed_line(builders.BY_DIGEST, "kube", "builder-arm64") == (
        "pushed by digest; builder kube/node builder-arm64"
    )
    assert builders.pushed_line(builders.BY_DIGEST, "kube") == "pushed by digest; builder kube"
    assert builders.pushed_line("1.0-amd64", "second", "second") == "builder second/node second"
    assert builders.pushed_line("1.0-amd64", None) == ""
    assert builders.pushed_line(None, None) == ""


def test_argv_remote_builder_without_attestations() -> None:
    argv = argv_for(recorded("remote.txt"))
    assert "--builder=buildkit-exp" in argv
    assert "--provenance=false" in argv and "--sbom=true" not in argv
    assert (
        "--output=type=image,name=registry.example.com/app,push-by-digest=true,"
        "name-canonical=true,push=true"
    ) in argv


def test_argv_without_builder_is_unchanged() -> None:
    argv = shell.buildx_argv(
        platform="linux/amd64",
        ref="r/app:1.0-amd64",
        dockerfile="Dockerfile",
        build_args=[],
        labels={},
        target=None,
    )
    assert argv[:5] == ["docker", "buildx", "build", "--progress=plain", "--platform=linux/amd64"]
    assert argv[5:9] == [
        "--provenance=false",
        "--metadata-file=metadata.json",
        "--push",
        "--tag=r/app:1.0-amd64",
    ]


def test_builder_name_must_be_plain() -> None:
    with pytest.raises(shell.UnsafeValue):
        shell.buildx_argv(
            platform="linux/amd64",
            ref="r/app:1",
            dockerfile="Dockerfile",
            build_args=[],
            labels={},
            target=None,
            builder="x; rm -rf /",
        )
