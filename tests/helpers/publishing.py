"""A built two-arch run to publish, without building: the rig's base image per arch, copied
into a repository of the test's own (``skopeo copy`` of each platform's manifest by digest keeps
the digest), and a run record saying both arches built those digests — what ``matui build``
leaves behind, in half a second instead of a QEMU build.

The repository is named through the test's :class:`~tests.helpers.registry_proxy.RegistryProxy`
address, so every registry call matui makes for it goes through the proxy; the images live in
the rig's registry (the proxy forwards there), where tests read them directly.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from matui.engine.records import JobRecord, JobState, RunRecord, RunState
from tests.helpers.projects import rig_config
from tests.helpers.rig import Rig

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def skopeo_raw(ref: str) -> bytes | None:
    """The manifest bytes the registry serves for ``ref``; None when it serves none."""
    found = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
        capture_output=True,
        timeout=60,
    )
    return found.stdout if found.returncode == 0 else None


def base_children(rig: Rig) -> dict[str, str]:
    """``{arch: digest}`` of the rig's multi-arch base image."""
    raw = skopeo_raw(rig.base_image)
    assert raw is not None, f"{rig.base_image} is not in the rig's registry"
    return {m["platform"]["architecture"]: m["digest"] for m in json.loads(raw)["manifests"]}


def copy_child(rig: Rig, digest: str, dest: str) -> None:
    """Push the base image's ``digest`` to ``dest`` (``repo:tag`` in the rig's registry), as a
    build of that arch would."""
    base = rig.base_image.rpartition(":")[0]
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{base}@{digest}",
            f"docker://{dest}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def delete_manifest(registry: str, path: str, digest: str) -> None:
    """Delete a manifest from the rig's registry (it allows deletes): an image gone between
    build and publish, as a retention policy or a colleague would leave it."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{path}/manifests/{digest}", method="DELETE"
    )
    with _DIRECT.open(request, timeout=30) as resp:
        assert resp.status == 202, resp.status


@dataclass(frozen=True)
class BuiltRun:
    """A run record of a two-arch build that succeeded, and where everything is."""

    config: Path
    state_root: Path  # $XDG_STATE_HOME/matui
    record: RunRecord
    repo: str  # through the proxy: what matui is given
    direct: str  # the same repository in the rig's registry: what the test reads
    path: str  # the repository path (no registry)
    digests: dict[str, str]  # {platform: digest}

    def served(self, tag: str) -> tuple[str, dict[str, str]] | None:
        """(index digest, {platform: child}) ``tag`` serves in the rig's registry, or None."""
        import hashlib

        raw = skopeo_raw(f"{self.direct}:{tag}")
        if raw is None:
            return None
        doc = json.loads(raw)
        children = {
            f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
            for m in doc.get("manifests", [])
        }
        return "sha256:" + hashlib.sha256(raw).hexdigest(), children


def built_run(
    tmp_path: Path,
    rig: Rig,
    registry: str,
    *,
    tags: tuple[str, ...] = ("1.0",),
    finished: bool = True,
) -> BuiltRun:
    """Stage a run under ``tmp_path/state`` whose amd64 and arm64 jobs built the base image's
    children, pushed to ``<registry>/publish-test/app<random>:<tag>-<arch>``.

    ``finished=False`` leaves the run's state ``running`` with every job already succeeded: a
    run an earlier matui left, whose builds ended while it was away (the dashboard picks it up
    on start and finishes it).
    """
    path = f"publish-test/app{secrets.token_hex(4)}"
    repo = f"{registry}/{path}"
    direct = f"{rig.registry}/{path}"
    children = base_children(rig)
    digests = {f"linux/{arch}": children[arch] for arch in ("amd64", "arm64")}
    for platform, digest in digests.items():
        copy_child(rig, digest, f"{direct}:{tags[0]}-{platform.split('/')[1]}")
    config = tmp_path / "matui.toml"
    config.write_text(rig_config(rig, repo, tags=tags))
    (tmp_path / "ctx").mkdir(exist_ok=True)
    (tmp_path / "ctx" / "Dockerfile").write_text(f"FROM {rig.base_image}\n")
    state_root = tmp_path / "state" / "matui"
    hosts = {"amd64": "amd64-1", "arm64": "emu-1"}
    record = RunRecord.create(
        state_root,
        image=repo,
        tags=tags,
        platforms=list(digests),
        config=str(config),
        context=str(tmp_path / "ctx"),
        jobs=[
            JobRecord(
                key=arch,
                arch=arch,
                platform=platform,
                host=hosts[arch],
                arch_tag=f"{tags[0]}-{arch}",
                ref=f"{repo}:{tags[0]}-{arch}",
                emulated=arch == "arm64",
                state=JobState.SUCCEEDED,
                exit_code=0,
                digest=digest,
                seconds=1.0,
            )
            for platform, digest in digests.items()
            for arch in [platform.split("/")[1]]
        ],
        state=RunState.SUCCEEDED if finished else RunState.RUNNING,
    )
    return BuiltRun(config, state_root, record, repo, direct, path, digests)
