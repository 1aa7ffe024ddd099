"""Manifest: matui's create + push + verify of an index against bare buildx imagetools.

Two tiny per-arch images (linux/amd64 and linux/arm64, ``FROM scratch`` plus one file) are built
and pushed once to the rig's registry. Then, side by side, alternating, each repetition to a
fresh release tag of the same repository:

* matui: ``matui.engine.publish.push_index`` on a run record holding the two digests (the
  pre-manifest checks against the registry, ``imagetools create``, then reading the tag back
  and checking every platform's digest);
* baseline: ``docker buildx imagetools create --tag REPO:TAG REPO@A REPO@B`` then
  ``docker buildx imagetools inspect REPO:TAG``.

Target: matui time <= 1.5x the bare commands.

    . /tmp/matui-rig/env && .venv/bin/python -m benchmarks.manifest_push
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import Figure, emit, median, parser, rig_env


def build_sources(repo: str, tmp: Path) -> dict[str, str]:
    """Push one tiny image per arch; their registry digests by platform."""
    (tmp / "ctx").mkdir()
    (tmp / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /\n")
    digests = {}
    for arch in ("amd64", "arm64"):
        (tmp / "ctx" / "hello.txt").write_text(f"matui manifest benchmark {arch}\n")
        meta = tmp / f"{arch}.json"
        subprocess.run(
            [
                "docker",
                "buildx",
                "build",
                "--quiet",
                f"--platform=linux/{arch}",
                "--provenance=false",
                f"--metadata-file={meta}",
                "--push",
                f"--tag={repo}:src-{arch}",
                str(tmp / "ctx"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        digests[f"linux/{arch}"] = json.loads(meta.read_text())["containerimage.digest"]
    return digests


def record_for(state: Path, repo: str, tag: str, digests: dict[str, str]) -> object:
    from matui.engine.records import JobRecord, JobState, RunRecord, RunState

    return RunRecord.create(
        state,
        image=repo,
        tags=[tag],
        platforms=sorted(digests),
        jobs=[
            JobRecord(
                key=platform.split("/")[1],
                arch=platform.split("/")[1],
                platform=platform,
                host=f"{platform.split('/')[1]}-1",
                arch_tag=f"{tag}-{platform.split('/')[1]}",
                ref=f"{repo}:{tag}-{platform.split('/')[1]}",
                state=JobState.SUCCEEDED,
                digest=digest,
            )
            for platform, digest in sorted(digests.items())
        ],
        state=RunState.SUCCEEDED,
    )


async def through_matui(state: Path, repo: str, tag: str, digests: dict[str, str]) -> float:
    from matui.engine import publish
    from matui.engine.publish import push_index
    from matui.engine.registry import RegistryClient

    record = record_for(state, repo, tag, digests)
    # As the one push of a run pays it: nothing remembered from an earlier push.
    publish._buildx_seen.clear()
    start = time.perf_counter()
    results = await push_index(record, RegistryClient())  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    if not all(r.verified for r in results):
        raise SystemExit(f"matui did not verify the index: {results}")
    return elapsed


def by_hand(repo: str, tag: str, digests: dict[str, str]) -> float:
    sources = [f"{repo}@{digest}" for _, digest in sorted(digests.items())]
    start = time.perf_counter()
    subprocess.run(
        ["docker", "buildx", "imagetools", "create", f"--tag={repo}:{tag}", *sources],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", f"{repo}:{tag}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    args = p.parse_args()
    reps = args.reps or (1 if args.small else 7)
    env = rig_env()
    repo = f"{env['MATUI_RIG_REGISTRY']}/bench/manifest{secrets.token_hex(3)}"
    matui_times: list[float] = []
    hand_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        digests = build_sources(repo, root)
        # One untimed round each: python-on-whales' import, docker's first start.
        asyncio.run(through_matui(root / "state", repo, "warm-m", digests))
        by_hand(repo, "warm-h", digests)
        for i in range(reps):
            for side in ("matui", "hand") if i % 2 == 0 else ("hand", "matui"):
                if side == "matui":
                    matui_times.append(
                        asyncio.run(through_matui(root / "state", repo, f"m{i}", digests))
                    )
                else:
                    hand_times.append(by_hand(repo, f"h{i}", digests))
    m, h = median(matui_times), median(hand_times)
    emit(
        Figure(
            name="manifest_push",
            what="two-arch index: create + push + verify against the rig registry",
            value=m,
            unit="s",
            baseline="imagetools create + inspect",
            baseline_value=h,
            ratio=m / h,
            ratio_text="matui time / bare buildx time",
            target="<= 1.5x",
            met=m / h <= 1.5,
            detail=f"median of {reps} (matui {', '.join(f'{t:.2f}' for t in matui_times)}; "
            f"bare {', '.join(f'{t:.2f}' for t in hand_times)})",
        )
    )


if __name__ == "__main__":
    main()
