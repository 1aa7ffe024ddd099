"""The Dockerfile FROM reader (directives, continuations, heredocs, global ARGs and build args,
substitution, platform args, stages) and the base-image rule: an index must list the platform,
a single manifest or a digest pin must be of it; what cannot be read is a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.arch import Platform
from matui.engine.config import ImageConfig
from matui.engine.flags import FlagKind, Severity, base_image_flags
from matui.engine.flags.base_images import (
    BaseImage,
    BaseLookup,
    DockerfileError,
    ExpandError,
    base_platform_flags,
    expand,
    job_base_images,
    parse_dockerfile,
    parse_image_reference,
)
from matui.engine.refs import RefError, Repository
from matui.engine.registry import (
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    ImageConfigFacts,
    IndexEntry,
    Manifest,
    RegistryError,
)

AMD = Platform("linux", "amd64")
ARM = Platform("linux", "arm64")
ARMV7 = Platform("linux", "arm/v7")


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def bases(
    text: str,
    target: Platform = ARM,
    build: Platform = AMD,
    build_args: dict[str, str] | None = None,
    stage: str | None = None,
) -> list[tuple[int, str, str]]:
    """(line, reference, platform) of each base image a job pulls."""
    found = job_base_images(
        parse_dockerfile(text), target=target, build=build, build_args=build_args, stage=stage
    )
    assert all(b.problem is None for b in found), [b.problem for b in found]
    return [(b.source.line, b.reference, str(b.platform)) for b in found]


# ---- substitution ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("x${A}y$A", "xaya"),
        ("${UNSET}", ""),
        ("$UNSET/img", "/img"),
        ("${UNSET:-busybox}", "busybox"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-${A}/x}", "a/x"),
        ("'$A'", "$A"),
        ('"$A b"', "a b"),
        ("\\$A", "$A"),
        ("a$", "a$"),
        ("${A:?need A}", "a"),
    ],
)
def test_expand(word: str, expected: str) -> None:
    assert expand(word, {"A": "a", "EMPTY": ""}) == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${UNSET:?set BASE}", "UNSET: set BASE"),
        ("${A", "unclosed"),
        ("${A%%.*}", "only the :- :+ :?"),
        ("${1}", "variable name"),
        ("'open", "unclosed '"),
    ],
)
def test_expand_refuses(word: str, message: str) -> None:
    with pytest.raises(ExpandError, match=message.replace("?", r"\?").replace("+", r"\+")):
        expand(word, {"A": "a"})


def test_backtick_escape_directive() -> None:
    text = "# escape=`\nARG V=1\nFROM busybox:`$V-\\x `\n  AS base\n"
    facts = parse_dockerfile(text)
    assert facts.escape == "`"
    # `$ is a literal $, the backslash an ordinary character, the backtick continues the line
    assert (facts.froms[0].image, facts.froms[0].stage) == ("busybox:`$V-\\x", "base")
    assert expand(facts.froms[0].image, {"V": "1"}, "`") == "busybox:$V-\\x"


# ---- reading the file -----------------------------------------------------------------------


def test_global_args_build_args_and_defaults() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG REGISTRY=127.0.0.1:5000\n"
        'ARG BASE="${REGISTRY}/matui/busybox" VERSION=1.35\n'
        "ARG UNUSED\n"
        "FROM ${BASE}:${VERSION}\n"
    )
    assert parse_dockerfile(text).syntax == "docker/dockerfile:1"
    assert bases(text) == [(5, "127.0.0.1:5000/matui/busybox:1.35", "linux/arm64")]
    assert bases(text, build_args={"VERSION": "1.36"})[0][1].endswith(":1.36")
    assert bases(text, build_args={"REGISTRY": "r.example.com"})[0][1] == (
        "r.example.com/matui/busybox:1.35"
    )


def test_an_arg_declared_inside_a_stage_does_not_reach_from() -> None:
    text = "FROM busybox AS a\nARG BASE=alpine\nFROM ${BASE:-debian}\n"
    assert [r for _, r, _ in bases(text)] == ["debian"]


def test_undeclared_build_arg_is_not_seen_by_from() -> None:
    text = "FROM ${BASE:-busybox}\n"
    assert bases(text, build_args={"BASE": "alpine"})[0][1] == "busybox"


def test_platform_args_and_buildplatform() -> None:
    text = (
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n"
        "FROM --platform=${TARGETPLATFORM} alpine:3-${TARGETARCH} AS final\n"
        "COPY --from=build /out /out\n"
    )
    assert bases(text, target=ARM, build=AMD) == [
        (1, "golang:1.22", "linux/amd64"),
        (2, "alpine:3-arm64", "linux/arm64"),
    ]
    found = job_base_images(parse_dockerfile(text), target=ARM, build=AMD)
    assert [b.reason for b in found] == ["build-host", "target"]


def test_literal_platform_flag() -> None:
    text = "FROM --platform=linux/amd64 tool AS t\nFROM busybox\nCOPY --from=t / /\n"
    found = job_base_images(parse_dockerfile(text), target=ARM, build=ARM)
    assert [(b.reference, str(b.platform), b.reason) for b in found] == [
        ("tool", "linux/amd64", "--platform"),
        ("busybox", "linux/arm64", "target"),
    ]


def test_stage_references_and_scratch_are_not_images() -> None:
    text = (
        "FROM busybox AS Base\n"
        "FROM base AS second\n"  # stage names are case-insensitive
        "FROM scratch\n"
        "COPY --from=second / /\n"
    )
    assert bases(text) == [(1, "busybox", "linux/arm64")]


def test_only_the_stages_the_target_needs() -> None:
    text = (
        "FROM alpine AS unused\n"
        "FROM debian AS deps\n"
        "FROM golang AS build\n"
        "RUN --mount=type=cache,target=/c --mount=type=bind,from=deps,target=/d true\n"
        "FROM busybox AS final\n"
        "COPY --from=1 /x /x\n"
        "COPY --from=build /out /out\n"
        "FROM ubuntu AS other\n"
    )
    assert [r for _, r, _ in bases(text, stage="final")] == ["debian", "golang", "busybox"]
    assert [r for _, r, _ in bases(text)] == ["ubuntu"]  # the last stage by default
    assert [r for _, r, _ in bases(text, stage="FINAL")] == ["debian", "golang", "busybox"]


def test_continuations_comments_and_heredocs() -> None:
    text = (
        "FROM \\\n"
        "  # a comment inside the instruction\n"
        "\n"
        "  busybox:1 \\\n"
        "  AS base\n"
        "RUN <<EOF\n"
        "FROM not-an-image\n"
        "EOF\n"
        "RUN <<-'DONE' cat\n"
        "\tFROM neither\n"
        "\tDONE\n"
        "  # FROM commented\n"
        "from alpine\n"
        "COPY --from=base / /\n"
    )
    facts = parse_dockerfile(text)
    assert [(f.line, f.image, f.stage) for f in facts.froms] == [
        (1, "busybox:1", "base"),
        (13, "alpine", None),
    ]
    assert facts.froms[0].text == "FROM busybox:1   AS base"


def test_crlf_and_bom() -> None:
    facts = parse_dockerfile("\ufeffARG B=x\r\nFROM $B\r\n")
    assert [a.name for a in facts.args] == ["B"]
    assert facts.froms[0].image == "$B"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN echo\n", "no FROM"),
        ("# only a comment\n", "no FROM"),
        ("FROM\n", "FROM without an image"),
        ("FROM --pull busybox\n", "--platform=VALUE"),
        ("FROM a b c d\n", "IMAGE \\[AS name\\]"),
        ("# escape=x\nFROM a\n", "escape directive"),
    ],
)
def test_unreadable_dockerfiles(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse_dockerfile(text)


def test_problems_are_kept_per_from() -> None:
    facts = parse_dockerfile(
        "ARG BASE\nFROM ${BASE}\nFROM ${NEED:?need}\nFROM Upper/Case\nCOPY --from=0 / /\n"
        "COPY --from=1 / /\n"
    )
    found = job_base_images(facts, target=ARM, build=AMD)
    assert [(b.source.line, b.problem) for b in found] == [
        (2, "the image is empty after substitution (BuildKit refuses it)"),
        (3, "NEED: need"),
        (4, "'Upper/Case': repository names must be lowercase"),
    ]


@pytest.mark.parametrize(
    ("text", "registry", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", None, None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("team/app:1", "docker.io", "team/app", "1", None),
        ("127.0.0.1:5000/matui/busybox:1.35", "127.0.0.1:5000", "matui/busybox", "1.35", None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app", "localhost:5000", "app", None, None),
        (f"ghcr.io/o/app:1@{dg(1)}", "ghcr.io", "o/app", "1", dg(1)),
        (f"alpine@{dg(2)}", "docker.io", "library/alpine", None, dg(2)),
    ],
)
def test_image_references(
    text: str, registry: str, path: str, tag: str | None, digest: str | None
) -> None:
    assert parse_image_reference(text) == (Repository(registry, path), tag, digest)


@pytest.mark.parametrize("text", ["alpine@sha256:xyz", "alpine:bad tag", "a/-b", "x:" + "1" * 200])
def test_bad_image_references(text: str) -> None:
    with pytest.raises(RefError):
        parse_image_reference(text)


# ---- the rule -------------------------------------------------------------------------------

DOCKERFILE = "ARG BASE\nFROM ${BASE}\n"


def entry(platform: Platform | None, digest: str, text: str) -> IndexEntry:
    return IndexEntry(digest, MEDIA_OCI_MANIFEST, platform, 500, platform is None, text)


def index(digest: str, *platforms: Platform) -> Manifest:
    entries = [entry(p, dg(100 + i), str(p)) for i, p in enumerate(platforms)]
    entries.append(entry(None, dg(99), "unknown/unknown"))  # an attestation: not a platform
    return Manifest(digest, MEDIA_OCI_INDEX, b"", tuple(entries), None)


def single(digest: str) -> Manifest:
    return Manifest(digest, MEDIA_DOCKER_MANIFEST, b"", (), dg(9999))


def base_for(reference: str, platform: Platform = ARM) -> BaseImage:
    found = job_base_images(
        parse_dockerfile(DOCKERFILE), target=platform, build=AMD, build_args={"BASE": reference}
    )
    assert len(found) == 1
    return found[0]


def test_index_without_the_platform_is_an_error_naming_the_from() -> None:
    base = base_for("127.0.0.1:5000/busybox:1")
    flags = base_platform_flags(
        "Dockerfile", base, BaseLookup(index(dg(1), AMD)), subject="linux/arm64"
    )
    assert len(flags) == 1
    flag = flags[0]
    assert (flag.kind, flag.severity, flag.subject) == (
        FlagKind.BASE_IMAGE,
        Severity.ERROR,
        "linux/arm64",
    )
    assert flag.message.startswith(
        "Dockerfile:2 FROM ${BASE} → 127.0.0.1:5000/busybox:1 has no linux/arm64 image "
        "(index lists linux/amd64); "
    )
    assert flag.evidence["index_platforms"] == ["linux/amd64"]


def test_index_with_the_platform_passes() -> None:
    base = base_for("busybox:1")
    lookup = BaseLookup(index(dg(1), AMD, ARM))
    assert base_platform_flags("Dockerfile", base, lookup, subject="x") == []


def test_arm_variant_must_match() -> None:
    base = base_for("busybox:1", ARMV7)
    lookup = BaseLookup(index(dg(1), AMD, Platform("linux", "arm/v6")))
    (flag,) = base_platform_flags("Dockerfile", base, lookup, subject="linux/arm/v7")
    assert "has no linux/arm/v7 image (index lists linux/amd64, linux/arm/v6)" in flag.message


def test_single_manifest_of_another_platform_is_an_error() -> None:
    base = base_for("busybox:1")
    lookup = BaseLookup(single(dg(1)), AMD, "linux/amd64")
    (flag,) = base_platform_flags("Dockerfile", base, lookup, subject="linux/arm64")
    assert flag.severity is Severity.ERROR
    assert "is a single linux/amd64 image, not a multi-platform index" in flag.message
    assert "has no linux/arm64 image" in flag.message
    assert (
        base_platform_flags("D", base, BaseLookup(single(dg(1)), ARM, "linux/arm64"), subject="x")
        == []
    )


def test_digest_pin_of_another_platform_is_an_error() -> None:
    base = base_for(f"busybox@{dg(7)}")
    assert base.digest == dg(7)
    lookup = BaseLookup(single(dg(7)), AMD, "linux/amd64")
    (flag,) = base_platform_flags("Dockerfile", base, lookup, subject="linux/arm64")
    assert flag.severity is Severity.ERROR
    assert f"FROM ${{BASE}} → busybox@{dg(7)} is pinned to a linux/amd64 image" in flag.message
    assert "pin the digest of the index" in flag.message


def test_digest_pin_of_an_index_without_the_platform() -> None:
    base = base_for(f"busybox@{dg(7)}")
    (flag,) = base_platform_flags(
        "Dockerfile", base, BaseLookup(index(dg(7), AMD)), subject="linux/arm64"
    )
    assert "pin an index digest that lists linux/arm64" in flag.message


def test_unreadable_or_missing_base_is_a_warning() -> None:
    base = base_for("registry.example.com/base:1")
    (flag,) = base_platform_flags(
        "Dockerfile", base, BaseLookup(error="HTTP 401 Unauthorized"), subject="linux/arm64"
    )
    assert flag.severity is Severity.WARNING
    assert "cannot check that it has a linux/arm64 image" in flag.message
    (flag,) = base_platform_flags(
        "Dockerfile", base, BaseLookup(None, found=False), subject="linux/arm64"
    )
    assert flag.severity is Severity.WARNING and "no such image" in flag.message


def test_a_from_that_cannot_be_built_is_an_error() -> None:
    (base,) = job_base_images(parse_dockerfile(DOCKERFILE), target=ARM, build=AMD)
    (flag,) = base_platform_flags("Dockerfile", base, None, subject="linux/arm64")
    assert flag.severity is Severity.ERROR
    assert "Dockerfile:2 FROM ${BASE}: the image is empty after substitution" in flag.message


def test_host_text_in_the_from_line_is_made_inert() -> None:
    facts = parse_dockerfile("FROM busybox\x1b[2J\n")
    (base,) = job_base_images(facts, target=ARM, build=AMD)
    (flag,) = base_platform_flags("Dockerfile", base, None, subject="linux/arm64")
    assert "\x1b" not in flag.message


# ---- the gatherer ---------------------------------------------------------------------------


class Registry:
    """The registry as the gatherer reads it: manifests by (repository, reference), configs by
    digest; an unknown repository raises as an unreachable registry does."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], Manifest] = {}
        self.configs: dict[str, ImageConfigFacts] = {}
        self.reads: list[tuple[str, str]] = []

    async def get_manifest(self, repo: Repository, reference: str) -> Manifest | None:
        self.reads.append((str(repo), reference))
        if repo.registry == "down.example.com":
            raise RegistryError("down.example.com: connection refused")
        return self.manifests.get((str(repo), reference))

    async def head_digest(self, repo: Repository, reference: str) -> str | None:
        raise AssertionError("not used")

    async def image_config(self, repo: Repository, manifest_digest: str) -> ImageConfigFacts:
        return self.configs[manifest_digest]


