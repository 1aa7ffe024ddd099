"""RegistryClient against the rig's real registry (127.0.0.1:5000, plain HTTP on loopback),
cross-checked with skopeo and with images buildx pushes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from matui.engine.arch import Platform
from matui.engine.refs import Repository, parse_repository
from matui.engine.registry import (
    MEDIA_DOCKER_LIST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Manifest,
    RegistryClient,
)

pytestmark = pytest.mark.rig

# BuildKit's attestation layout (docs.docker.com "Image attestation storage").
ATTESTATION_ANNOTATIONS = "vnd.docker.reference.type", "vnd.docker.reference.digest"


def sha256(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def split_ref(ref: str) -> tuple[Repository, str]:
    name, _, tag = ref.rpartition(":")
    return parse_repository(name), tag


def skopeo_raw_digest(ref: str) -> str:
    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return sha256(raw)


def docker_env(rig: Any) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": rig.docker_host}


@pytest.fixture
def client(tmp_path: Path) -> RegistryClient:
    return RegistryClient(docker_config=tmp_path / "no-docker-config.json", timeout=30)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


async def check_digests_agree(client: RegistryClient, ref: str) -> Manifest:
    repo, tag = split_ref(ref)
    manifest = await client.get_manifest(repo, tag)
    assert manifest is not None
    assert await client.head_digest(repo, tag) == manifest.digest
    assert skopeo_raw_digest(ref) == manifest.digest
    by_digest = await client.get_manifest(repo, manifest.digest)
    assert by_digest is not None and by_digest.raw == manifest.raw
    return manifest


async def test_base_image_index(rig: Any, client: RegistryClient) -> None:
    manifest = await check_digests_agree(client, rig.base_image)
    assert manifest.is_index and manifest.media_type == MEDIA_DOCKER_LIST
    assert sorted(manifest.platforms()) == [Platform("linux", "amd64"), Platform("linux", "arm64")]
    repo, _ = split_ref(rig.base_image)
    for entry in manifest.entries:
        assert not entry.attestation
        facts = await client.image_config(repo, entry.digest)
        assert facts.platform == entry.platform
        assert facts.os == "linux"
        assert facts.architecture == entry.platform.architecture  # type: ignore[union-attr]


async def test_missing_tag_and_repository(rig: Any, client: RegistryClient, unique: str) -> None:
    repo, _ = split_ref(rig.base_image)
    assert await client.get_manifest(repo, f"missing-{unique}") is None
    assert await client.head_digest(repo, f"missing-{unique}") is None
    nowhere = parse_repository(f"{rig.registry}/registry-test/absent-{unique}")
    assert await client.get_manifest(nowhere, "latest") is None
    assert await client.head_digest(nowhere, "latest") is None


# ---- an image with provenance -------------------------------------------------------------


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _push_blob(registry: str, path: str, data: bytes) -> str:
    digest = sha256(data)
    start = urllib.request.Request(f"http://{registry}/v2/{path}/blobs/uploads/", method="POST")
    with _DIRECT.open(start, timeout=30) as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{sep}digest={digest}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with _DIRECT.open(put, timeout=30) as resp:
        assert resp.status == 201
    return digest


def _push_manifest(registry: str, path: str, ref: str, doc: dict[str, Any]) -> tuple[str, int]:
    raw = json.dumps(doc).encode()
    req = urllib.request.Request(
        f"http://{registry}/v2/{path}/manifests/{ref}",
        data=raw,
        method="PUT",
        headers={"Content-Type": doc["mediaType"]},
    )
    with _DIRECT.open(req, timeout=30) as resp:
        assert resp.status == 201
    return sha256(raw), len(raw)


def _assemble_provenance_index(rig: Any, repo: Repository, tag: str, image_tag: str) -> None:
    """Push, beside an image buildx built, the attestation manifest and OCI index BuildKit writes
    for ``--provenance=true`` (used when the rig's docker driver cannot attest)."""
    image_raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{repo}:{image_tag}"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    image_digest = sha256(image_raw)
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [
                {"name": f"pkg:docker/{repo}@{tag}", "digest": {"sha256": image_digest[7:]}}
            ],
            "predicate": {
                "builder": {"id": ""},
                "buildType": "https://mobyproject.org/buildkit@v1",
            },
        }
    ).encode()
    statement_digest = _push_blob(rig.registry, repo.path, statement)
    config = json.dumps(
        {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [statement_digest]},
        }
    ).encode()
    config_digest = _push_blob(rig.registry, repo.path, config)
    att_digest, att_size = _push_manifest(
        rig.registry,
        repo.path,
        f"att-{tag}",
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": statement_digest,
                    "size": len(statement),
                    "annotations": {
                        "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"
                    },
                }
            ],
        },
    )
    image_type = json.loads(image_raw)["mediaType"]
    _push_manifest(
        rig.registry,
        repo.path,
        tag,
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_INDEX,
            "manifests": [
                {
                    "mediaType": image_type,
                    "digest": image_digest,
                    "size": len(image_raw),
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                {
                    "mediaType": MEDIA_OCI_MANIFEST,
                    "digest": att_digest,
                    "size": att_size,
                    "annotations": dict(
                        zip(
                            ATTESTATION_ANNOTATIONS,
                            ("attestation-manifest", image_digest),
                            strict=True,
                        )
                    ),
                    "platform": {"architecture": "unknown", "os": "unknown"},
                },
            ],
        },
    )


