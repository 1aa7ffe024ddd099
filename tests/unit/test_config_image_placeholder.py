"""{image} in an image's context, dockerfile, build-arg and label values is the image's own
name (its repository's last part), so the images of a release can share one context and tell
themselves apart; tags and other keys keep the text as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.cli import image_labels
from matui.engine.config import ConfigError, load_config

IMAGES = """
[[hosts]]
name = "amd64-1"
arch = "amd64"
address = "192.0.2.10"

[[images]]
name = "registry.example.com/team/api"
tags = ["1.0"]
context = "services/{image}"
dockerfile = "{image}.Dockerfile"
platforms = ["linux/amd64"]
build_args = { APP = "{image}", JSON = '{"a": 1}' }
labels = { "org.example.app" = "team-{image}" }

[[images]]
name = "registry.example.com/team/web"
tags = ["1.0"]
context = "services/{image}"
dockerfile = "{image}.Dockerfile"
platforms = ["linux/amd64"]
build_args = { APP = "{image}" }
"""


def test_each_image_gets_its_own_name(tmp_path: Path) -> None:
    for name in ("api", "web"):
        (tmp_path / "services" / name).mkdir(parents=True)
        (tmp_path / "services" / name / f"{name}.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "matui.toml").write_text(IMAGES)
    api, web = load_config(tmp_path / "matui.toml").images
    assert api.context == tmp_path / "services/api" and api.dockerfile == "api.Dockerfile"
    assert dict(api.build_args) == {"APP": "api", "JSON": '{"a": 1}'}  # other braces kept
    assert dict(api.labels) == {"org.example.app": "team-api"}
    assert web.context == tmp_path / "services/web" and dict(web.build_args) == {"APP": "web"}


def test_a_context_missing_for_one_image_names_that_image_and_the_path(tmp_path: Path) -> None:
    (tmp_path / "services" / "api").mkdir(parents=True)
    (tmp_path / "services" / "api" / "api.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "matui.toml").write_text(IMAGES)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "matui.toml")
    text = str(caught.value)
    assert "images[1].context" in text and str(tmp_path / "services/web") in text


def test_image_labels_are_short_and_unique() -> None:
    assert image_labels(["r:5000/team/api", "r:5000/team/web"]) == {
        "r:5000/team/api": "api",
        "r:5000/team/web": "web",
    }
    assert image_labels(["r/a/app", "r/b/app"]) == {"r/a/app": "a/app", "r/b/app": "b/app"}
