"""Base images a planned platform lacks: the rig's two-arch busybox cut down to its amd64
image, in a repository of the test's own in the rig's registry."""

from __future__ import annotations

import os
import secrets
import subprocess

from tests.helpers.publishing import base_children, copy_child
from tests.helpers.rig import Rig


def amd64_only(rig: Rig, *, index: bool) -> str:
    """``REPO:1`` holding linux/amd64 only: an index listing amd64 alone (``index=True``, as
    ``imagetools create`` from one source makes it), or that platform's manifest by itself."""
    ref = f"{rig.registry}/preflight-test/base{secrets.token_hex(4)}:1"
    amd64 = base_children(rig)["amd64"]
    if index:
        source = f"{rig.base_image.rpartition(':')[0]}@{amd64}"
        subprocess.run(
            ["docker", "buildx", "imagetools", "create", "--tag", ref, source],
            check=True,
            capture_output=True,
            env={**os.environ, "DOCKER_HOST": rig.docker_host},
            timeout=120,
        )
    else:
        copy_child(rig, amd64, ref)
    return ref
