"""Architecture names, OCI platforms and the OCI reference grammar (matui.engine.arch/refs)."""

from __future__ import annotations

import pytest

from matui.engine.arch import (
    ARCHES,
    ArchError,
    Platform,
    arch_from_parts,
    emulatable_arches,
    normalise_arch,
)
from matui.engine.refs import (
    RefError,
    Repository,
    check_digest,
    check_tag,
    parse_repository,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4

# -- architectures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("x86_64", "amd64"),
        ("x86-64", "amd64"),
        ("x64", "amd64"),
        ("amd64", "amd64"),
        ("aarch64", "arm64"),
        ("arm64/v8", "arm64"),
        ("armv8", "arm64"),
        ("armv8l", "arm/v7"),
        ("armv7l", "arm/v7"),
        ("armv7", "arm/v7"),
        ("armhf", "arm/v7"),
        ("arm", "arm/v7"),
        ("armv6l", "arm/v6"),
        ("armel", "arm/v6"),
        ("i386", "386"),
        ("i486", "386"),
        ("i586", "386"),
        ("i686", "386"),
        ("x86", "386"),
        ("ppc64el", "ppc64le"),
        ("ppc64le", "ppc64le"),
        ("s390x", "s390x"),
        ("riscv64", "riscv64"),
    ],
)
def test_aliases_normalise(alias: str, canonical: str) -> None:
    assert normalise_arch(alias) == canonical


@pytest.mark.parametrize("arch", ARCHES)
def test_canonical_names_are_fixed_points(arch: str) -> None:
    assert normalise_arch(arch) == arch


@pytest.mark.parametrize("text", ["X86_64", " aarch64\n", "AMD64"])
def test_case_and_surrounding_space_are_ignored(text: str) -> None:
    assert normalise_arch(text) in ARCHES


@pytest.mark.parametrize("bad", ["arm65", "", "mips", "amd64 arm64", "x86_64x", "ärm64"])
def test_unknown_arch_raises_with_every_valid_name(bad: str) -> None:
    with pytest.raises(ArchError) as info:
        normalise_arch(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "not an architecture" in message
    assert ", ".join(ARCHES) in message


def test_arch_error_is_a_value_error() -> None:
    assert issubclass(ArchError, ValueError)


@pytest.mark.parametrize(
    ("architecture", "variant", "canonical"),
    [
        ("arm", "v7", "arm/v7"),
        ("arm", "v6", "arm/v6"),
        ("arm64", "v8", "arm64"),
        ("arm64", None, "arm64"),
        ("amd64", None, "amd64"),
        ("386", None, "386"),
    ],
)
def test_arch_from_oci_parts(architecture: str, variant: str | None, canonical: str) -> None:
    assert arch_from_parts(architecture, variant) == canonical


def test_emulatable_arches_reads_qemu_binfmt_names_in_arches_order() -> None:
    entries = ["status", "register", "qemu-aarch64", "qemu-riscv64", "qemu-arm", "python3.11"]
    assert emulatable_arches(entries) == ["arm64", "arm/v7", "arm/v6", "riscv64"]
    assert emulatable_arches([]) == []


# -- platforms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "arch"),
    [
        ("linux/amd64", "amd64"),
        ("linux/arm64", "arm64"),
        ("linux/arm64/v8", "arm64"),
        ("linux/aarch64", "arm64"),
        ("linux/arm/v7", "arm/v7"),
        ("linux/armv7", "arm/v7"),
        ("linux/armhf", "arm/v7"),
        ("linux/arm/v6", "arm/v6"),
        ("linux/386", "386"),
        ("linux/i686", "386"),
        ("linux/ppc64le", "ppc64le"),
        ("linux/s390x", "s390x"),
        ("linux/riscv64", "riscv64"),
    ],
)
def test_platform_parse_accepts_aliases(text: str, arch: str) -> None:
    platform = Platform.parse(text)
    assert platform == Platform("linux", arch)
    assert str(platform) == f"linux/{arch}"


@pytest.mark.parametrize("text", ["linux/x86_64", "linux/x86-64"])
def test_platform_parse_accepts_uname_aliases_with_punctuation(text: str) -> None:
    assert Platform.parse(text) == Platform("linux", "amd64")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("linux", "os/arch[/variant]"),
        ("amd64", "os/arch[/variant]"),
        ("linux/", "os/arch[/variant]"),
        ("/amd64", "os/arch[/variant]"),
        ("linux//amd64", "os/arch[/variant]"),
        ("linux/arm/v7/x", "os/arch[/variant]"),
        ("Linux/amd64", "os/arch[/variant]"),
        ("linux/amd64\n", "os/arch[/variant]"),
        (" linux/amd64", "os/arch[/variant]"),
        ("linux/ämd64", "os/arch[/variant]"),
        ("windows/amd64", "only linux"),
        ("darwin/arm64", "only linux"),
        ("linux/arm65", "not an architecture"),
        ("linux/arm/v9", "not an architecture"),
    ],
)
def test_platform_parse_rejects_bad_forms(text: str, fragment: str) -> None:
    with pytest.raises(ArchError) as info:
        Platform.parse(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "architecture", "variant", "tag_arch"),
    [
        ("linux/amd64", "amd64", None, "amd64"),
        ("linux/arm64", "arm64", None, "arm64"),
        ("linux/arm/v7", "arm", "v7", "armv7"),
        ("linux/arm/v6", "arm", "v6", "armv6"),
        ("linux/386", "386", None, "386"),
    ],
)
def test_platform_parts(text: str, architecture: str, variant: str | None, tag_arch: str) -> None:
    platform = Platform.parse(text)
    assert platform.architecture == architecture
    assert platform.variant == variant
    assert platform.tag_arch == tag_arch
    check_tag(f"1.0-{platform.tag_arch}")


