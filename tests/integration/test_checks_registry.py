"""The registry-state checks against REAL registry states on the rig.

Images are built FROM the rig's two-arch busybox with the rig's dockerd + buildx 0.13.1 and the
runner's own build command line (docker driver, LABEL-only images so that nothing runs under QEMU)
and pushed to the rig's registry under ``checks-test/``; indexes are made with
``docker buildx imagetools create``; a mislabelled image is assembled through the registry API.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from matui.engine import shell
from matui.engine.arch import Platform
from matui.engine.config import ImageConfig
from matui.engine.flags import (
    BuiltImage,
    Change,
    Flag,
    cross_repo_flags,
    index_diffs,
    index_shape_flags,
    parse_buildx_version,
    postbuild_flags,
    preflight_flags,
    premanifest_flags,
    read_tags,
)
from matui.engine.plan import BuildJob, BuildPlan, IndexPlan, IndexSource
from matui.engine.refs import Repository, parse_repository
from matui.engine.registry import RegistryClient, sha256_digest
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig

AMD = Platform("linux", "amd64")
ARM = Platform("linux", "arm64")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


# ---- helpers ------------------------------------------------------------------------------


def docker(rig: Rig, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "DOCKER_HOST": rig.docker_host, **(env or {})},
    )
    assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result.stdout


def new_repo(rig: Rig, name: str) -> Repository:
    return parse_repository(f"{rig.registry}/checks-test/{name}-{secrets.token_hex(4)}")


def build_push(
    rig: Rig, tmp_path: Path, repo: Repository, tag: str, platform: Platform, label: str
) -> str:
    """Build a LABEL-only image FROM the rig's base for ``platform``, push it to ``repo:tag``;
    return the registry's manifest digest (buildx metadata ``containerimage.digest``).

    The command line is the runner's own (:func:`matui.engine.shell.buildx_argv`), run in a job
    directory laid out as on a builder host (``context/``, ``metadata.json``); the build args'
    values in buildx's environment, as job.sh puts them there."""
    job = tmp_path / f"job-{secrets.token_hex(4)}"
    (job / "context").mkdir(parents=True)
    (job / "context" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    argv = shell.buildx_argv(
        platform=str(platform),
        ref=repo.tag(tag),
        dockerfile="Dockerfile",
        build_args={"BASE": rig.base_image},
        labels={"matui.checks": label},
        target=None,
    )
    assert argv[0] == "docker"
    docker(rig, *argv[1:], cwd=job, env={"BASE": rig.base_image})
    digest = json.loads((job / "metadata.json").read_text())["containerimage.digest"]
    assert isinstance(digest, str)
    return digest


def imagetools_create(rig: Rig, target: str, *sources: str) -> None:
    docker(rig, "buildx", "imagetools", "create", "--tag", target, *sorted(sources))


def _put(url: str, data: bytes, content_type: str) -> None:
    req = urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": content_type}
    )
    with _DIRECT.open(req, timeout=30) as resp:
        assert resp.status == 201


def _get(url: str, accept: str = "*/*") -> bytes:
    req = urllib.request.Request(url, headers={"Accept": accept})
    with _DIRECT.open(req, timeout=30) as resp:
        body: bytes = resp.read()
    return body


def push_blob(rig: Rig, repo: Repository, data: bytes) -> str:
    digest = sha256_digest(data)
    start = urllib.request.Request(
        f"http://{rig.registry}/v2/{repo.path}/blobs/uploads/", method="POST"
    )
    with _DIRECT.open(start, timeout=30) as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = f"http://{rig.registry}{location}"
    sep = "&" if "?" in location else "?"
    _put(f"{location}{sep}digest={digest}", data, "application/octet-stream")
    return digest


def relabel(rig: Rig, repo: Repository, digest: str, tag: str, architecture: str) -> str:
    """Copy image ``digest`` under ``tag`` with its config's architecture rewritten (the
    layers stay as they are): an image whose config arch is not what it was built for."""
    base = f"http://{rig.registry}/v2/{repo.path}"
    manifest: dict[str, Any] = json.loads(
        _get(f"{base}/manifests/{digest}", "application/vnd.docker.distribution.manifest.v2+json")
    )
    config: dict[str, Any] = json.loads(_get(f"{base}/blobs/{manifest['config']['digest']}"))
    config["architecture"] = architecture
    raw_config = json.dumps(config).encode()
    manifest["config"]["digest"] = push_blob(rig, repo, raw_config)
    manifest["config"]["size"] = len(raw_config)
    raw = json.dumps(manifest).encode()
    _put(f"{base}/manifests/{tag}", raw, manifest["mediaType"])
    return sha256_digest(raw)


