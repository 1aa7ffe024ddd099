"""The release view of the real dashboard in a real terminal (``matui`` in tmux against the rig,
:mod:`tests.helpers.tmux`): a config of two images and no ``--image`` opens on the grid of
images x arches; ``b`` builds both images at once, ``enter`` opens an image's panes and ``esc``
comes back, ``m`` then ``y`` publishes both indexes after one confirmation, and the registry
serves each index, its children the digests each run recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.projects import make_release
from tests.helpers.publishing import skopeo_raw
from tests.helpers.rig import Rig
from tests.helpers.tmux import BUILD, Tmux
from tests.helpers.tmux import tmux as tmux  # the fixture: one tmux server

pytestmark = pytest.mark.rig


def recorded(state: Path) -> dict[str, dict[str, str]]:
    """Each image's run record: its jobs' digests by platform."""
    runs: dict[str, dict[str, str]] = {}
    for path in (state / "matui" / "runs").glob("*/run.json"):
        record = json.loads(path.read_text())
        runs[record["image"]] = {f"linux/{j['arch']}": j["digest"] for j in record["jobs"]}
    return runs


def served(ref: str) -> dict[str, str]:
    """The index the registry serves at ``ref``: its children's digests by platform."""
    raw = skopeo_raw(ref)
    assert raw is not None, f"the registry serves nothing at {ref}"
    index = json.loads(raw)
    assert "manifests" in index, f"{ref} is not an index: {index.get('mediaType')}"
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
        if m["platform"]["os"] != "unknown"  # attestations
    }


def test_the_release_view_builds_both_images_and_publishes_both_indexes(
    rig: Rig, tmp_path: Path, tmux: Tmux
) -> None:
    config, repos = make_release(tmp_path, rig)
    api, web = (repo.rsplit("/", 1)[1] for repo in repos)
    state = tmp_path / "state"
    status = tmp_path / "exit-status"
    tmux.start_matui(config, state, status)  # the grid, the hosts probed

    screen = tmux.wait(lambda s: "plan emu-1 (QEMU)" in s, "the plan in the grid")
    assert "release of 2 images" in screen.splitlines()[0]
    assert api in screen and web in screen and "plan amd64-1" in screen

    tmux.keys("b")
    screen = tmux.wait(
        lambda s: "2 built: m publishes the release" in s, "both images built", timeout=BUILD
    )
    for name in (api, web):  # each image's row: both jobs done, on their hosts, built
        row = next(line for line in screen.splitlines() if f"{name} " in line)
        assert row.count("✓ ") == 2 and "amd64-1" in row and "emu-1" in row, screen
        assert row.rstrip().endswith("built"), screen

    # enter on the first cell opens api's panes; esc comes back to the grid.
    tmux.keys("Enter")
    screen = tmux.wait(lambda s: "amd64 · succeeded" in s, "api's panes")
    assert f"{repos[0]}:1.0" in screen
    tmux.keys("Escape")
    tmux.wait(lambda s: "release of 2 images" in s, "the grid again")

    tmux.keys("m")
    screen = tmux.wait(lambda s: "push 2 tags of 2 images?" in s, "the one confirmation", 60)
    for repo in repos:
        assert f"→ {repo}:1.0: new tag" in screen
    tmux.keys("y")
    screen = tmux.wait(
        lambda s: "release published and verified: 2 of 2 images" in s, "the publish", 120
    )
    for repo in repos:
        assert f"{repo}:1.0: pushed and verified, index" in screen

    runs = recorded(state)
    for repo in repos:
        assert served(f"{repo}:1.0") == runs[repo]
        assert set(runs[repo]) == {"linux/amd64", "linux/arm64"}

    tmux.keys("q")
    assert tmux.exit_status(status) == "0"