def build_with_provenance(rig: Any, repo: Repository, tag: str, context: Path) -> str:
    """``buildx build --provenance=true --push``; returns how the attestation got there."""
    (context / "Dockerfile").write_text(
        f"FROM {rig.base_image}\nRUN echo registry-test > /registry-test.txt\n"
    )

    def buildx(provenance: str, target_tag: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "docker", "buildx", "build", "--progress=plain",
                f"--provenance={provenance}", "--platform=linux/amd64", "--push",
                f"--tag={repo}:{target_tag}", "--", str(context),
            ],
            capture_output=True,
            text=True,
            env=docker_env(rig),
            timeout=300,
        )  # fmt: skip

    result = buildx("true", tag)
    if result.returncode == 0:
        return "buildx"
    if "Attestation is not supported for the docker driver" not in result.stderr:
        pytest.fail(f"buildx failed:\n{result.stderr[-3000:]}")
    # Docker 20.10's docker driver (the rig's) has no containerd image store and refuses
    # attestations; build the image for real and add BuildKit's attestation layout by hand.
    plain = buildx("false", f"{tag}-image")
    assert plain.returncode == 0, plain.stderr[-3000:]
    _assemble_provenance_index(rig, repo, tag, f"{tag}-image")
    return "assembled"


async def test_provenance_attestation_is_not_a_platform(
    rig: Any, client: RegistryClient, unique: str, tmp_path: Path
) -> None:
    repo = parse_repository(f"{rig.registry}/registry-test/prov-{unique}")
    build_with_provenance(rig, repo, "t", tmp_path)
    manifest = await check_digests_agree(client, f"{repo}:t")
    assert manifest.is_index and manifest.media_type == MEDIA_OCI_INDEX
    assert manifest.platforms() == [Platform("linux", "amd64")]
    attestations = [e for e in manifest.entries if e.attestation]
    images = [e for e in manifest.entries if not e.attestation]
    assert len(attestations) == 1 and len(images) == 1
    assert attestations[0].platform is None
    assert attestations[0].platform_text == "unknown/unknown"
    assert attestations[0].attests == images[0].digest
    facts = await client.image_config(repo, images[0].digest)
    assert facts.platform == Platform("linux", "amd64")
    att_facts = await client.image_config(repo, attestations[0].digest)
    assert att_facts.platform is None and att_facts.architecture == "unknown"
    child = await client.get_manifest(repo, images[0].digest)
    assert child is not None and not child.is_index and child.digest == images[0].digest
