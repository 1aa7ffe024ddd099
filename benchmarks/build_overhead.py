"""What matui costs on top of the builds themselves.

Measures, side by side in one run, the wall time of a two-arch build (amd64 native, arm64 under
QEMU on the rig) through matui's engine against the same work done by hand: the same context
tarred over the OpenSSH client and the same `docker buildx build` commands, both arches in
parallel. Each round uses a fresh cache key so both sides really build. Prints the median of
each side and the ratio (target: <= 1.05).

    . /tmp/matui-rig/env && .venv/bin/python benchmarks/build_overhead.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script: make `benchmarks.common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import rig_env, ssh_argv
from matui.engine.build import start_build
from matui.engine.config import load_config
from matui.engine.shell import buildx_argv
from matui.engine.ssh import SshPool

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo %s; for i in $(seq 1 20); do echo "work $i"; done
RUN sleep 1; echo done > /done
"""


def write_project(root: Path, env: dict[str, str], repo: str) -> Path:
    (root / "ctx").mkdir(parents=True, exist_ok=True)
    (root / "ctx" / "payload.txt").write_text("x" * 10_000)
    (root / "matui.toml").write_text(f"""
[defaults]
user = "{env["MATUI_RIG_USER"]}"
identity = "{env["MATUI_RIG_KEY"]}"
known_hosts = "{env["MATUI_RIG_KNOWN_HOSTS"]}"

[[hosts]]
name = "amd64-1"
arch = "amd64"
address = "127.0.0.1"
port = {env["MATUI_RIG_PORT_AMD64"]}

[[hosts]]
name = "emu-1"
arch = "amd64"
address = "127.0.0.1"
port = {env["MATUI_RIG_PORT_EMU"]}
allow_emulation = true

[[images]]
name = "{repo}"
tags = ["1.0"]
context = "ctx"
platforms = ["linux/amd64", "linux/arm64"]
build_args = {{ BASE = "{env["MATUI_RIG_BASE_IMAGE"]}" }}
""")
    return root / "matui.toml"


def fresh_dockerfile(root: Path) -> None:
    (root / "ctx" / "Dockerfile").write_text(DOCKERFILE % secrets.token_hex(8))


async def through_matui(config_path: Path, state: Path) -> float:
    config = load_config(config_path)
    started = time.perf_counter()
    async with SshPool(config.hosts) as pool:
        prepared = await start_build(config, pool, state_root=state)
        async for _ in prepared.run.events():
            pass
        await prepared.run.wait()
        if not prepared.run.succeeded:
            raise SystemExit(f"matui build failed: {prepared.run.record.dir}")
    return time.perf_counter() - started


def by_hand(root: Path, env: dict[str, str], repo: str, round_id: str) -> float:
    """The same work with the OpenSSH client: tar the context over ssh, build, push, in parallel."""
    jobs = [("amd64", env["MATUI_RIG_PORT_AMD64"]), ("arm64", env["MATUI_RIG_PORT_EMU"])]
    started = time.perf_counter()
    procs = []
    for arch, port in jobs:
        workdir = f".bench/{round_id}/{arch}"
        argv = buildx_argv(
            platform=f"linux/{arch}",
            ref=f"{repo}:hand-{arch}",
            dockerfile="Dockerfile",
            build_args=["BASE"],
            labels={},
            target=None,
        )
        remote = (
            f"mkdir -p {workdir}/context && tar -x -f - -C {workdir}/context && cd {workdir} && "
            # buildx reads a --build-arg=NAME's value from its environment, as in job.sh
            + f"BASE={shlex.quote(env['MATUI_RIG_BASE_IMAGE'])} "
            + " ".join(shlex.quote(a) for a in argv)
            + " > build.log 2>&1"
        )
        ssh = ssh_argv(env, remote, port=port)
        tar = subprocess.Popen(["tar", "-c", "-C", str(root / "ctx"), "."], stdout=subprocess.PIPE)
        procs.append(subprocess.Popen(ssh, stdin=tar.stdout))
        assert tar.stdout is not None
        tar.stdout.close()
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"direct build failed: {codes}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = rig_env()
    repo = f"{env['MATUI_RIG_REGISTRY']}/bench/overhead"
    matui_times: list[float] = []
    hand_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_project(root, env, repo)
        for i in range(args.rounds):
            # Alternate the order so neither side always runs on a warmer machine.
            for side in ("matui", "hand") if i % 2 == 0 else ("hand", "matui"):
                fresh_dockerfile(root)
                if side == "matui":
                    matui_times.append(asyncio.run(through_matui(config, root / "state")))
                else:
                    hand_times.append(by_hand(root, env, repo, f"r{i}"))
            print(
                f"round {i + 1}: matui {matui_times[-1]:.2f}s  by hand {hand_times[-1]:.2f}s",
                file=sys.stderr,
            )
    m, h = statistics.median(matui_times), statistics.median(hand_times)
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    print(
        f"two-arch build, median of {args.rounds}: matui {m:.2f}s, buildx over ssh by hand {h:.2f}s"
    )
    print(f"ratio matui / by hand: {m / h:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
