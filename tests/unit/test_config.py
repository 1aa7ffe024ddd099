"""matui.engine.config: checking, lookup, and writing the config file."""

from __future__ import annotations

import copy
import os
import re
import shutil
import stat
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matui.engine.arch import ARCHES, Platform
from matui.engine.config import (
    Config,
    ConfigError,
    ConfigRewrittenWarning,
    HostConfig,
    ImageConfig,
    Problem,
    SshTarget,
    add_host,
    default_config_path,
    find_config,
    format_ssh_target,
    load_config,
    parse_config,
    parse_ssh_target,
    write_starter_config,
)
from matui.engine.config import checker as config_module

REPO = Path(__file__).resolve().parents[2]

Data = dict[str, Any]


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    """A directory with a build context, an identity file and a known_hosts file."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app" / "docker").mkdir()
    (tmp_path / "app" / "docker" / "Dockerfile.prod").write_text("FROM scratch\n")
    (tmp_path / "outside.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "id_test").write_text("not really a key\n")
    (tmp_path / "known_hosts").write_text("")
    return tmp_path


def base() -> Data:
    """A valid document: two hosts (one through the other) and one two-platform image."""
    return {
        "hosts": [
            {
                "name": "amd64-1",
                "arch": "amd64",
                "address": "build1.example.com",
                "identity": "id_test",
                "known_hosts": "known_hosts",
            },
            {
                "name": "arm64-1",
                "arch": "aarch64",
                "address": "10.0.0.2",
                "port": 2222,
                "user": "builder",
                "jump": "amd64-1",
            },
        ],
        "images": [
            {
                "name": "registry.example.com/team/app",
                "tags": ["1.0", "latest"],
                "context": "app",
                "platforms": ["linux/amd64", "linux/arm64"],
            }
        ],
    }


def parse(data: Data | str, proj: Path) -> Config:
    text = data if isinstance(data, str) else tomli_w.dumps(data)
    return parse_config(text, proj / "matui.toml", proj)


def problems(data: Data | str, proj: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        parse(data, proj)
    return info.value.problems


def only_problem(data: Data | str, proj: Path) -> Problem:
    found = problems(data, proj)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


# -- a valid config -----------------------------------------------------------------------------


def test_valid_config_loads(proj: Path) -> None:
    config = parse(base(), proj)
    assert config.path == proj / "matui.toml"
    amd, arm = config.hosts
    assert amd == HostConfig(
        name="amd64-1",
        arch="amd64",
        address="build1.example.com",
        identity=proj / "id_test",
        known_hosts=proj / "known_hosts",
    )
    assert arm.arch == "arm64"  # normalised from aarch64
    assert (arm.port, arm.user, arm.jump) == (2222, "builder", "amd64-1")
    (image,) = config.images
    assert image.name == "registry.example.com/team/app"
    assert image.tags == ("1.0", "latest")
    assert image.context == proj / "app"
    assert image.context.is_absolute()
    assert image.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64"))
    assert image.dockerfile == "Dockerfile"
    assert dict(image.build_args) == {}
    assert dict(image.labels) == {}
    assert image.arch_tag == "{tag}-{arch}"
    assert image.target is None
    assert image.retired_platforms == ()


def test_empty_config_is_valid(proj: Path) -> None:
    config = parse("", proj)
    assert config.hosts == ()
    assert config.images == ()


def test_every_optional_key(proj: Path) -> None:
    data = base()
    data["hosts"][0]["allow_emulation"] = True
    data["images"][0].update(
        {
            "dockerfile": "docker/Dockerfile.prod",
            "build_args": {"VERSION": "1.0", "_EMPTY": ""},
            "labels": {"org.opencontainers.image.source": "https://git.example.com/app"},
            "arch_tag": "{arch}-{tag}",
            "target": "runtime",
            "retired_platforms": ["linux/arm/v6"],
            "platforms": ["linux/amd64", "linux/arm64", "linux/armv7"],
        }
    )
    config = parse(data, proj)
    assert config.hosts[0].allow_emulation is True
    image = config.images[0]
    assert image.dockerfile == "docker/Dockerfile.prod"
    assert dict(image.build_args) == {"VERSION": "1.0", "_EMPTY": ""}
    assert image.labels["org.opencontainers.image.source"] == "https://git.example.com/app"
    assert image.target == "runtime"
    assert image.retired_platforms == (Platform("linux", "arm/v6"),)
    assert image.platforms[2] == Platform("linux", "arm/v7")
    assert image.arch_tag_for("1.0", image.platforms[2]) == "armv7-1.0"
    assert str(image.repository()) == "registry.example.com/team/app"


def test_config_values_are_immutable(proj: Path) -> None:
    data = base()
    data["images"][0]["build_args"] = {"A": "1"}
    image = parse(data, proj).images[0]
    with pytest.raises(TypeError):
        image.build_args["A"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        image.name = "x"  # type: ignore[misc]


def test_defaults_apply_to_hosts_that_leave_keys_out(proj: Path) -> None:
    data = base()
    data["defaults"] = {"user": "ci", "identity": "id_test", "known_hosts": "known_hosts"}
    (proj / "other_key").write_text("")
    data["hosts"][1]["identity"] = "other_key"
    amd, arm = parse(data, proj).hosts
    assert amd.user == "ci"
    assert arm.user == "builder"  # its own value wins
    assert arm.identity == proj / "other_key"
    assert arm.known_hosts == proj / "known_hosts"


def test_paths_expand_home(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = proj / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("")
    monkeypatch.setenv("HOME", str(home))
    data = base()
    data["hosts"][0]["identity"] = "~/.ssh/id_ed25519"
    assert parse(data, proj).hosts[0].identity == home / ".ssh" / "id_ed25519"


def test_absolute_paths_are_kept(proj: Path) -> None:
    data = base()
    data["images"][0]["context"] = str(proj / "app")
    data["hosts"][0]["identity"] = str(proj / "id_test")
    data["hosts"][0]["known_hosts"] = str(proj / "known_hosts")
    config = parse_config(tomli_w.dumps(data), None, Path("/nonexistent"))
    assert config.images[0].context == proj / "app"
    assert config.path is None


def test_ipv6_address_in_brackets_is_accepted(proj: Path) -> None:
    data = base()
    data["hosts"][1]["address"] = "[2001:db8::7]"
    host = parse(data, proj).hosts[1]
    assert host.address == "2001:db8::7"
    assert host.label() == "arm64-1 (builder@[2001:db8::7]:2222)"


@pytest.mark.parametrize(
    "jump", ["ops@bastion.example.com:2222", "bastion.example.com", "ops@bastion", "[::1]:22"]
)
def test_jump_to_an_outside_host(proj: Path, jump: str) -> None:
    data = base()
    data["hosts"][1]["jump"] = jump
    assert parse(data, proj).hosts[1].jump == jump


def test_jump_may_name_a_later_host(proj: Path) -> None:
    data = base()
    data["hosts"][0]["jump"] = "arm64-1"
    del data["hosts"][1]["jump"]
    assert parse(data, proj).hosts[0].jump == "arm64-1"


# -- one problem per kind of mistake ------------------------------------------------------------

Mutate = Callable[[Data], None]


def _set(*keys: str | int, value: Any) -> Mutate:
    def mutate(data: Data) -> None:
        target: Any = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _del(*keys: str | int) -> Mutate:
    def mutate(data: Data) -> None:
        target: Any = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


def _host(**values: Any) -> Mutate:
    def mutate(data: Data) -> None:
        data["hosts"].append({"name": "extra", "arch": "amd64", "address": "h3", **values})

    return mutate


def _image(**values: Any) -> Mutate:
    def mutate(data: Data) -> None:
        entry = copy.deepcopy(data["images"][0])
        entry.update(values)
        data["images"].append(entry)

    return mutate


ARCH_LIST = "amd64, arm64, arm/v7, arm/v6, 386, ppc64le, s390x, riscv64"

MISTAKES: list[tuple[str, Mutate, str, list[str]]] = [
    # unknown keys
    ("unknown top key", _set("host", value=[]), "host", ['did you mean "hosts"?']),
    ("unknown defaults key", _set("defaults", value={"usr": "x"}), "defaults.usr", ['"user"']),
    ("unknown host key", _set("hosts", 0, "adress", value="x"), "hosts[0].adress", ['"address"']),
    (
        "unknown key, nothing close",
        _set("hosts", 1, "colour", value="red"),
        "hosts[1].colour",
        ["valid keys here: name, arch, address"],
    ),
    (
        "unknown image key",
        _set("images", 0, "platform", value=["linux/amd64"]),
        "images[0].platform",
        ['did you mean "platforms"?'],
    ),
    (
        "unknown key needing quotes",
        _set("images", 0, "build args", value={}),
        'images[0]."build args"',
        ['"build_args"'],
    ),
    # missing required keys
    ("missing host name", _del("hosts", 0, "name"), "hosts[0].name", ['add name = "']),
    (
        "missing host arch",
        _del("hosts", 1, "arch"),
        "hosts[1].arch",
        ['add arch = "arm64" to the [[hosts]] entry named "arm64-1"'],
    ),
    ("missing address", _del("hosts", 0, "address"), "hosts[0].address", ["add address = "]),
    ("missing image name", _del("images", 0, "name"), "images[0].name", ["add name = "]),
    ("missing tags", _del("images", 0, "tags"), "images[0].tags", ["add tags = ["]),
    ("missing context", _del("images", 0, "context"), "images[0].context", ["add context = "]),
    (
        "missing platforms",
        _del("images", 0, "platforms"),
        "images[0].platforms",
        ["add platforms = ["],
    ),
    # wrong types
    (
        "port as string",
        _set("hosts", 1, "port", value="2222"),
        "hosts[1].port",
        ["expected an integer", 'got a string ("2222")', "port = 22"],
    ),
    (
        "port as bool",
        _set("hosts", 1, "port", value=True),
        "hosts[1].port",
        ["expected an integer", "got a boolean"],
    ),
    (
        "arch as integer",
        _set("hosts", 0, "arch", value=64),
        "hosts[0].arch",
        ["expected a string", 'arch = "arm64"'],
    ),
    (
        "emulation as string",
        _set("hosts", 0, "allow_emulation", value="yes"),
        "hosts[0].allow_emulation",
        ["expected a boolean (true or false)", "allow_emulation = true"],
    ),
    (
        "tags as string",
        _set("images", 0, "tags", value="1.0"),
        "images[0].tags",
        ["expected an array", 'tags = ["1.0"'],
    ),
    (
        "tag as number",
        _set("images", 0, "tags", value=["1.0", 2]),
        "images[0].tags[1]",
        ["expected a string, got an integer (2)"],
    ),
    (
        "platform as table",
        _set("images", 0, "platforms", value=["linux/amd64", {"os": "linux"}]),
        "images[0].platforms[1]",
        ["expected a string, got a table"],
    ),
    (
        "build_args as array",
        _set("images", 0, "build_args", value=["A=1"]),
        "images[0].build_args",
        ["expected a table", "build_args = {"],
    ),
    (
        "defaults as array",
        _set("defaults", value=[{"user": "x"}]),
        "defaults",
        ["expected a table", "[defaults]"],
    ),
    (
        "hosts as array of strings",
        _set("hosts", value=["amd64-1"]),
        "hosts[0]",
        ["expected a table", "[[hosts]]"],
    ),
    (
        "images as string",
        _set("images", value="registry.example.com/app"),
        "images",
        ["expected an array of tables", "[[images]]"],
    ),
    # hosts
    (
        "bad arch",
        _set("hosts", 1, "arch", value="arm65"),
        "hosts[1].arch",
        [f'"arm65" is not an architecture; use one of {ARCH_LIST}'],
    ),
    (
        "bad host name",
        _set("hosts", 0, "name", value="-amd"),
        "hosts[0].name",
        ["not a valid host name", 'name = "arm64-1"'],
    ),
    (
        "duplicate host name",
        _host(name="amd64-1"),
        "hosts[2].name",
        ["already the name of hosts[0]", "rename one"],
    ),
    (
        "port too big",
        _set("hosts", 1, "port", value=65536),
        "hosts[1].port",
        ["65536 is not a TCP port", "1 to 65535"],
    ),
    ("port zero", _set("hosts", 1, "port", value=0), "hosts[1].port", ["1 to 65535"]),
    (
        "user in address",
        _set("hosts", 0, "address", value="me@build1"),
        "hosts[0].address",
        ['write user = "me" and address = "build1"'],
    ),
    (
        "port in address",
        _set("hosts", 0, "address", value="build1:2200"),
        "hosts[0].address",
        ['write port = 2200 and address = "build1"'],
    ),
    (
        "address like an option",
        _set("hosts", 0, "address", value="-oProxyCommand=x"),
        "hosts[0].address",
        ["not a host name", 'address = "build1.example.com"'],
    ),
    (
        "bad user",
        _set("hosts", 1, "user", value="-oProxyCommand=x"),
        "hosts[1].user",
        ["not a user name", 'user = "builder"'],
    ),
    (
        "missing identity",
        _set("hosts", 0, "identity", value="keys/nope"),
        "hosts[0].identity",
        ["does not exist", "ssh-keygen -t ed25519 -f"],
    ),
    (
        "identity is a directory",
        _set("hosts", 0, "identity", value="app"),
        "hosts[0].identity",
        ["is not a file"],
    ),
    (
        "missing known_hosts",
        _set("hosts", 0, "known_hosts", value="nope_hosts"),
        "hosts[0].known_hosts",
        ["does not exist", "ssh-keyscan build1.example.com >>"],
    ),
    (
        "missing known_hosts, with port",
        _set("hosts", 1, "known_hosts", value="nope_hosts"),
        "hosts[1].known_hosts",
        ["ssh-keyscan -p 2222 10.0.0.2 >>"],
    ),
    (
        "missing identity in defaults",
        _set("defaults", value={"identity": "nope"}),
        "defaults.identity",
        ["does not exist", "ssh-keygen"],
    ),
    (
        "empty path",
        _set("hosts", 0, "identity", value=""),
        "hosts[0].identity",
        ["is empty", "leave the key out"],
    ),
    (
        "jump to unknown host",
        _set("hosts", 1, "jump", value="amd64-2"),
        "hosts[1].jump",
        ['did you mean "amd64-1"?', "name a [[hosts]] entry, or write user@host[:port]"],
    ),
    (
        "jump to itself",
        _set("hosts", 1, "jump", value="arm64-1"),
        "hosts[1].jump",
        ["jumps through itself", "remove jump"],
    ),
    (
        "jump cycle",
        _set("hosts", 0, "jump", value="arm64-1"),
        "hosts[0].jump",
        ["cycle (amd64-1 → arm64-1 → amd64-1)", "remove jump from one of them"],
    ),
    (
        "jump with a bad port",
        _set("hosts", 1, "jump", value="ops@bastion:99999"),
        "hosts[1].jump",
        ["1 to 65535", "[user@]host[:port]"],
    ),
    (
        "jump with a bad user",
        _set("hosts", 1, "jump", value="-J@bastion"),
        "hosts[1].jump",
        ["not a valid user name"],
    ),
    # images
    (
        "image without registry",
        _set("images", 0, "name", value="team/app"),
        "images[0].name",
        ["no registry host", "registry.example.com/team/app"],
    ),
    (
        "image with a tag",
        _set("images", 0, "name", value="registry.example.com/team/app:1.0"),
        "images[0].name",
        ["includes a tag or digest", "list tags under tags"],
    ),
    (
        "image with uppercase path",
        _set("images", 0, "name", value="registry.example.com/Team/App"),
        "images[0].name",
        ["not a valid repository path", "lowercase"],
    ),
    (
        "duplicate image",
        _image(tags=["2.0"]),
        "images[1].name",
        ["already configured at images[0]", "merge the two entries"],
    ),
    (
        "bad tag",
        _set("images", 0, "tags", value=["1.0", "-rc"]),
        "images[0].tags[1]",
        ['"-rc" is not a valid tag', "may not start with . or -"],
    ),
    (
        "duplicate tag",
        _set("images", 0, "tags", value=["1.0", "latest", "1.0"]),
        "images[0].tags[2]",
        ["already listed at images[0].tags[0]", "remove it"],
    ),
    ("no tags", _set("images", 0, "tags", value=[]), "images[0].tags", ["at least one tag"]),
    (
        "missing context dir",
        _set("images", 0, "context", value="src"),
        "images[0].context",
        ["does not exist", "directory that holds the Dockerfile"],
    ),
    (
        "context is a file",
        _set("images", 0, "context", value="id_test"),
        "images[0].context",
        ["is not a directory"],
    ),
    (
        "no Dockerfile in context",
        _set("images", 0, "dockerfile", value="Containerfile"),
        "images[0].dockerfile",
        ["no Dockerfile at", "relative to context"],
    ),
    (
        "dockerfile outside context",
        _set("images", 0, "dockerfile", value="../outside.Dockerfile"),
        "images[0].dockerfile",
        ["outside the build context", "move the Dockerfile into the context"],
    ),
    (
        "absolute dockerfile",
        _set("images", 0, "dockerfile", value="/etc/passwd"),
        "images[0].dockerfile",
        ["relative to the build context"],
    ),
    (
        "bad platform",
        _set("images", 0, "platforms", value=["linux/amd64", "linux/arm65"]),
        "images[0].platforms[1]",
        ['"linux/arm65"', "use one of"],
    ),
    (
        "platform of another os",
        _set("images", 0, "platforms", value=["linux/amd64", "windows/amd64"]),
        "images[0].platforms[1]",
        ["only linux", "linux/ARCH"],
    ),
    (
        "platform not os/arch",
        _set("images", 0, "platforms", value=["amd64"]),
        "images[0].platforms[0]",
        ["os/arch[/variant]", "linux/arm64"],
    ),
    (
        "duplicate platform after normalising",
        _set("images", 0, "platforms", value=["linux/amd64", "linux/arm64", "linux/aarch64"]),
        "images[0].platforms[2]",
        ['same platform as images[0].platforms[1] ("linux/arm64")', "remove one"],
    ),
    (
        "no platforms",
        _set("images", 0, "platforms", value=[]),
        "images[0].platforms",
        ["at least one", "platforms = ["],
    ),
    (
        "retired and built",
        _set("images", 0, "retired_platforms", value=["linux/arm/v7", "linux/aarch64"]),
        "images[0].retired_platforms[1]",
        ["also in platforms", "remove it from one"],
    ),
    (
        "bad retired platform",
        _set("images", 0, "retired_platforms", value=["linux/mips"]),
        "images[0].retired_platforms[0]",
        ["not an architecture"],
    ),
    (
        "bad build arg name",
        _set("images", 0, "build_args", value={"1X": "a"}),
        "images[0].build_args.1X",
        ["not a valid name", "letters, digits and _"],
    ),
    (
        "build arg name needing quotes",
        _set("images", 0, "build_args", value={"A-B": "a"}),
        "images[0].build_args.A-B",
        ["not a valid name"],
    ),
    (
        "build arg not a string",
        _set("images", 0, "build_args", value={"FOO": 1}),
        "images[0].build_args.FOO",
        ["expected a string, got an integer", 'quote it: FOO = "1"'],
    ),
    (
        "bad label key",
        _set("images", 0, "labels", value={"a=b": "c"}),
        'images[0].labels."a=b"',
        ["not a valid name", "org.opencontainers.image.source"],
    ),
    (
        "arch_tag unknown placeholder",
        _set("images", 0, "arch_tag", value="{tag}-{platform}"),
        "images[0].arch_tag",
        ["unknown placeholder {platform}", "only {tag} and {arch}"],
    ),
    (
        "arch_tag format spec",
        _set("images", 0, "arch_tag", value="{tag:>5}-{arch}"),
        "images[0].arch_tag",
        ["unknown placeholder {tag:>5}"],
    ),
    (
        "arch_tag positional",
        _set("images", 0, "arch_tag", value="{}-{arch}"),
        "images[0].arch_tag",
        ["unknown placeholder {}"],
    ),
    (
        "arch_tag unbalanced",
        _set("images", 0, "arch_tag", value="{tag-{arch}"),
        "images[0].arch_tag",
        ["unbalanced braces", 'arch_tag = "{tag}-{arch}"'],
    ),
    (
        "arch_tag without arch, two platforms",
        _set("images", 0, "arch_tag", value="{tag}-build"),
        "images[0].arch_tag",
        ["has no {arch}", "tag-overwrite", "add {arch}"],
    ),
    (
        "arch_tag gives a release tag",
        _set("images", 0, "tags", value=["1.0", "1.0-arm64"]),
        "images[0].arch_tag",
        ['gives "1.0-arm64"', "also a release tag", "tag-overwrite", "change arch_tag or tags"],
    ),
    (
        "arch_tag gives an invalid tag",
        _set("images", 0, "arch_tag", value="{tag}+{arch}"),
        "images[0].arch_tag",
        ['gives "1.0+amd64"', "not a valid tag", "change arch_tag"],
    ),
    (
        "arch_tag too long",
        _set("images", 0, "arch_tag", value="{tag}-{arch}-" + "x" * 120),
        "images[0].arch_tag",
        ["not a valid tag", "1-128 characters"],
    ),
    (
        "bad target",
        _set("images", 0, "target", value="my stage"),
        "images[0].target",
        ["not a stage name", "after AS in a FROM line"],
    ),
    # control characters anywhere
    (
        "newline in host name",
        _set("hosts", 0, "name", value="amd\n64"),
        "hosts[0].name",
        ['"amd\\n64" contains control characters (0x0a)', "remove them"],
    ),
    (
        "escape in address",
        _set("hosts", 0, "address", value="build1\x1b[2J"),
        "hosts[0].address",
        ["control characters (0x1b)"],
    ),
    (
        "newline in image name",
        _set("images", 0, "name", value="registry.example.com/app\n"),
        "images[0].name",
        ["control characters (0x0a)"],
    ),
    (
        "NUL in tag",
        _set("images", 0, "tags", value=["1.0", "x\x00"]),
        "images[0].tags[1]",
        ["control characters (0x00)"],
    ),
    (
        "tab in context",
        _set("images", 0, "context", value="app\t"),
        "images[0].context",
        ["control characters (0x09)"],
    ),
    (
        "newline in identity",
        _set("hosts", 0, "identity", value="id_test\n"),
        "hosts[0].identity",
        ["control characters (0x0a)"],
    ),
    (
        "newline in build arg",
        _set("images", 0, "build_args", value={"FOO": "a\nb"}),
        "images[0].build_args.FOO",
        ["control characters (0x0a)"],
    ),
    (
        "DEL in label value",
        _set("images", 0, "labels", value={"x": "a\x7f"}),
        "images[0].labels.x",
        ["control characters (0x7f)"],
    ),
    (
        "newline in label key",
        _set("images", 0, "labels", value={"a\nb": "c"}),
        'images[0].labels."a\\nb"',
        ["control characters (0x0a)"],
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "fixes"),
    [pytest.param(m, p, f, id=i) for i, m, p, f in MISTAKES],
)
def test_each_mistake_is_one_problem(
    proj: Path, mutate: Mutate, path: str, fixes: list[str]
) -> None:
    data = base()
    mutate(data)
    problem = only_problem(data, proj)
    assert problem.path == path, str(problem)
    for fix in fixes:
        assert fix in problem.message, str(problem)
    assert str(problem) == f"{path}: {problem.message}"


def test_toml_syntax_error_is_a_problem_with_line_and_column(proj: Path) -> None:
    text = '[[hosts]]\nname = "a"\narch = arm64\n'
    problem = only_problem(text, proj)
    assert problem.path == "syntax"
    assert "line 3" in problem.message
    assert "column" in problem.message
    assert "double quotes" in problem.message


def test_hosts_as_plain_table(proj: Path) -> None:
    problem = only_problem('[hosts]\nname = "a"\n', proj)
    assert problem.path == "hosts"
    assert "[[hosts]] section (double brackets), not [hosts]" in problem.message


def test_unquoted_dotted_label_key(proj: Path) -> None:
    text = tomli_w.dumps(base()) + (
        '\n[images.labels]\norg.opencontainers.image.source = "https://x"\n'
    )
    problem = only_problem(text, proj)
    assert problem.path == "images[0].labels.org"
    assert '"org.opencontainers.image.source" = ' in problem.message


def test_single_platform_may_omit_arch(proj: Path) -> None:
    data = base()
    data["images"][0]["platforms"] = ["linux/arm64"]
    data["images"][0]["arch_tag"] = "{tag}-native"
    image = parse(data, proj).images[0]
    assert image.arch_tag_for("1.0", image.platforms[0]) == "1.0-native"


def test_single_platform_arch_tag_equal_to_tag_is_refused(proj: Path) -> None:
    data = base()
    data["images"][0]["platforms"] = ["linux/arm64"]
    data["images"][0]["arch_tag"] = "{tag}"
    problem = only_problem(data, proj)
    assert problem.path == "images[0].arch_tag"
    assert "tag-overwrite" in problem.message


def test_many_mistakes_are_all_reported(proj: Path) -> None:
    data = base()
    data["hosts"][0]["arch"] = "arm65"
    data["hosts"][0]["adress"] = "x"
    data["hosts"][1]["port"] = 0
    data["hosts"][1]["jump"] = "nobody"
    data["images"][0]["tags"] = ["ok", "bad tag"]
    data["images"][0]["platforms"] = ["linux/amd64", "linux/amd64"]
    data["images"][0]["build_args"] = {"X": "\n"}
    data["extra"] = 1
    found = problems(data, proj)
    paths = [p.path for p in found]
    assert sorted(paths) == sorted(
        [
            "extra",
            "hosts[0].adress",
            "hosts[0].arch",
            "hosts[1].port",
            "hosts[1].jump",
            "images[0].tags[1]",
            "images[0].platforms[1]",
            "images[0].build_args.X",
        ]
    )


def test_config_error_text_has_file_line_then_one_line_per_problem(proj: Path) -> None:
    data = base()
    data["hosts"][1]["arch"] = "arm65"
    data["images"][0]["tags"] = []
    with pytest.raises(ConfigError) as info:
        parse(data, proj)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{proj / 'matui.toml'}:"
    assert lines[1].strip() == (
        f'hosts[1].arch: "arm65" is not an architecture; use one of {ARCH_LIST}'
    )
    assert lines[2].strip().startswith("images[0].tags: is empty")
    assert len(lines) == 3
    assert info.value.file == proj / "matui.toml"


def test_config_error_without_file() -> None:
    error = ConfigError([Problem("a", "b"), Problem("c", "d")])
    assert str(error) == "a: b\nc: d"
    assert error.file is None


def test_a_three_host_jump_cycle_is_one_problem(proj: Path) -> None:
    data = base()
    data["hosts"].append({"name": "c", "arch": "amd64", "address": "c", "jump": "amd64-1"})
    data["hosts"][0]["jump"] = "arm64-1"
    data["hosts"][1]["jump"] = "c"
    problem = only_problem(data, proj)
    assert problem.path == "hosts[0].jump"
    assert "amd64-1 → arm64-1 → c → amd64-1" in problem.message


# -- lookups on a Config ------------------------------------------------------------------------


def test_host_lookup(proj: Path) -> None:
    config = parse(base(), proj)
    assert config.host("arm64-1").arch == "arm64"
    with pytest.raises(ConfigError) as info:
        config.host("arm64-2")
    message = str(info.value)
    assert 'no host named "arm64-2"' in message
    assert 'did you mean "arm64-1"?' in message
    assert "amd64-1, arm64-1" in message
    assert "matui host add" in message


def test_host_lookup_without_hosts(proj: Path) -> None:
    with pytest.raises(ConfigError, match="no hosts are configured"):
        parse("", proj).host("x")


def test_image_lookup(proj: Path) -> None:
    data = base()
    data["images"].append(
        {
            "name": "registry.example.com/team/web",
            "tags": ["2"],
            "context": "app",
            "platforms": ["linux/amd64"],
        }
    )
    config = parse(data, proj)
    assert config.image("registry.example.com/team/web").tags == ("2",)
    assert config.image("team/web").tags == ("2",)
    assert config.image("app").tags == ("1.0", "latest")
    with pytest.raises(ConfigError) as info:
        config.image(None)
    assert "choose one of: registry.example.com/team/app, registry.example.com/team/web" in str(
        info.value
    )
    with pytest.raises(ConfigError, match='no image named "wbe"'):
        config.image("wbe")


def test_image_lookup_single_and_none(proj: Path) -> None:
    assert parse(base(), proj).image(None).name == "registry.example.com/team/app"
    with pytest.raises(ConfigError, match=r"no images are configured.*\[\[images\]\]"):
        parse("", proj).image(None)


def test_host_label() -> None:
    assert HostConfig("a", "amd64", "h").label() == "a (h)"
    assert HostConfig("a", "amd64", "h", port=22, user="u").label() == "a (u@h:22)"
    assert HostConfig("a", "amd64", "::1", port=22).label() == "a ([::1]:22)"


def test_arch_tag_for() -> None:
    image = ImageConfig(
        name="registry.example.com/app",
        tags=("1.0",),
        context=Path("/"),
        platforms=(Platform.parse("linux/arm/v7"),),
    )
    assert image.arch_tag_for("1.0", image.platforms[0]) == "1.0-armv7"


# -- ssh targets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("host", SshTarget(None, "host", None)),
        ("user@host", SshTarget("user", "host", None)),
        ("user@host:2222", SshTarget("user", "host", 2222)),
        ("host:22", SshTarget(None, "host", 22)),
        ("10.0.0.1:22", SshTarget(None, "10.0.0.1", 22)),
        ("[::1]:22", SshTarget(None, "::1", 22)),
        ("me@[2001:db8::1]:2200", SshTarget("me", "2001:db8::1", 2200)),
        ("[::1]", SshTarget(None, "::1", None)),
        ("fe80::1%eth0", SshTarget(None, "fe80::1%eth0", None)),
    ],
)
def test_parse_ssh_target(text: str, target: SshTarget) -> None:
    assert parse_ssh_target(text) == target


FIX = r"; write \[user@\]host\[:port\], e\.g\. "


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r'"" is not a host name or address' + FIX),
        ("user@", r'"" is not a host name or address' + FIX),
        ("host:0", "the port must be a number from 1 to 65535" + FIX),
        ("host:65536", "the port must be a number from 1 to 65535" + FIX),
        ("host:x", "the port must be a number from 1 to 65535" + FIX),
        ("[::1", r"has an unclosed \[" + FIX),
        ("[::1]x", "has text after ]" + FIX),
        ("-oProxyCommand=x", r'"-oProxyCommand=x" is not a host name or address' + FIX),
        ("a\nb", r"contains control characters \(0x0a\); remove them"),
    ],
)
def test_parse_ssh_target_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ssh_target(text)


def test_format_ssh_target() -> None:
    assert format_ssh_target(None, "h", None) == "h"
    assert format_ssh_target("u", "::1", 22) == "u@[::1]:22"


# -- finding the file ---------------------------------------------------------------------------


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """Every place a config may be, each holding one; env points at them."""
    home = tmp_path / "home"
    paths = {
        "cwd": tmp_path / "work",
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "env.toml",
        "local": tmp_path / "work" / "matui.toml",
        "xdg": tmp_path / "xdg" / "matui" / "config.toml",
        "home": home / ".config" / "matui" / "config.toml",
    }
    paths["cwd"].mkdir()
    for key in ("explicit", "env", "local", "xdg", "home"):
        paths[key].parent.mkdir(parents=True, exist_ok=True)
        paths[key].write_text("")
    return paths


def _env(places: dict[str, Path], **extra: str) -> dict[str, str]:
    return {"HOME": str(places["home"].parents[2]), **extra}


def test_lookup_order(places: dict[str, Path]) -> None:
    cwd = places["cwd"]
    env = _env(
        places, MATUI_CONFIG=str(places["env"]), XDG_CONFIG_HOME=str(places["xdg"].parents[1])
    )
    assert find_config(places["explicit"], env, cwd) == places["explicit"]
    assert find_config(None, env, cwd) == places["env"]
    del env["MATUI_CONFIG"]
    assert find_config(None, env, cwd) == places["local"]
    places["local"].unlink()
    assert find_config(None, env, cwd) == places["xdg"]
    del env["XDG_CONFIG_HOME"]
    assert find_config(None, env, cwd) == places["home"]


def test_empty_env_values_count_as_unset(places: dict[str, Path]) -> None:
    env = _env(places, MATUI_CONFIG="", XDG_CONFIG_HOME="")
    assert find_config(None, env, places["cwd"]) == places["local"]


def test_relative_xdg_config_home_is_ignored(places: dict[str, Path]) -> None:
    places["local"].unlink()
    env = _env(places, XDG_CONFIG_HOME="relative/dir")
    assert find_config(None, env, places["cwd"]) == places["home"]


def test_relative_paths_start_at_cwd(places: dict[str, Path]) -> None:
    cwd = places["cwd"]
    (cwd / "sub").mkdir()
    (cwd / "sub" / "c.toml").write_text("")
    assert find_config(Path("sub/c.toml"), _env(places), cwd) == cwd / "sub" / "c.toml"
    env = _env(places, MATUI_CONFIG="sub/c.toml")
    assert find_config(None, env, cwd) == cwd / "sub" / "c.toml"


def test_explicit_path_must_exist(places: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as info:
        find_config(places["cwd"] / "nope.toml", _env(places), places["cwd"])
    (problem,) = info.value.problems
    assert problem.path == "--config"
    assert "does not exist" in problem.message
    assert "matui init" in problem.message


def test_explicit_path_must_be_a_file(places: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        find_config(places["cwd"], _env(places), places["cwd"])


def test_env_path_must_exist(places: dict[str, Path]) -> None:
    env = _env(places, MATUI_CONFIG=str(places["cwd"] / "gone.toml"))
    with pytest.raises(ConfigError) as info:
        find_config(None, env, places["cwd"])
    (problem,) = info.value.problems
    assert problem.path == "$MATUI_CONFIG"
    assert "gone.toml" in problem.message
    assert "unset MATUI_CONFIG" in problem.message


def test_not_found_names_every_place_and_the_fix(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    with pytest.raises(ConfigError) as info:
        find_config(None, env, tmp_path)
    (problem,) = info.value.problems
    message = problem.message
    assert "--config (not given)" in message
    assert "$MATUI_CONFIG (not set)" in message
    assert str(tmp_path / "matui.toml") in message
    assert str(tmp_path / "xdg" / "matui" / "config.toml") in message
    assert "`matui init`" in message
    assert "--config PATH" in message


def test_default_config_path(tmp_path: Path) -> None:
    assert default_config_path({"HOME": "/h"}) == Path("/h/.config/matui/config.toml")
    xdg = {"HOME": "/h", "XDG_CONFIG_HOME": "/x"}
    assert default_config_path(xdg) == Path("/x/matui/config.toml")


# -- loading ------------------------------------------------------------------------------------


def test_load_config_resolves_relative_to_the_file(proj: Path, tmp_path: Path) -> None:
    path = proj / "matui.toml"
    path.write_text(tomli_w.dumps(base()))
    config = load_config(path)
    assert config.path == path
    assert config.images[0].context == proj / "app"


def test_load_missing_file_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "matui.toml")
    assert "does not exist" in str(info.value)
    assert "matui init" in str(info.value)


def test_load_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_load_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_text("[[hosts]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == path
    assert info.value.problems[0].path == "syntax"
    assert "line 1" in info.value.problems[0].message


# -- the example --------------------------------------------------------------------------------


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("")
    (home / ".ssh" / "known_hosts").write_text("")
    monkeypatch.setenv("HOME", str(home))
    return home


def test_example_config_loads(fake_home: Path) -> None:
    config = load_config(REPO / "config.example.toml")
    assert [h.arch for h in config.hosts] == ["amd64", "arm64"]
    assert any(h.jump for h in config.hosts)
    assert all(h.identity == fake_home / ".ssh" / "id_ed25519" for h in config.hosts)
    (image,) = config.images
    assert len(image.platforms) == 2
    assert image.context == REPO / "examples" / "hello"


def test_example_config_loads_from_a_copy(fake_home: Path, tmp_path: Path) -> None:
    copy_dir = tmp_path / "copy"
    shutil.copytree(REPO / "examples", copy_dir / "examples")
    shutil.copy(REPO / "config.example.toml", copy_dir / "matui.toml")
    assert load_config(copy_dir / "matui.toml").images[0].context == copy_dir / "examples/hello"


def test_example_config_documents_every_key() -> None:
    text = (REPO / "config.example.toml").read_text()
    keys = {
        *config_module._DEFAULT_KEYS,
        *config_module._HOST_KEYS,
        *config_module._IMAGE_KEYS,
    }
    for key in keys:
        assert re.search(rf"^#? ?{key} = ", text, re.M) or f"[images.{key}]" in text, key
    for arch in ARCHES:
        assert arch in text


# -- writing ------------------------------------------------------------------------------------


def test_starter_config_is_valid_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "matui.toml"
    write_starter_config(path)
    text = path.read_text()
    assert "config.example.toml" in text
    config = load_config(path)
    assert config.hosts == () and config.images == ()


def test_starter_config_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_text("# mine\n")
    with pytest.raises(ConfigError, match="already exists"):
        write_starter_config(path)
    assert path.read_text() == "# mine\n"


COMMENTED = """\
# My builders. Keep this comment!