def image(tmp_path: Path, dockerfile: str, **build_args: str) -> ImageConfig:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return ImageConfig(
        "r.example.com/team/app", ("1.0",), tmp_path, (AMD, ARM), build_args=build_args
    )


async def test_gatherer_reads_each_base_once_and_flags_per_platform(tmp_path: Path) -> None:
    registry = Registry()
    registry.manifests[("r.example.com/base", "1")] = index(dg(1), AMD)
    registry.manifests[("r.example.com/tool", "2")] = single(dg(2))
    registry.configs[dg(2)] = ImageConfigFacts("linux", "amd64", None, AMD)
    config = image(
        tmp_path,
        "ARG BASE\nFROM --platform=$BUILDPLATFORM r.example.com/tool:2 AS t\n"
        "FROM ${BASE}\nCOPY --from=t / /\n",
        BASE="r.example.com/base:1",
    )
    flags = await base_image_flags(config, [(AMD, AMD), (ARM, AMD)], registry)
    assert [(f.severity, f.subject) for f in flags] == [(Severity.ERROR, "linux/arm64")]
    assert "Dockerfile:3 FROM ${BASE} → r.example.com/base:1 has no linux/arm64" in flags[0].message
    assert sorted(registry.reads) == [("r.example.com/base", "1"), ("r.example.com/tool", "2")]