def build_plan(
    repo: Repository, platforms: list[Platform], tags: tuple[str, ...] = ("1.0",)
) -> BuildPlan:
    image = ImageConfig(str(repo), tags, Path("."), tuple(platforms))
    jobs = tuple(
        BuildJob(
            p,
            f"{p.tag_arch}-1",
            False,
            image.arch_tag_for(tags[0], p),
            repo.tag(image.arch_tag_for(tags[0], p)),
        )
        for p in platforms
    )
    return BuildPlan(image, tags, jobs)


def index_plan(
    repo: Repository, built: dict[Platform, str], tags: tuple[str, ...] = ("1.0",)
) -> IndexPlan:
    sources = tuple(
        IndexSource(p, d, repo.digest(d)) for p, d in sorted(built.items(), key=lambda i: str(i[0]))
    )
    return IndexPlan(repo, tags, sources)


def summary(flags: list[Flag]) -> list[tuple[str, str, str]]:
    return [(str(f.kind), str(f.severity), f.subject) for f in flags]


@pytest.fixture
def client(tmp_path: Path) -> RegistryClient:
    return RegistryClient(docker_config=tmp_path / "no-docker-config.json", timeout=30)


@pytest.fixture(scope="module")
def released(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Repository, dict[Platform, str]]:
    """A repository whose ``1.0`` holds a two-arch index made from ``1.0-amd64``/``1.0-arm64``."""
    tmp_path = tmp_path_factory.mktemp("released")
    repo = new_repo(rig, "released")
    label = secrets.token_hex(6)
    built = {p: build_push(rig, tmp_path, repo, f"1.0-{p.tag_arch}", p, label) for p in (AMD, ARM)}
    imagetools_create(rig, repo.tag("1.0"), *(repo.digest(d) for d in built.values()))
    return repo, built


# ---- a clean release ------------------------------------------------------------------------


async def test_clean_two_arch_release_on_the_rig_yields_no_flag(
    rig: Rig, tmp_path: Path, client: RegistryClient
) -> None:
    repo = new_repo(rig, "clean")
    plan = build_plan(repo, [AMD, ARM])
    state = await read_tags(client, repo, [j.arch_tag for j in plan.jobs] + list(plan.tags))
    assert state == {"1.0-amd64": None, "1.0-arm64": None, "1.0": None}
    assert await preflight_flags(plan, client, state=state) == []
    label = secrets.token_hex(6)
    built = {
        j.platform: build_push(rig, tmp_path, repo, j.arch_tag, j.platform, label)
        for j in plan.jobs
    }
    images = [BuiltImage(j.platform, built[j.platform], j.arch_tag) for j in plan.jobs]
    assert await postbuild_flags(repo, images, client) == []
    iplan = index_plan(repo, built)
    version = docker(rig, "buildx", "version").strip()
    confirmed: dict[str, str | None] = {"1.0": None}
    assert (
        await premanifest_flags(
            iplan, client, confirmed, planned=[AMD, ARM], buildx_version=version
        )
        == []
    )
    imagetools_create(rig, repo.tag("1.0"), *iplan.source_refs)
    served = await client.get_manifest(repo, "1.0")
    assert served is not None
    assert index_shape_flags(served, [AMD, ARM], subject="1.0") == []
    # Pushing the same index again changes nothing: still no flag.
    assert await premanifest_flags(iplan, client, {"1.0": served.digest}, planned=[AMD, ARM]) == []


# ---- 1. the release tag already holds a two-arch index --------------------------------------


