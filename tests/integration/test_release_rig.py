"""A release of many images on the rig, headless: `matui build` builds every image of the
config at once (one context shared, {image} telling them apart), `matui manifest --yes`
publishes both indexes after one preview and verifies each; an image with a failed arch is
refused by name while the other is published."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from matui.engine.records import JobState, list_runs
from tests.helpers.cli import read_until, run_matui, spawn_matui
from tests.helpers.projects import ARM64_EXITS_3, make_release
from tests.helpers.publishing import skopeo_raw
from tests.helpers.rig import Rig

pytestmark = pytest.mark.rig


def served_platforms(ref: str) -> list[str]:
    raw = skopeo_raw(ref)
    assert raw is not None, f"the registry serves nothing at {ref}"
    doc = json.loads(raw)
    assert "manifests" in doc, f"{ref} is not an index: {doc.get('mediaType')}"
    return sorted(
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in doc["manifests"]
    )


def test_a_two_image_release_builds_and_publishes_both_indexes(rig: Rig, tmp_path: Path) -> None:
    config, repos = make_release(tmp_path, rig)
    state = tmp_path / "state"
    build = run_matui("build", "--config", config, "--json", state=state)
    assert build.returncode == 0, build.stderr[-3000:] + build.stdout[-2000:]
    doc = json.loads(build.stdout)
    assert doc["ok"] is True and doc["release"]
    assert [run["image"] for run in doc["runs"]] == repos
    for run in doc["runs"]:
        assert sorted((j["arch"], j["state"]) for j in run["jobs"]) == [
            ("amd64", "succeeded"),
            ("arm64", "succeeded"),
        ]
    # Each image's lines carry its label and arch; {image} reached each build as its own name.
    api, web = (repo.rsplit("/", 1)[1] for repo in repos)
    assert f"[{api}:amd64] " in build.stderr and f"[{web}:arm64] " in build.stderr
    assert f"image {api} on x86_64" in build.stderr
    assert f"image {web} on aarch64" in build.stderr

    publish = run_matui("manifest", "--config", config, "--yes", "--json", state=state)
    assert publish.returncode == 0, publish.stderr[-3000:] + publish.stdout[-2000:]
    report = json.loads(publish.stdout)
    assert report["ok"] is True
    assert sorted(report["preview"]["to_push"]) == sorted(f"{repo}:1.0" for repo in repos)
    # The confirmation listed every tag that moves, each image's run with it.
    for repo in repos:
        assert f"→ {repo}:1.0: new tag" in publish.stderr
        assert served_platforms(f"{repo}:1.0") == ["linux/amd64", "linux/arm64"]
    results = [r for image in report["images"] for r in image["results"]]
    assert sorted((r["tag"], r["outcome"]) for r in results) == [
        ("1.0", "verified"),
        ("1.0", "verified"),
    ]

    # Again: every tag already serves its index, nothing moves, still a success.
    again = run_matui("manifest", "--config", config, "--yes", state=state)
    assert again.returncode == 0, again.stderr + again.stdout
    assert "nothing to push" in again.stdout
    assert again.stdout.count("unchanged and verified") == 2


def test_an_image_with_a_failed_arch_is_refused_and_the_other_published(
    rig: Rig, tmp_path: Path
) -> None:
    config, repos = make_release(tmp_path, rig)
    # The second image gets a context of its own whose arm64 step exits 3.
    failing = tmp_path / "failing"
    failing.mkdir()
    (failing / "Dockerfile").write_text(
        ARM64_EXITS_3.replace(
            "FROM ${BASE}\n", f"FROM ${{BASE}}\nRUN echo {secrets.token_hex(6)}\n"
        )
    )
    text = config.read_text()
    head, _, tail = text.rpartition('context = "ctx"')
    config.write_text(head + 'context = "failing"' + tail)
    state = tmp_path / "state"
    build = run_matui("build", "--config", config, state=state)
    assert build.returncode == 1, build.stderr[-3000:] + build.stdout[-2000:]
    api = repos[0].rsplit("/", 1)[1]
    assert f"{api}: run " in build.stdout and "can be published" in build.stdout
    assert "--arch arm64`" in build.stdout  # the way to retry the failed arch
    assert "1 of 2 images can be published" in build.stdout

    publish = run_matui("manifest", "--config", config, "--yes", state=state)
    assert publish.returncode == 1, publish.stderr + publish.stdout
    assert f"{repos[1]}: refused: not publishing: arm64" in publish.stdout
    assert f"{repos[0]}:1.0: pushed and verified" in publish.stdout
    assert "release incomplete: 1 of 2 images serve their index" in publish.stderr
    assert served_platforms(f"{repos[0]}:1.0") == ["linux/amd64", "linux/arm64"]
    assert skopeo_raw(f"{repos[1]}:1.0") is None


def test_attach_follows_every_image_of_a_release_left_building(rig: Rig, tmp_path: Path) -> None:
    config, repos = make_release(tmp_path, rig, ticks=8)
    state = tmp_path / "state"
    build = spawn_matui("build", "--config", config, state=state)
    read_until(build, "tick 2")
    build.kill()  # no chance to cancel: the builds go on on their hosts
    build.wait(timeout=30)

    attach = run_matui("attach", "--config", config, state=state, timeout=300)
    assert attach.returncode == 0, attach.stdout[-3000:] + attach.stderr[-2000:]
    assert "attached to release" in attach.stdout
    labels = [repo.rsplit("/", 1)[1] for repo in repos]
    for label in labels:
        for arch in ("amd64", "arm64"):
            assert f"[{label}:{arch}] " in attach.stdout
    assert "every image built" in attach.stdout
    runs = list_runs(state / "matui")
    assert sorted(r.image for r in runs) == sorted(repos)
    assert len({r.release for r in runs}) == 1
    assert all(j.state is JobState.SUCCEEDED for r in runs for j in r.jobs)


def test_cancel_stops_every_image_of_a_release_left_building(rig: Rig, tmp_path: Path) -> None:
    config, repos = make_release(tmp_path, rig, ticks=40)
    state = tmp_path / "state"
    build = spawn_matui("build", "--config", config, state=state)
    read_until(build, "tick 2")
    build.kill()  # the builds go on on their hosts
    build.wait(timeout=30)

    cancel = run_matui("cancel", "--config", config, state=state, timeout=300)
    assert cancel.returncode == 0, cancel.stdout[-3000:] + cancel.stderr[-2000:]
    for repo in repos:
        assert f"{repo} (run " in cancel.stdout
    runs = list_runs(state / "matui")
    assert sorted(r.image for r in runs) == sorted(repos)
    # Each job ends as its host says: cancelled, or succeeded when it had ended first.
    states = {j.state for r in runs for j in r.jobs}
    assert JobState.CANCELLED in states
    assert states <= {JobState.CANCELLED, JobState.SUCCEEDED}