async def test_gatherer_unreachable_registry_is_a_warning(tmp_path: Path) -> None:
    config = image(tmp_path, "FROM down.example.com/base:1\n")
    flags = await base_image_flags(config, [(AMD, AMD), (ARM, ARM)], Registry())
    assert [(f.severity, f.subject) for f in flags] == [
        (Severity.WARNING, "linux/amd64"),
        (Severity.WARNING, "linux/arm64"),
    ]
    assert "connection refused" in flags[0].message


async def test_gatherer_unreadable_dockerfile_or_other_frontend(tmp_path: Path) -> None:
    config = image(tmp_path, "RUN true\n")
    (flag,) = await base_image_flags(config, [(ARM, ARM)], Registry())
    assert flag.severity is Severity.WARNING and "not checked" in flag.message
    (flag,) = await base_image_flags(
        config, [(ARM, ARM)], Registry(), text="# syntax=example.com/other:1\nFROM x\n"
    )
    assert flag.severity is Severity.INFO and "example.com/other:1" in flag.message
    (tmp_path / "Dockerfile").unlink()
    (flag,) = await base_image_flags(config, [(ARM, ARM)], Registry())
    assert flag.severity is Severity.WARNING and "cannot read" in flag.message


async def test_gatherer_labels_subjects_with_the_image(tmp_path: Path) -> None:
    registry = Registry()
    registry.manifests[("docker.io/library/busybox", "latest")] = index(dg(1), AMD)
    config = image(tmp_path, "FROM busybox\n")
    flags = await base_image_flags(config, [(ARM, ARM)], registry, label="r.example.com/team/app")
    assert [f.subject for f in flags] == ["r.example.com/team/app linux/arm64"]