[defaults]
user = "ci"   # trailing comment

[[hosts]]
name = "amd64-1"
arch = "amd64"
address = "build1.example.com"
"""


def test_add_host_keeps_comments_and_content(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_text(COMMENTED)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        host = add_host(path, name="arm64-1", arch="aarch64", ssh="me@[2001:db8::5]:2200")
    assert host == HostConfig("arm64-1", "arm64", "2001:db8::5", port=2200, user="me")
    text = path.read_text()
    assert text.startswith(COMMENTED)
    assert "[[hosts]]" in text[len(COMMENTED) :]
    config = load_config(path)
    assert [h.name for h in config.hosts] == ["amd64-1", "arm64-1"]
    assert config.hosts[0].user == "ci"  # defaults still apply to the old host
    assert config.host("arm64-1") == host


def test_add_host_to_starter_then_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    write_starter_config(path)
    starter = path.read_text()
    (tmp_path / "key").write_text("")
    (tmp_path / "kh").write_text("")
    first = add_host(
        path,
        name="bastion",
        arch="x86_64",
        ssh="ops@bastion.example.com",
        identity=tmp_path / "key",
        known_hosts=tmp_path / "kh",
    )
    second = add_host(
        path,
        name="emu-1",
        arch="amd64",
        ssh="10.0.0.9",
        jump="bastion",
        allow_emulation=True,
        port=2222,
    )
    assert path.read_text().startswith(starter)
    config = load_config(path)
    assert config.hosts == (first, second)
    assert first.identity == tmp_path / "key"
    assert (second.port, second.jump, second.allow_emulation) == (2222, "bastion", True)


def test_add_host_writes_relative_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "matui.toml"
    write_starter_config(path)
    (tmp_path / "key").write_text("")
    monkeypatch.chdir(tmp_path)
    host = add_host(path, name="a", arch="amd64", ssh="h", identity=Path("key"))
    assert host.identity == tmp_path / "key"
    assert str(tmp_path / "key") in path.read_text()


def test_add_host_duplicate_is_refused_and_file_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_text(COMMENTED)
    before = path.stat()
    with pytest.raises(ConfigError) as info:
        add_host(path, name="amd64-1", arch="amd64", ssh="other")
    (problem,) = info.value.problems
    assert problem.path == "hosts[1].name"
    assert "already the name of hosts[0]" in problem.message
    assert path.read_text() == COMMENTED
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ["matui.toml"]  # no temp file left behind


@pytest.mark.parametrize(
    ("kwargs", "path", "fix"),
    [
        ({"arch": "arm65"}, "hosts[1].arch", "use one of"),
        ({"ssh": "h:0"}, "ssh", "1 to 65535"),
        ({"jump": "nobody"}, "hosts[1].jump", "name a [[hosts]] entry"),
        ({"identity": Path("/nonexistent/key")}, "hosts[1].identity", "ssh-keygen"),
        ({"known_hosts": Path("/nonexistent/kh")}, "hosts[1].known_hosts", "ssh-keyscan h >>"),
        ({"port": 70000}, "hosts[1].port", "1 to 65535"),
        ({"name": "bad name"}, "hosts[1].name", "not a valid host name"),
    ],
)
def test_add_host_invalid_entry_is_refused(
    tmp_path: Path, kwargs: dict[str, Any], path: str, fix: str
) -> None:
    config = tmp_path / "matui.toml"
    config.write_text(COMMENTED)
    args: dict[str, Any] = {"name": "new", "arch": "arm64", "ssh": "h", **kwargs}
    with pytest.raises(ConfigError) as info:
        add_host(config, **args)
    (problem,) = info.value.problems
    assert problem.path == path
    assert fix in problem.message
    assert config.read_text() == COMMENTED


def test_add_host_to_missing_file_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="matui init"):
        add_host(tmp_path / "matui.toml", name="a", arch="amd64", ssh="h")
    assert not (tmp_path / "matui.toml").exists()


def test_add_host_to_broken_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_text("hosts = [\n")
    with pytest.raises(ConfigError) as info:
        add_host(path, name="a", arch="amd64", ssh="h")
    assert info.value.problems[0].path == "syntax"
    assert path.read_text() == "hosts = [\n"


def test_add_host_with_inline_hosts_rewrites_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_text('# lost\nhosts = [{ name = "a", arch = "amd64", address = "h" }]\n')
    with pytest.warns(ConfigRewrittenWarning, match="comments were lost"):
        host = add_host(path, name="b", arch="arm64", ssh="h2")
    assert host.name == "b"
    config = load_config(path)
    assert [h.name for h in config.hosts] == ["a", "b"]
    assert "# lost" not in path.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # now in [[hosts]] form: the next add appends
        add_host(path, name="c", arch="386", ssh="h3")
    assert [h.name for h in load_config(path).hosts] == ["a", "b", "c"]


def test_add_host_with_empty_inline_hosts(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_text('hosts = []\n\n[[images]]\nname = "x"\n')
    with pytest.warns(ConfigRewrittenWarning):
        add_host(path, name="b", arch="arm64", ssh="h2")
    text = path.read_text()
    assert "[[hosts]]" in text
    assert 'name = "x"' in text  # the (still broken) image entry is kept


def test_add_host_keeps_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "matui.toml"
    path.write_text(COMMENTED)
    path.chmod(0o600)
    add_host(path, name="b", arch="arm64", ssh="h2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_add_host_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "matui.toml"
    real.parent.mkdir()
    real.write_text(COMMENTED)
    link = tmp_path / "matui.toml"
    link.symlink_to(real)
    add_host(link, name="b", arch="arm64", ssh="h2")
    assert link.is_symlink()
    assert "h2" in real.read_text()


def test_add_host_ignores_problems_already_in_the_file(proj: Path) -> None:
    data = base()
    data["images"][0]["context"] = "missing-dir"
    path = proj / "matui.toml"
    path.write_text(tomli_w.dumps(data))
    host = add_host(path, name="c", arch="riscv64", ssh="h9")
    assert host.arch == "riscv64"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [p.path for p in info.value.problems] == ["images[0].context"]


# -- never a traceback --------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["linux/arm64", "{tag}", "../..", "~", "~nobody_here/x", "a@b:1", "[::1]"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
    st.dates(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_KEYS = st.sampled_from(
    sorted({*config_module._HOST_KEYS, *config_module._IMAGE_KEYS, "x", "hosts", "images"})
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(["hosts", "images", "defaults", ""]),
    key=_KEYS,
    value=_VALUES,
)
def test_any_value_anywhere_is_a_problem_not_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, where: str, key: str, value: Any
) -> None:
    proj = tmp_path_factory.getbasetemp()
    data = base()
    if where == "":
        data[key] = value
    elif where == "defaults":
        data["defaults"] = {key: value}
    else:
        data[where][0][key] = value
    try:
        parse_config(tomli_w.dumps(data), None, proj)
    except ConfigError as exc:
        assert exc.problems
        assert all(p.path and p.message for p in exc.problems)