async def test_release_tag_holding_a_two_arch_index(
    rig: Rig,
    tmp_path: Path,
    client: RegistryClient,
    released: tuple[Repository, dict[Platform, str]],
) -> None:
    repo, built = released
    current = await client.get_manifest(repo, "1.0")
    assert current is not None and current.is_index

    # Before the build: an amd64-only release would drop arm64.
    flags = await preflight_flags(build_plan(repo, [AMD]), client)
    assert summary(flags) == [("tag-overwrite", "error", "1.0")]
    assert flags[0].evidence["dropped"] == ["linux/arm64"]
    assert flags[0].evidence["current_digest"] == current.digest
    assert {e["platform"]: e["digest"] for e in flags[0].evidence["current"]} == {
        "linux/amd64": built[AMD],
        "linux/arm64": built[ARM],
    }

    # At manifest time, with a new amd64 build: the drop is an error, unless retired (info).
    new_amd = build_push(rig, tmp_path, repo, "1.1-amd64", AMD, secrets.token_hex(6))
    amd_only = index_plan(repo, {AMD: new_amd})
    flags = await premanifest_flags(amd_only, client, planned=[AMD])
    assert summary(flags) == [("tag-overwrite", "error", "1.0")]
    diff = {c["platform"]: c["change"] for c in flags[0].evidence["diff"]}
    assert diff == {"linux/amd64": "changed", "linux/arm64": "dropped"}
    flags = await premanifest_flags(amd_only, client, planned=[AMD], retired=[ARM])
    assert summary(flags) == [("tag-overwrite", "info", "1.0")]

    # Changing arm64 only: info, with the diff platform by platform.
    two = index_plan(repo, {AMD: built[AMD], ARM: built[ARM]})
    changed = index_plan(repo, {AMD: new_amd, ARM: built[ARM]})
    flags = await premanifest_flags(changed, client, planned=[AMD, ARM])
    assert summary(flags) == [("tag-overwrite", "info", "1.0")]
    diffs = await index_diffs(changed, client)
    assert [(c.platform, c.before, c.after, c.change) for c in diffs["1.0"]] == [
        ("linux/amd64", built[AMD], new_amd, Change.CHANGED),
        ("linux/arm64", built[ARM], built[ARM], Change.SAME),
    ]
    # The very same index: nothing to say.
    assert await premanifest_flags(two, client, planned=[AMD, ARM]) == []


# ---- 2. a per-arch push would land on an index ----------------------------------------------


async def test_per_arch_tag_holding_an_index_stops_the_build(
    rig: Rig, client: RegistryClient, released: tuple[Repository, dict[Platform, str]]
) -> None:
    repo, built = released
    # Someone pushed a multi-arch index under what the 2.0 arm64 job would push to.
    imagetools_create(rig, repo.tag("2.0-arm64"), *(repo.digest(d) for d in built.values()))
    flags = await preflight_flags(build_plan(repo, [AMD, ARM], ("2.0",)), client)
    assert summary(flags) == [("tag-overwrite", "error", "2.0-arm64")]
    # The index lists its children in source order (sorted by digest here), so compare as sets.
    current = sorted(flags[0].evidence["current"], key=lambda entry: str(entry["platform"]))
    assert current == [
        {"platform": "linux/amd64", "digest": built[AMD]},
        {"platform": "linux/arm64", "digest": built[ARM]},
    ]
    # A single-arch image already at a per-arch tag is no reason to stop.
    assert await preflight_flags(build_plan(repo, [AMD, ARM], ("1.0",)), client) == []


# ---- 3. a per-arch tag with another digest --------------------------------------------------


async def test_per_arch_tag_with_another_digest(
    rig: Rig, tmp_path: Path, client: RegistryClient
) -> None:
    repo = new_repo(rig, "archtag")
    old = build_push(rig, tmp_path, repo, "1.0-arm64", ARM, "old")
    before = await read_tags(client, repo, ["1.0-arm64"])
    assert before["1.0-arm64"] is not None and before["1.0-arm64"].digest == old
    new = build_push(rig, tmp_path, repo, "1.0-arm64", ARM, "new")
    assert new != old
    flags = await postbuild_flags(repo, [BuiltImage(ARM, new, "1.0-arm64", before=old)], client)
    assert summary(flags) == [("tag-overwrite", "info", "1.0-arm64")]
    assert (flags[0].evidence["before"], flags[0].evidence["built"]) == (old, new)
    # Someone pushes over the tag after the build: the tag no longer serves what was built.
    other = build_push(rig, tmp_path, repo, "1.0-arm64", ARM, "other")
    flags = await postbuild_flags(repo, [BuiltImage(ARM, new, "1.0-arm64")], client)
    assert summary(flags) == [("tag-overwrite", "info", "1.0-arm64")]
    assert (flags[0].evidence["built"], flags[0].evidence["now"]) == (new, other)


# ---- 5. the release tag moved between plan and push -----------------------------------------


