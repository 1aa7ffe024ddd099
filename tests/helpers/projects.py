"""Small matui projects (a config and a build context) on the rig: one slow, chatty amd64 image
on a private sshd, or one two-arch image on the rig's two builder hosts. Each gets its own
repository and cache key, so tests never see each other's images or cached steps."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from tests.helpers.rig import Rig
from tests.helpers.sshd import Sshd

TICKS = """\
ARG BASE
FROM ${BASE}
RUN echo start-%s; for i in $(seq 1 %d); do echo "tick $i"; sleep 0.5; done
"""


QUICK = """\
ARG BASE
FROM ${BASE}
RUN echo start-%s
"""

#: A two-arch build whose arm64 step exits 3 (two lines of its own, one on stderr) while amd64
#: builds; the step before prints lines that are not that step's.
ARM64_EXITS_3 = """\
ARG BASE
FROM ${BASE}
RUN echo "arch is $(uname -m)"; for i in 1 2 3; do echo "other step $i"; done
RUN if [ "$(uname -m)" = aarch64 ]; then echo boom one; echo boom two >&2; exit 3; fi
RUN echo built > /built
"""


def project(
    tmp_path: Path,
    rig: Rig,
    sshd: Sshd,
    *,
    quick: bool = False,
    ticks: int = 12,
    registry: str | None = None,
) -> Path:
    """One amd64 image on the private sshd: ``ticks`` ticks, half a second apart (12: 6 s), or
    a quick one-step build, pushed to ``registry`` (the rig's by default)."""
    context = tmp_path / "ctx"
    context.mkdir()
    token = secrets.token_hex(6)
    (context / "Dockerfile").write_text(QUICK % token if quick else TICKS % (token, ticks))
    config = tmp_path / "matui.toml"
    config.write_text(f"""
[[hosts]]
name = "h"
arch = "amd64"
address = "127.0.0.1"
port = {sshd.port}
user = "{rig.user}"
identity = "{rig.key}"
known_hosts = "{sshd.known_hosts}"

[[images]]
name = "{registry or rig.registry}/conn-test/app{secrets.token_hex(4)}"
tags = ["1.0"]
context = "ctx"
platforms = ["linux/amd64"]
build_args = {{ BASE = "{rig.base_image}" }}
""")
    return config


def rig_config(rig: Rig, repo: str, *, tags: tuple[str, ...]) -> str:
    """A config: the rig's two builder hosts (amd64-1 native, emu-1 emulating arm64) and one
    two-arch image ``repo`` whose context is ``ctx`` beside the config; more image keys may be
    appended."""
    return f"""
[defaults]
user = "{rig.user}"
identity = "{rig.key}"
known_hosts = "{rig.known_hosts}"

[[hosts]]
name = "amd64-1"
arch = "amd64"
address = "127.0.0.1"
port = {rig.port_amd64}

[[hosts]]
name = "emu-1"
arch = "amd64"
address = "127.0.0.1"
port = {rig.port_emu}
allow_emulation = true

[[images]]
name = "{repo}"
tags = {json.dumps(list(tags))}
context = "ctx"
platforms = ["linux/amd64", "linux/arm64"]
"""


def make_project(
    tmp_path: Path,
    rig: Rig,
    dockerfile: str,
    *,
    files: dict[str, bytes] | None = None,
    repo: str | None = None,
) -> tuple[Path, str]:
    """A config with the rig's two builder hosts and one two-arch image; returns (config, repo)."""
    context = tmp_path / "ctx"
    context.mkdir()
    # Every test gets its own cache key: the rig's hosts share one dockerd and its cache.
    (context / "Dockerfile").write_text(
        dockerfile.replace(
            "FROM ${BASE}\n", f"FROM ${{BASE}}\nRUN echo run-{secrets.token_hex(6)}\n"
        )
    )
    for name, data in (files or {}).items():
        (context / name).write_bytes(data)
    repo = repo or f"{rig.registry}/build-test/app{secrets.token_hex(4)}"
    config = tmp_path / "matui.toml"
    config.write_text(
        rig_config(rig, repo, tags=("1.0",)) + f'build_args = {{ BASE = "{rig.base_image}" }}\n'
    )
    return config, repo


#: One Dockerfile for every image of a release: each says which image it is ({image} in a
#: build arg) and which arch it runs on.
RELEASE_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
ARG APP
RUN echo "image $APP on $(uname -m) %s"
RUN echo "$APP" > /app
"""


def make_release(
    tmp_path: Path, rig: Rig, names: tuple[str, ...] = ("api", "web"), *, ticks: int = 0
) -> tuple[Path, list[str]]:
    """A config with the rig's two builder hosts and one two-arch image per name, all sharing
    one context (``APP = "{image}"`` tells them apart), each build printing ``ticks`` ticks
    half a second apart first; returns (config, repositories)."""
    context = tmp_path / "ctx"
    context.mkdir()
    dockerfile = RELEASE_DOCKERFILE % secrets.token_hex(6)
    if ticks:
        dockerfile += f'RUN for i in $(seq 1 {ticks}); do echo "tick $i"; sleep 0.5; done\n'
    (context / "Dockerfile").write_text(dockerfile)
    prefix = f"{rig.registry}/release-test/r{secrets.token_hex(4)}"
    repos = [f"{prefix}-{name}" for name in names]
    text = rig_config(rig, repos[0], tags=("1.0",))
    text += f'build_args = {{ BASE = "{rig.base_image}", APP = "{{image}}" }}\n'
    for repo in repos[1:]:
        text += f"""
[[images]]
name = "{repo}"
tags = ["1.0"]
context = "ctx"
platforms = ["linux/amd64", "linux/arm64"]
build_args = {{ BASE = "{rig.base_image}", APP = "{{image}}" }}
"""
    config = tmp_path / "matui.toml"
    config.write_text(text)
    return config, repos