def test_platforms_are_hashable_and_ordered() -> None:
    platforms = {Platform.parse("linux/aarch64"), Platform.parse("linux/arm64")}
    assert len(platforms) == 1
    assert sorted([Platform.parse("linux/arm64"), Platform.parse("linux/amd64")])[0].arch == "amd64"


# -- tags and digests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["latest", "1.0", "v1.2.3-rc_1", "_private", "A", "0", "a" * 128, "1.0-arm64", "X.Y-Z"]
)
def test_valid_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    [
        "",
        ".hidden",
        "-dash",
        "a" * 129,
        "latest\n",
        "\nlatest",
        "lat est",
        "tåg",
        "\uff11",  # fullwidth digit one
        "a:b",
        "a/b",
        "a@b",
        "a+b",
    ],
)
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(RefError) as info:
        check_tag(tag)
    assert "1-128 characters" in str(info.value)


def test_valid_digest() -> None:
    assert check_digest(DIGEST) == DIGEST


@pytest.mark.parametrize(
    "digest",
    [
        DIGEST.upper(),
        "sha256:" + "A" * 64,
        DIGEST[:-1],
        DIGEST + "0",
        DIGEST + "\n",
        "sha512:" + "0" * 128,
        "0" * 64,
        "sha256:" + "g" * 64,
    ],
)
def test_invalid_digests(digest: str) -> None:
    with pytest.raises(RefError, match="sha256 digest"):
        check_digest(digest)


# -- repositories -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "registry", "path"),
    [
        ("registry.example.com/team/app", "registry.example.com", "team/app"),
        ("localhost/app", "localhost", "app"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app"),
        ("localhost:5000/a/b/c", "localhost:5000", "a/b/c"),
        ("[::1]:5000/app", "[::1]:5000", "app"),
        ("Registry.Example.com/app", "Registry.Example.com", "app"),
        ("reg.io/a__b", "reg.io", "a__b"),
        ("reg.io/a-b--c", "reg.io", "a-b--c"),
        ("reg.io/a.b_c", "reg.io", "a.b_c"),
        ("my-registry.io/x9", "my-registry.io", "x9"),
    ],
)
def test_valid_repositories(name: str, registry: str, path: str) -> None:
    repo = parse_repository(name)
    assert repo == Repository(registry, path)
    assert str(repo) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("team/app", "no registry host"),
        ("app", "no registry host"),
        ("library/busybox", "no registry host"),
        ("registry.example.com", "no registry host"),
        ("registry.example.com/Team/app", "not a valid repository path"),
        ("registry.example.com/APP", "not a valid repository path"),
        ("registry.example.com/", "not a valid repository path"),
        ("registry.example.com/app/", "not a valid repository path"),
        ("registry.example.com/-app", "not a valid repository path"),
        ("registry.example.com/app_", "not a valid repository path"),
        ("registry.example.com/a___b", "not a valid repository path"),
        ("registry.example.com//app", "not a valid repository path"),
        ("registry.example.com/app:1.0", "includes a tag or digest"),
        ("localhost:5000/app:latest", "includes a tag or digest"),
        (f"registry.example.com/app@{DIGEST}", "includes a tag or digest"),
        ("registry.example.com/app\n", "ASCII without spaces"),
        ("registry.example.com/app ", "ASCII without spaces"),
        (" registry.example.com/app", "ASCII without spaces"),
        ("registry.example.com/äpp", "ASCII without spaces"),
        ("régistry.example.com/app", "ASCII without spaces"),
        ("reg_istry.example.com/app", "not a valid registry host"),
        ("-registry.example.com/app", "not a valid registry host"),
        ("registry.example.com:port/app", "not a valid registry host"),
        ("registry.example.com/" + "a" * 255, "longer than 255"),
    ],
)
def test_invalid_repositories(name: str, fragment: str) -> None:
    with pytest.raises(RefError) as info:
        parse_repository(name)
    assert fragment in str(info.value)


def test_missing_registry_message_shows_the_full_form() -> None:
    with pytest.raises(RefError) as info:
        parse_repository("team/app")
    assert "registry.example.com/team/app" in str(info.value)


def test_repository_tag_and_digest_references() -> None:
    repo = parse_repository("127.0.0.1:5000/demo/hello")
    assert repo.tag("1.0") == "127.0.0.1:5000/demo/hello:1.0"
    assert repo.digest(DIGEST) == f"127.0.0.1:5000/demo/hello@{DIGEST}"
    with pytest.raises(RefError):
        repo.tag("1.0\n")
    with pytest.raises(RefError):
        repo.digest("sha256:abc")