async def test_release_tag_moved_between_plan_and_push(
    rig: Rig, tmp_path: Path, client: RegistryClient
) -> None:
    repo = new_repo(rig, "moved")
    label = secrets.token_hex(6)
    built = {p: build_push(rig, tmp_path, repo, f"1.0-{p.tag_arch}", p, label) for p in (AMD, ARM)}
    imagetools_create(rig, repo.tag("1.0"), *(repo.digest(d) for d in built.values()))
    confirmed_manifest = await client.get_manifest(repo, "1.0")
    assert confirmed_manifest is not None
    confirmed = {"1.0": confirmed_manifest.digest}
    iplan = index_plan(repo, built)
    assert await premanifest_flags(iplan, client, confirmed, planned=[AMD, ARM]) == []
    # Between the confirmation and the push someone else moves the tag.
    imagetools_create(rig, repo.tag("1.0"), repo.digest(built[AMD]))
    now = await client.get_manifest(repo, "1.0")
    assert now is not None and now.digest != confirmed_manifest.digest
    flags = await premanifest_flags(iplan, client, confirmed, planned=[AMD, ARM])
    assert summary(flags)[0] == ("tag-overwrite", "error", "1.0")
    assert flags[0].evidence["confirmed"] == confirmed_manifest.digest
    assert flags[0].evidence["now"] == now.digest


# ---- 6. cross-repository sources with the rig's buildx --------------------------------------


async def test_cross_repository_sources_with_the_rigs_buildx(
    rig: Rig, client: RegistryClient, released: tuple[Repository, dict[Platform, str]]
) -> None:
    repo, built = released
    version = docker(rig, "buildx", "version").strip()
    parsed = parse_buildx_version(version)
    assert parsed is not None and parsed < (0, 22, 0)
    target = new_repo(rig, "target")
    iplan = IndexPlan(
        target,
        ("1.0",),
        tuple(IndexSource(p, d, repo.digest(d)) for p, d in sorted(built.items())),
    )
    flags = cross_repo_flags(iplan.sources, target, version, where="local")
    assert summary(flags) == [("tag-overwrite", "error", str(target))]
    assert flags[0].evidence["foreign_sources"] == iplan.source_refs
    gathered = await premanifest_flags(iplan, client, planned=[AMD, ARM], buildx_version=version)
    assert summary(gathered) == summary(flags)
    assert cross_repo_flags(iplan.sources, repo, version) == []


# ---- 9. an image whose config arch is not its target ----------------------------------------


async def test_config_arch_not_the_target(rig: Rig, tmp_path: Path, client: RegistryClient) -> None:
    repo = new_repo(rig, "config")
    amd = build_push(rig, tmp_path, repo, "1.0-amd64", AMD, "c")
    arm = build_push(rig, tmp_path, repo, "1.0-arm64", ARM, "c")
    # arm64 layers, but a config that says amd64, pushed as the arm64 build.
    wrong = relabel(rig, repo, arm, "1.0-arm64", "amd64")
    images = [BuiltImage(AMD, amd, "1.0-amd64"), BuiltImage(ARM, wrong, "1.0-arm64")]
    flags = await postbuild_flags(repo, images, client)
    assert summary(flags) == [("arch-mismatch", "error", "arm64")]
    assert flags[0].evidence["digest"] == wrong
    assert flags[0].evidence["architecture"] == "amd64"
    # The same gate right before the index: the digests swapped by mistake.
    swapped = IndexPlan(
        repo,
        ("1.0",),
        (IndexSource(AMD, arm, repo.digest(arm)), IndexSource(ARM, amd, repo.digest(amd))),
    )
    flags = await premanifest_flags(swapped, client, planned=[AMD, ARM])
    assert summary(flags) == [
        ("arch-mismatch", "error", "amd64"),
        ("arch-mismatch", "error", "arm64"),
    ]


# ---- 11. an index missing an arch -----------------------------------------------------------


async def test_index_missing_an_arch(
    rig: Rig, client: RegistryClient, released: tuple[Repository, dict[Platform, str]]
) -> None:
    repo, built = released
    imagetools_create(rig, repo.tag("amd-only"), repo.digest(built[AMD]))
    served = await client.get_manifest(repo, "amd-only")
    assert served is not None and served.is_index
    flags = index_shape_flags(served, [AMD, ARM], subject="amd-only")
    assert summary(flags) == [("arch-mismatch", "error", "amd-only")]
    assert flags[0].evidence["missing"] == ["linux/arm64"]
    # An arm64 release over it is an addition (info), never a drop.
    iplan = index_plan(repo, built, ("amd-only",))
    gathered = await premanifest_flags(iplan, client, planned=[AMD, ARM])
    assert summary(gathered) == [("tag-overwrite", "info", "amd-only")]
    assert "adds linux/arm64" in gathered[0].message
    two_arch = await client.get_manifest(repo, "1.0")
    assert two_arch is not None
    assert index_shape_flags(two_arch, [AMD, ARM]) == []
