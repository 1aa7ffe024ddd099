"""max_jobs, per host or in [defaults]: how many matui builds a host runs at once; checked like
every key (a clear one-line error naming the key and the fix), no cap when left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from matui.engine.config import ConfigError, load_config

HOSTS = """
[defaults]
{defaults}

[[hosts]]
name = "amd64-1"
arch = "amd64"
address = "192.0.2.10"
{first}

[[hosts]]
name = "amd64-2"
arch = "amd64"
address = "192.0.2.11"
"""


def write(tmp_path: Path, defaults: str = "", first: str = "") -> Path:
    path = tmp_path / "matui.toml"
    path.write_text(HOSTS.format(defaults=defaults, first=first))
    return path


def test_no_cap_by_default_and_defaults_apply_unless_a_host_sets_its_own(tmp_path: Path) -> None:
    assert [h.max_jobs for h in load_config(write(tmp_path)).hosts] == [None, None]
    config = load_config(write(tmp_path, "max_jobs = 3", "max_jobs = 1"))
    assert [h.max_jobs for h in config.hosts] == [1, 3]


@pytest.mark.parametrize(
    ("defaults", "first", "path", "says"),
    [
        ("", "max_jobs = 0", "hosts[0].max_jobs", "0 is not a number of jobs; use 1 to 256"),
        ("max_jobs = 1000", "", "defaults.max_jobs", "1000 is not a number of jobs"),
        ("", 'max_jobs = "2"', "hosts[0].max_jobs", "max_jobs = 2"),
        ("", "max_jobs = true", "hosts[0].max_jobs", "max_jobs = 2"),
    ],
)
def test_a_bad_max_jobs_names_the_key_and_the_fix(
    tmp_path: Path, defaults: str, first: str, path: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, defaults, first))
    (problem,) = caught.value.problems
    assert problem.path == path
    assert says in problem.message
