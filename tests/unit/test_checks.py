"""Every tag-overwrite and arch-mismatch check: a case that flags and one that does not, and a
clean two-arch release that goes through every pure check without a single flag."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from matui.engine import flags as checks
from matui.engine.arch import Platform
from matui.engine.build.progress import ProgressParser
from matui.engine.config import HostConfig, ImageConfig
from matui.engine.flags import (
    BuiltImage,
    Change,
    Flag,
    FlagKind,
    PlatformChange,
    Severity,
    arch_tag_flags,
    arch_tag_moved_flags,
    cross_repo_flags,
    duplicate_push_flags,
    emulation_flags,
    host_arch_flags,
    image_config_flags,
    index_diff,
    index_diffs,
    index_shape_flags,
    log_evidence_flags,
    parse_buildx_version,
    postbuild_flags,
    preflight_flags,
    premanifest_flags,
    read_tags,
    release_platform_flags,
    release_tag_flags,
    tag_moved_flags,
)
from matui.engine.plan import BuildJob, BuildPlan, IndexPlan, IndexSource
from matui.engine.probe import HostProbe
from matui.engine.refs import Repository, parse_repository
from matui.engine.registry import (
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    ImageConfigFacts,
    IndexEntry,
    Manifest,
)
from tests.helpers.fake_registry import FakeRegistry

DATA = Path(__file__).resolve().parent.parent / "data" / "progress"

NAME = "registry.example.com/team/app"
REPO = parse_repository(NAME)
AMD = Platform("linux", "amd64")
ARM = Platform("linux", "arm64")
ARMV7 = Platform("linux", "arm/v7")
ARMV6 = Platform("linux", "arm/v6")


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def entry(platform: str, digest: str, *, attestation: bool = False) -> IndexEntry:
    parsed = None if attestation or platform.startswith("unknown") else Platform.parse(platform)
    return IndexEntry(
        digest=digest,
        media_type=MEDIA_OCI_MANIFEST,
        platform=parsed,
        size=500,
        attestation=attestation,
        platform_text=platform,
    )


def index(digest: str, *entries: IndexEntry) -> Manifest:
    return Manifest(digest, MEDIA_OCI_INDEX, b"", tuple(entries), None)


def single(digest: str) -> Manifest:
    return Manifest(digest, MEDIA_DOCKER_MANIFEST, b"", (), dg(9999))


def facts(platform: Platform, variant: str | None = None) -> ImageConfigFacts:
    return ImageConfigFacts(
        platform.os, platform.architecture, variant or platform.variant, platform
    )


def image_config(
    platforms: Sequence[Platform] = (AMD, ARM), retired: Sequence[Platform] = ()
) -> ImageConfig:
    return ImageConfig(
        NAME, ("1.0",), Path("."), tuple(platforms), retired_platforms=tuple(retired)
    )


def job(platform: Platform, host: str, *, emulated: bool = False, tag: str = "") -> BuildJob:
    arch_tag = tag or f"1.0-{platform.tag_arch}"
    return BuildJob(platform, host, emulated, arch_tag, f"{NAME}:{arch_tag}")


def build_plan(*jobs: BuildJob, tags: tuple[str, ...] = ("1.0",)) -> BuildPlan:
    platforms = tuple(j.platform for j in jobs)
    return BuildPlan(image_config(platforms), tags, tuple(jobs))


CLEAN_PLAN = build_plan(job(AMD, "amd64-1"), job(ARM, "arm64-1"))


def index_plan(
    sources: dict[Platform, str], tags: tuple[str, ...] = ("1.0",), repo: Repository = REPO
) -> IndexPlan:
    return IndexPlan(
        REPO,
        tags,
        tuple(
            IndexSource(p, d, repo.digest(d))
            for p, d in sorted(sources.items(), key=lambda i: str(i[0]))
        ),
    )


HOSTS = (
    HostConfig("amd64-1", "amd64", "a.example.com"),
    HostConfig("arm64-1", "arm64", "b.example.com"),
    HostConfig("emu-1", "amd64", "c.example.com", allow_emulation=True),
)


def probe(name: str, declared: str, native: str, docker: str | None = None) -> HostProbe:
    return HostProbe(
        name,
        declared,
        reachable=True,
        uname={"amd64": "x86_64", "arm64": "aarch64"}[native],
        native_arch=native,
        docker_arch=docker or native,
        buildx_version="0.13.1+ds1",
    )


def only(flags: list[Flag]) -> Flag:
    assert len(flags) == 1, flags
    return flags[0]


def check_flag(flag: Flag, kind: FlagKind, severity: Severity, subject: str) -> None:
    assert (flag.kind, flag.severity, flag.subject) == (kind, severity, subject)
    assert "\n" not in flag.message
    assert ";" in flag.message or "—" in flag.message  # what, then the fix


# ---- index_diff ----------------------------------------------------------------------------


def test_index_diff_platform_by_platform() -> None:
    current = index(
        dg(100),
        entry("linux/amd64", dg(1)),
        entry("linux/arm/v7", dg(2)),
        entry("linux/s390x", dg(3)),
        entry("unknown/unknown", dg(4), attestation=True),
    )
    plan = index_plan({AMD: dg(1), ARMV7: dg(20), ARM: dg(30)})
    assert index_diff(current, plan) == [
        PlatformChange("linux/amd64", dg(1), dg(1), Change.SAME),
        PlatformChange("linux/arm/v7", dg(2), dg(20), Change.CHANGED),
        PlatformChange("linux/arm64", None, dg(30), Change.ADDED),
        PlatformChange("linux/s390x", dg(3), None, Change.DROPPED),
    ]
    assert index_diff(None, plan)[0].to_json() == {
        "platform": "linux/amd64",
        "before": None,
        "after": dg(1),
        "change": "added",
    }


def test_index_diff_over_a_single_arch_image() -> None:
    plan = index_plan({AMD: dg(1), ARM: dg(2)})
    assert index_diff(single(dg(7)), plan, current_platform="linux/amd64") == [
        PlatformChange("linux/amd64", dg(7), dg(1), Change.CHANGED),
        PlatformChange("linux/arm64", None, dg(2), Change.ADDED),
    ]
    assert index_diff(single(dg(7)), plan)[-1] == PlatformChange(
        "unknown", dg(7), None, Change.DROPPED
    )


# ---- 1. release tag already holds an index ------------------------------------------------


TWO_ARCH = index(dg(100), entry("linux/amd64", dg(1)), entry("linux/arm64", dg(2)))


def test_release_tag_dropping_a_platform_is_an_error() -> None:
    plan = index_plan({AMD: dg(11)})
    flag = only(release_tag_flags("1.0", TWO_ARCH, plan))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.ERROR, "1.0")
    assert "linux/arm64" in flag.message and "retired_platforms" in flag.message
    assert flag.evidence["dropped"] == ["linux/arm64"]
    assert flag.evidence["current_digest"] == dg(100)
    assert flag.evidence["current"] == [
        {"platform": "linux/amd64", "digest": dg(1)},
        {"platform": "linux/arm64", "digest": dg(2)},
    ]
    assert {c["platform"]: c["change"] for c in flag.evidence["diff"]} == {
        "linux/amd64": "changed",
        "linux/arm64": "dropped",
    }


def test_release_tag_dropping_a_retired_platform_is_info() -> None:
    plan = index_plan({AMD: dg(1)})
    flag = only(release_tag_flags("1.0", TWO_ARCH, plan, retired=[ARM]))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.INFO, "1.0")
    assert "retires linux/arm64" in flag.message


def test_release_tag_added_and_changed_are_info_with_the_diff() -> None:
    plan = index_plan({AMD: dg(1), ARM: dg(22), ARMV7: dg(33)})
    flag = only(release_tag_flags("1.0", TWO_ARCH, plan))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.INFO, "1.0")
    assert "adds linux/arm/v7" in flag.message and "changes linux/arm64" in flag.message
    diff = {c["platform"]: (c["before"], c["after"], c["change"]) for c in flag.evidence["diff"]}
    assert diff == {
        "linux/amd64": (dg(1), dg(1), "same"),
        "linux/arm/v7": (None, dg(33), "added"),
        "linux/arm64": (dg(2), dg(22), "changed"),
    }


def test_release_tag_absent_or_identical_gives_no_flag() -> None:
    plan = index_plan({AMD: dg(1), ARM: dg(2)})
    assert release_tag_flags("1.0", None, plan) == []
    assert release_tag_flags("1.0", TWO_ARCH, plan) == []
    # An attestation in the current index is not a platform the release drops.
    with_attestation = index(
        dg(101), *TWO_ARCH.entries, entry("unknown/unknown", dg(5), attestation=True)
    )
    assert release_tag_flags("1.0", with_attestation, plan) == []


def test_release_tag_over_a_single_arch_image() -> None:
    plan = index_plan({AMD: dg(1), ARM: dg(2)})
    flag = only(release_tag_flags("1.0", single(dg(7)), plan, current_platform="linux/amd64"))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.INFO, "1.0")
    assert "single-arch image" in flag.message
    flag = only(release_tag_flags("1.0", single(dg(7)), plan, current_platform="linux/s390x"))
    assert flag.severity is Severity.ERROR and flag.evidence["dropped"] == ["linux/s390x"]


def test_release_platforms_before_the_build() -> None:
    ref = f"{NAME}:1.0"
    flag = only(release_platform_flags("1.0", ref, TWO_ARCH, [AMD]))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.ERROR, "1.0")
    assert flag.evidence["dropped"] == ["linux/arm64"]
    retired = only(release_platform_flags("1.0", ref, TWO_ARCH, [AMD], [ARM]))
    assert retired.severity is Severity.INFO
    assert release_platform_flags("1.0", ref, TWO_ARCH, [AMD, ARM]) == []
    assert release_platform_flags("1.0", ref, TWO_ARCH, [AMD, ARM, ARMV7]) == []
    assert release_platform_flags("1.0", ref, None, [AMD]) == []


# ---- 2. a per-arch push over an index -----------------------------------------------------


def test_arch_tag_holding_an_index_is_an_error() -> None:
    flag = only(arch_tag_flags(job(ARM, "arm64-1"), TWO_ARCH))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.ERROR, "1.0-arm64")
    assert flag.evidence["current_digest"] == dg(100)
    assert flag.evidence["target"] == "linux/arm64"
    assert "arch_tag" in flag.message


def test_arch_tag_absent_or_single_gives_no_flag_before_the_build() -> None:
    assert arch_tag_flags(job(ARM, "arm64-1"), None) == []
    assert arch_tag_flags(job(ARM, "arm64-1"), single(dg(3))) == []


# ---- 3. a per-arch tag with another digest ------------------------------------------------


def test_arch_tag_with_another_digest_is_info() -> None:
    ref = f"{NAME}:1.0-arm64"
    flag = only(arch_tag_moved_flags("1.0-arm64", ref, dg(2), dg(2), before=dg(1)))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.INFO, "1.0-arm64")
    assert (flag.evidence["before"], flag.evidence["built"]) == (dg(1), dg(2))
    moved = only(arch_tag_moved_flags("1.0-arm64", ref, dg(2), dg(3)))
    check_flag(moved, FlagKind.TAG_OVERWRITE, Severity.INFO, "1.0-arm64")
    assert (moved.evidence["built"], moved.evidence["now"]) == (dg(2), dg(3))


def test_arch_tag_holding_the_build_gives_no_flag() -> None:
    ref = f"{NAME}:1.0-arm64"
    assert arch_tag_moved_flags("1.0-arm64", ref, dg(2), dg(2)) == []
    assert arch_tag_moved_flags("1.0-arm64", ref, dg(2), dg(2), before=dg(2)) == []


# ---- 4. two pushes to one tag -------------------------------------------------------------


def test_two_jobs_on_one_tag_is_an_error() -> None:
    plan = build_plan(job(AMD, "amd64-1", tag="1.0-x"), job(ARM, "arm64-1", tag="1.0-x"))
    flag = only(duplicate_push_flags(plan))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.ERROR, "1.0-x")
    assert flag.evidence["pushed_by"] == ["the linux/amd64 build", "the linux/arm64 build"]


def test_a_job_on_the_release_tag_is_an_error() -> None:
    plan = build_plan(
        job(AMD, "amd64-1", tag="latest"), job(ARM, "arm64-1"), tags=("1.0", "latest")
    )
    flag = only(duplicate_push_flags(plan))
    assert flag.subject == "latest" and "the release index" in flag.evidence["pushed_by"]


def test_distinct_tags_give_no_flag() -> None:
    assert duplicate_push_flags(CLEAN_PLAN) == []
    repeated = build_plan(job(AMD, "amd64-1"), job(ARM, "arm64-1"), tags=("1.0", "1.0"))
    assert duplicate_push_flags(repeated) == []


# ---- 5. the release tag moved between plan and push ---------------------------------------


def test_tag_moved_since_confirmation_is_an_error() -> None:
    flag = only(tag_moved_flags("1.0", dg(1), dg(2), ref=f"{NAME}:1.0"))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.ERROR, "1.0")
    assert (flag.evidence["confirmed"], flag.evidence["now"]) == (dg(1), dg(2))
    appeared = only(tag_moved_flags("1.0", None, dg(2)))
    assert appeared.evidence["confirmed"] is None and "absent" in appeared.message
    assert only(tag_moved_flags("1.0", dg(1), None)).evidence["now"] is None


def test_tag_unchanged_gives_no_flag() -> None:
    assert tag_moved_flags("1.0", dg(1), dg(1)) == []
    assert tag_moved_flags("1.0", None, None) == []


# ---- 6. cross-repository sources with an old buildx ---------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("0.13.1+ds1", (0, 13, 1)),
        ("v0.22.0", (0, 22, 0)),
        ("0.13.1+ds1-3", (0, 13, 1)),
        ("github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3", (0, 13, 1)),
        ("github.com/docker/buildx v0.22.0 18ccba0", (0, 22, 0)),
        ("0.22.0-rc1", (0, 22, 0)),
        ("v0.9", (0, 9, 0)),
        ("", None),
        (None, None),
        ("dev", None),
    ],
)
def test_parse_buildx_version(text: str | None, version: tuple[int, int, int] | None) -> None:
    assert parse_buildx_version(text) == version


OTHER = parse_repository("registry.example.com/team/staging")
FOREIGN = index_plan({AMD: dg(1), ARM: dg(2)}, repo=OTHER).sources


def test_cross_repo_sources_with_old_buildx_is_an_error() -> None:
    flag = only(cross_repo_flags(FOREIGN, REPO, "0.13.1+ds1", where="amd64-1"))
    check_flag(flag, FlagKind.TAG_OVERWRITE, Severity.ERROR, NAME)
    assert "0.22" in flag.message and "same repository" in flag.message
    assert flag.evidence["foreign_sources"] == [s.ref for s in FOREIGN]
    assert flag.evidence["parsed_version"] == [0, 13, 1]
    unknown = only(cross_repo_flags(FOREIGN, REPO, None))
    assert unknown.severity is Severity.ERROR and "unknown version" in unknown.message


def test_same_repo_or_new_buildx_gives_no_flag() -> None:
    assert cross_repo_flags(FOREIGN, REPO, "v0.22.0") == []
    assert cross_repo_flags(FOREIGN, REPO, "0.23.0") == []
    same = index_plan({AMD: dg(1), ARM: dg(2)}).sources
    assert cross_repo_flags(same, REPO, "0.13.1+ds1-3") == []
    assert cross_repo_flags(same, REPO, None) == []


# ---- 7. a host that is not its declared arch ----------------------------------------------


def test_host_arch_differs_from_declared_is_an_error() -> None:
    flag = only(host_arch_flags([probe("arm64-1", "arm64", "amd64")]))
    check_flag(flag, FlagKind.ARCH_MISMATCH, Severity.ERROR, "arm64-1")
    assert flag.evidence["native"] == "amd64" and flag.evidence["declared"] == "arm64"


def test_host_arch_matching_gives_no_flag() -> None:
    assert host_arch_flags([probe("amd64-1", "amd64", "amd64")]) == []


# ---- 8. QEMU ------------------------------------------------------------------------------


def test_emulation_on_a_host_that_does_not_allow_it_is_an_error() -> None:
    plan = build_plan(job(AMD, "amd64-1"), job(ARM, "amd64-1", emulated=True))
    flag = only(emulation_flags(plan, HOSTS))
    check_flag(flag, FlagKind.ARCH_MISMATCH, Severity.ERROR, "arm64")
    assert "allow_emulation" in flag.message
    # The probe is the authority: a job planned as native on a host that is really amd64.
    lying = build_plan(job(AMD, "amd64-1"), job(ARM, "arm64-1"))
    probes = [probe("amd64-1", "amd64", "amd64"), probe("arm64-1", "arm64", "amd64")]
    flag = only(emulation_flags(lying, HOSTS, probes))
    assert flag.severity is Severity.ERROR and flag.evidence["native"] == "amd64"
    # A host missing from the config allows nothing.
    ghost = build_plan(job(ARM, "ghost", emulated=True))
    assert only(emulation_flags(ghost, HOSTS)).severity is Severity.ERROR


def test_emulation_on_an_allowing_host_is_a_warning() -> None:
    plan = build_plan(job(AMD, "amd64-1"), job(ARM, "emu-1", emulated=True))
    flag = only(emulation_flags(plan, HOSTS, [probe("emu-1", "amd64", "amd64")]))
    check_flag(flag, FlagKind.ARCH_MISMATCH, Severity.WARNING, "arm64")
    assert flag.evidence == {
        "host": "emu-1",
        "native": "amd64",
        "declared": "amd64",
        "target": "linux/arm64",
        "allow_emulation": True,
    }


def test_native_jobs_give_no_flag() -> None:
    probes = [probe("amd64-1", "amd64", "amd64"), probe("arm64-1", "arm64", "arm64")]
    assert emulation_flags(CLEAN_PLAN, HOSTS, probes) == []
    assert emulation_flags(CLEAN_PLAN, HOSTS) == []


# ---- 9. config arch of a built image ------------------------------------------------------


def test_config_arch_not_the_target_is_an_error() -> None:
    flag = only(image_config_flags(ARM, facts(AMD), digest=dg(5)))
    check_flag(flag, FlagKind.ARCH_MISMATCH, Severity.ERROR, "arm64")
    assert "linux/amd64" in flag.message and "index" in flag.message
    assert flag.evidence["architecture"] == "amd64" and flag.evidence["digest"] == dg(5)
    armv6 = ImageConfigFacts("linux", "arm", "v6", ARMV6)
    assert only(image_config_flags(ARMV7, armv6)).evidence["variant"] == "v6"
    windows = ImageConfigFacts("windows", "amd64", None, Platform("windows", "amd64"))
    assert only(image_config_flags(AMD, windows)).severity is Severity.ERROR
    odd = ImageConfigFacts("linux", "mips64le", None, None)
    assert only(image_config_flags(AMD, odd)).evidence["architecture"] == "mips64le"


def test_config_arch_matching_gives_no_flag() -> None:
    assert image_config_flags(AMD, facts(AMD)) == []
    assert image_config_flags(ARM, facts(ARM, variant="v8")) == []
    assert image_config_flags(ARMV7, facts(ARMV7)) == []


# ---- 10. log evidence ---------------------------------------------------------------------


def evidence_of(name: str) -> list[str]:
    parser = ProgressParser()
    for line in (DATA / name).read_bytes().decode("utf-8", "replace").split("\n"):
        parser.feed(line.rstrip("\r"))
    return parser.arch_evidence


@pytest.mark.parametrize(
    ("log", "needle"),
    [
        ("exec_format_error.log", "exec format error"),
        ("synthetic_modern_fail.log", "InvalidBaseImagePlatform"),
    ],
)
def test_log_evidence_is_an_error(log: str, needle: str) -> None:
    lines = evidence_of(log)
    flag = only(log_evidence_flags("arm64", lines))
    check_flag(flag, FlagKind.ARCH_MISMATCH, Severity.ERROR, "arm64")
    assert needle in flag.message
    assert flag.evidence["lines"] == lines


def test_clean_logs_give_no_flag() -> None:
    for log in ("ok.log", "arm64_qemu.log", "push.log"):
        assert log_evidence_flags("arm64", evidence_of(log)) == []


# ---- 11. index shape ----------------------------------------------------------------------


def test_index_missing_a_planned_platform_is_an_error() -> None:
    flag = only(index_shape_flags(index_plan({AMD: dg(1)}), [AMD, ARM]))
    check_flag(flag, FlagKind.ARCH_MISMATCH, Severity.ERROR, NAME)
    assert flag.evidence["missing"] == ["linux/arm64"]
    served = index(dg(100), entry("linux/amd64", dg(1)))
    flag = only(index_shape_flags(served, [AMD, ARM], subject="1.0"))
    assert flag.subject == "1.0" and flag.evidence["missing"] == ["linux/arm64"]


def test_index_listing_a_platform_twice_is_an_error() -> None:
    plan = IndexPlan(
        REPO,
        ("1.0",),
        (
            IndexSource(AMD, dg(1), REPO.digest(dg(1))),
            IndexSource(AMD, dg(3), REPO.digest(dg(3))),
            IndexSource(ARM, dg(2), REPO.digest(dg(2))),
        ),
    )
    assert only(index_shape_flags(plan, [AMD, ARM])).evidence["duplicates"] == ["linux/amd64"]
    served = index(dg(100), entry("linux/amd64", dg(1)), entry("linux/amd64", dg(3)))
    flags = index_shape_flags(served, [AMD, ARM])
    assert [sorted(f.evidence.keys() - {"entries", "planned"}) for f in flags] == [
        ["missing"],
        ["duplicates"],
    ]


def test_index_counting_an_attestation_as_a_platform_is_an_error() -> None:
    unknown = Platform("unknown", "unknown")
    plan = index_plan({AMD: dg(1), ARM: dg(2), unknown: dg(4)})
    flag = only(index_shape_flags(plan, [AMD, ARM]))
    assert flag.evidence["attestations"] == [{"platform": "unknown/unknown", "digest": dg(4)}]
    served = index(
        dg(100),
        entry("linux/amd64", dg(1)),
        entry("linux/arm64", dg(2)),
        entry("unknown/unknown", dg(4)),  # not marked as an attestation: counted
    )
    assert only(index_shape_flags(served, [AMD, ARM])).evidence["attestations"]


def test_index_serving_an_unplanned_platform_or_no_index_is_an_error() -> None:
    served = index(dg(100), entry("linux/amd64", dg(1)), entry("linux/arm64", dg(2)))
    assert only(index_shape_flags(served, [AMD])).evidence["unplanned"] == ["linux/arm64"]
    flag = only(index_shape_flags(single(dg(1)), [AMD], subject="1.0"))
    check_flag(flag, FlagKind.ARCH_MISMATCH, Severity.ERROR, "1.0")


def test_well_formed_index_gives_no_flag() -> None:
    assert index_shape_flags(index_plan({AMD: dg(1), ARM: dg(2)}), [AMD, ARM]) == []
    served = index(
        dg(100),
        entry("linux/amd64", dg(1)),
        entry("linux/arm64", dg(2)),
        entry("unknown/unknown", dg(4), attestation=True),
        entry("unknown/unknown", dg(5), attestation=True),
    )
    assert index_shape_flags(served, [AMD, ARM]) == []


# ---- a clean two-arch release -------------------------------------------------------------


def test_clean_two_arch_release_yields_no_flag_at_all() -> None:
    probes = [probe("amd64-1", "amd64", "amd64"), probe("arm64-1", "arm64", "arm64")]
    plan = CLEAN_PLAN
    built = {AMD: dg(1), ARM: dg(2)}
    iplan = index_plan(built)
    flags: list[Flag] = []
    flags += host_arch_flags(probes)
    flags += emulation_flags(plan, HOSTS, probes)
    flags += duplicate_push_flags(plan)
    for j in plan.jobs:
        flags += arch_tag_flags(j, None)
        flags += image_config_flags(j.platform, facts(j.platform), digest=built[j.platform])
        flags += log_evidence_flags(j.arch, evidence_of("ok.log"))
        flags += arch_tag_moved_flags(j.arch_tag, j.ref, built[j.platform], built[j.platform])
    for tag in plan.tags:
        flags += release_platform_flags(tag, REPO.tag(tag), None, [j.platform for j in plan.jobs])
        flags += release_tag_flags(tag, None, iplan)
        flags += tag_moved_flags(tag, None, None)
    flags += cross_repo_flags(iplan.sources, iplan.repository, "0.13.1+ds1")
    flags += index_shape_flags(iplan, [AMD, ARM])
    pushed = index(dg(100), entry("linux/amd64", dg(1)), entry("linux/arm64", dg(2)))
    flags += index_shape_flags(pushed, [AMD, ARM])
    assert flags == []
    assert [c.change for c in index_diff(None, iplan)] == [Change.ADDED, Change.ADDED]


# ---- gatherers over a fake registry -------------------------------------------------------


def pushed_builds(registry: FakeRegistry, *, arm_config: Platform = ARM) -> None:
    registry.put(REPO, single(dg(1)), "1.0-amd64")
    registry.put(REPO, single(dg(2)), "1.0-arm64")
    registry.configs[dg(1)] = facts(AMD)
    registry.configs[dg(2)] = facts(arm_config)


async def test_gatherers_on_a_clean_release_give_no_flag() -> None:
    registry = FakeRegistry()
    probes = [probe("amd64-1", "amd64", "amd64"), probe("arm64-1", "arm64", "arm64")]
    state = await read_tags(registry, REPO, ["1.0-amd64", "1.0-arm64", "1.0", "1.0"])
    assert state == {"1.0-amd64": None, "1.0-arm64": None, "1.0": None}
    assert await preflight_flags(CLEAN_PLAN, registry, hosts=HOSTS, probes=probes) == []
    pushed_builds(registry)
    built = [BuiltImage(AMD, dg(1), "1.0-amd64"), BuiltImage(ARM, dg(2), "1.0-arm64")]
    assert await postbuild_flags(NAME, built, registry) == []
    iplan = index_plan({AMD: dg(1), ARM: dg(2)})
    confirmed: dict[str, str | None] = {"1.0": None}
    flags = await premanifest_flags(
        iplan, registry, confirmed, planned=[AMD, ARM], buildx_version="0.13.1+ds1"
    )
    assert flags == []
    diffs = await index_diffs(iplan, registry)
    assert [c.change for c in diffs["1.0"]] == [Change.ADDED, Change.ADDED]


async def test_preflight_flags_an_index_on_an_arch_tag_and_a_dropped_platform() -> None:
    registry = FakeRegistry()
    registry.put(REPO, TWO_ARCH, "1.0-arm64")
    registry.put(
        REPO, index(dg(200), entry("linux/amd64", dg(1)), entry("linux/s390x", dg(3))), "1.0"
    )
    flags = await preflight_flags(CLEAN_PLAN, registry)
    assert [(f.subject, f.severity) for f in flags] == [
        ("1.0-arm64", Severity.ERROR),
        ("1.0", Severity.ERROR),
    ]
    assert flags[1].evidence["dropped"] == ["linux/s390x"]


async def test_preflight_reads_a_single_arch_release_tag_platform() -> None:
    registry = FakeRegistry()
    registry.put(REPO, single(dg(7)), "1.0")
    registry.configs[dg(7)] = ImageConfigFacts("linux", "s390x", None, Platform("linux", "s390x"))
    flag = only(await preflight_flags(CLEAN_PLAN, registry))
    assert flag.evidence["dropped"] == ["linux/s390x"]
    registry.configs[dg(7)] = facts(AMD)
    assert await preflight_flags(CLEAN_PLAN, registry) == []


async def test_preflight_with_hosts_flags_emulation() -> None:
    plan = build_plan(job(AMD, "amd64-1"), job(ARM, "amd64-1", emulated=True))
    flags = await preflight_flags(plan, FakeRegistry(), hosts=HOSTS)
    assert [(f.kind, f.severity) for f in flags] == [(FlagKind.ARCH_MISMATCH, Severity.ERROR)]


async def test_postbuild_flags_config_arch_evidence_and_moved_tags() -> None:
    registry = FakeRegistry()
    pushed_builds(registry, arm_config=AMD)
    registry.put(REPO, single(dg(9)), "1.0-amd64")  # someone pushed over the amd64 tag
    registry.configs[dg(9)] = facts(AMD)
    built = [
        BuiltImage(AMD, dg(1), "1.0-amd64"),
        BuiltImage(ARM, dg(2), "1.0-arm64", before=dg(8), evidence=("exec x: exec format error",)),
    ]
    flags = await postbuild_flags(REPO, built, registry)
    got = [(f.kind, f.severity, f.subject) for f in flags]
    assert got == [
        (FlagKind.TAG_OVERWRITE, Severity.INFO, "1.0-amd64"),
        (FlagKind.ARCH_MISMATCH, Severity.ERROR, "arm64"),
        (FlagKind.ARCH_MISMATCH, Severity.ERROR, "arm64"),
        (FlagKind.TAG_OVERWRITE, Severity.INFO, "1.0-arm64"),
    ]
    assert flags[0].evidence["now"] == dg(9)
    assert flags[3].evidence["before"] == dg(8)


async def test_postbuild_checks_every_child_of_a_built_index() -> None:
    registry = FakeRegistry()
    built_index = index(
        dg(50), entry("linux/arm64", dg(2)), entry("unknown/unknown", dg(4), attestation=True)
    )
    registry.put(REPO, built_index, "1.0-arm64")
    registry.put(REPO, single(dg(2)))
    registry.configs[dg(2)] = facts(AMD)
    flag = only(await postbuild_flags(REPO, [BuiltImage(ARM, dg(50), "1.0-arm64")], registry))
    assert flag.evidence["digest"] == dg(2)


async def test_premanifest_flags_a_moved_tag_a_drop_and_a_foreign_source() -> None:
    registry = FakeRegistry()
    pushed_builds(registry)
    served = index(dg(100), entry("linux/amd64", dg(1)), entry("linux/arm64", dg(3)))
    registry.put(REPO, served, "1.0")
    registry.put(OTHER, single(dg(2)))
    iplan = IndexPlan(
        REPO,
        ("1.0",),
        (IndexSource(AMD, dg(1), REPO.digest(dg(1))), IndexSource(ARM, dg(2), OTHER.digest(dg(2)))),
    )
    flags = await premanifest_flags(
        iplan, registry, {"1.0": dg(99)}, planned=[AMD, ARM], buildx_version="0.13.1+ds1"
    )
    assert [(f.severity, f.subject) for f in flags] == [
        (Severity.ERROR, "1.0"),  # moved since confirmed
        (Severity.INFO, "1.0"),  # arm64 changes
        (Severity.ERROR, NAME),  # cross-repository source with buildx 0.13.1
    ]
    assert flags[0].evidence == {"ref": f"{NAME}:1.0", "confirmed": dg(99), "now": dg(100)}


async def test_premanifest_flags_a_wrong_config_and_a_missing_platform() -> None:
    registry = FakeRegistry()
    pushed_builds(registry, arm_config=AMD)
    iplan = index_plan({ARM: dg(2)})
    flags = await premanifest_flags(iplan, registry, planned=[AMD, ARM])
    assert [(f.kind, f.severity) for f in flags] == [
        (FlagKind.ARCH_MISMATCH, Severity.ERROR),  # misses linux/amd64
        (FlagKind.ARCH_MISMATCH, Severity.ERROR),  # arm64 config says amd64
    ]
    assert flags[0].evidence["missing"] == ["linux/amd64"]
    assert await premanifest_flags(iplan, registry, check_configs=False) == []


def test_module_reexports_the_host_check() -> None:
    assert checks.host_arch_flags is host_arch_flags


# ---- jobs pushed by digest (a builder with its own BuildKit) -------------------------------

#: arm64-1 builds through a kubernetes builder: its job pushes by digest, no per-arch tag.
KUBE_HOSTS = (
    HostConfig("amd64-1", "amd64", "a.example.com"),
    HostConfig("arm64-1", "arm64", "b.example.com", builder="kube"),
)


def kube_probes(driver: str = "kubernetes") -> list[HostProbe]:
    return [
        probe("amd64-1", "amd64", "amd64"),
        replace(
            probe("arm64-1", "arm64", "arm64"),
            builder="kube",
            builder_driver=driver,
            builder_nodes=("builder-arm64=arm64",),
        ),
    ]


def test_by_digest_jobs_follow_the_builders_driver() -> None:
    assert checks.by_digest_jobs(CLEAN_PLAN, KUBE_HOSTS, kube_probes()) == {"arm64"}
    # A docker-driver builder (a docker context) pushes its per-arch tag.
    assert checks.by_digest_jobs(CLEAN_PLAN, KUBE_HOSTS, kube_probes("docker")) == set()
    assert checks.by_digest_jobs(CLEAN_PLAN, HOSTS, []) == set()


def test_duplicate_push_skips_a_job_pushed_by_digest() -> None:
    """arch_tag = "{tag}" would make the arm64 build push the release tag: an ERROR, unless
    that job pushes by digest and so pushes no tag at all."""
    plan = build_plan(job(AMD, "amd64-1"), job(ARM, "arm64-1", tag="1.0"))
    assert [f.subject for f in duplicate_push_flags(plan)] == ["1.0"]
    assert duplicate_push_flags(plan, {"arm64"}) == []


async def test_preflight_does_not_ask_about_per_arch_tags_a_by_digest_job_never_pushes() -> None:
    registry = FakeRegistry()
    registry.put(REPO, TWO_ARCH, "1.0-arm64")  # an index at the arm64 tag: ERROR for a tag push
    probes = kube_probes()
    flags = await preflight_flags(CLEAN_PLAN, registry, hosts=KUBE_HOSTS, probes=probes)
    assert flags == []
    # The same host through a docker-driver builder pushes 1.0-arm64: the index there is hit.
    flags = await preflight_flags(
        CLEAN_PLAN, registry, hosts=KUBE_HOSTS, probes=kube_probes("docker")
    )
    assert [(f.subject, f.severity) for f in flags] == [("1.0-arm64", Severity.ERROR)]
    # Not even read: the state asked for holds no per-arch tag of a by-digest job.
    asked: list[str] = []

    async def head(repo: Repository, reference: str) -> str | None:
        asked.append(reference)
        return None

    async def get(repo: Repository, reference: str) -> Manifest | None:
        asked.append(reference)
        return None

    registry.head_digest = head  # type: ignore[method-assign]
    registry.get_manifest = get  # type: ignore[method-assign]
    await preflight_flags(CLEAN_PLAN, registry, hosts=KUBE_HOSTS, probes=probes)
    assert "1.0-arm64" not in asked and "1.0-amd64" in asked


async def test_postbuild_skips_the_per_arch_tag_of_a_by_digest_job_but_checks_its_image() -> None:
    registry = FakeRegistry()
    pushed_builds(registry, arm_config=AMD)
    registry.put(REPO, single(dg(9)), "1.0-arm64")  # someone else's image at the arm64 tag
    registry.configs[dg(9)] = facts(ARM)
    built = [BuiltImage(ARM, dg(2), "1.0-arm64", before=dg(8), by_digest=True)]
    flags = await postbuild_flags(REPO, built, registry)
    # The config arch still counts (an amd64 image built for arm64); the tag is not ours.
    assert [(f.kind, f.subject) for f in flags] == [(FlagKind.ARCH_MISMATCH, "arm64")]
