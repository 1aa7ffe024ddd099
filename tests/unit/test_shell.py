"""matui.engine.shell: the one place that turns values into a command for a builder host.

Pure tests (no SSH): the wire wrapper, quoting, refusal of control characters and of unsafe
run ids / job keys, and the shape of the argvs. ``tests/integration/test_hostile_input.py`` runs
the same commands against a real sshd under sh, fish and tcsh.
"""

from __future__ import annotations

import base64
import re
import shlex
import subprocess
from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matui.engine import shell
from matui.engine.arch import ARCHES, Platform
from matui.engine.records import new_run_id
from matui.engine.shell import RemoteScript, UnsafeValue

WIRE_RE = re.compile(r"sh -c 'eval \"\$\(printf %s ([A-Za-z0-9+/=]*) \| base64 -d\)\"'")

CONTROL = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
# Printable text: every code point but control characters and lone surrogates.
printable = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters=CONTROL), max_size=40
)
METACHARS = ";|&$()`<>*?[]{}~!#'\"\\ =-%^,."
shellish = st.text(st.sampled_from([*METACHARS, "a", "Z", "0", "é", "🙂", "\u200f"]), max_size=30)
values = st.one_of(printable, shellish)


def decode(wire: str) -> str:
    match = WIRE_RE.fullmatch(wire)
    assert match, wire
    return base64.b64decode(match.group(1), validate=True).decode()


# --------------------------------------------------------------------------------------------
# wire()


@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_wire_decodes_to_the_script(script: str) -> None:
    wire = RemoteScript(script).wire()
    assert decode(wire) == script
    # Only characters that mean the same to sh, bash, fish and tcsh: no ! \ newline or $VAR.
    assert set(wire) <= set("sh-c'eval\"$(printf%|base64d) ") | set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    )


def test_wire_of_the_probe_and_job_scripts() -> None:
    for script in [
        shell.probe_script(),
        shell.upload_script("run1", "amd64"),
        shell.launch_script("run1", "amd64", ["echo", "x"]),
        shell.follow_script("run1", "amd64", 10, 1234),
        shell.read_from_script("run1", "amd64", 10, 99),
        shell.outcome_script("run1", "amd64"),
        shell.cancel_script("run1", "amd64"),
    ]:
        assert decode(script.wire()) == script.script


def test_from_argv_is_join() -> None:
    argv = ["printf", "%s\\0", "a b", "$(x)"]
    assert RemoteScript.from_argv(argv).script == shell.join(argv)


# --------------------------------------------------------------------------------------------
# quote / join


@given(st.lists(values, max_size=8))
def test_join_round_trips_through_shlex(argv: list[str]) -> None:
    assert shlex.split(shell.join(argv)) == argv


@given(values)
def test_quote_round_trips_through_shlex(value: str) -> None:
    assert shlex.split(shell.quote(value)) == [value]


def test_quote_examples() -> None:
    assert shell.quote("") == "''"
    assert shell.quote("plain-1.0") == "plain-1.0"
    assert shell.quote("$(touch x)") == "'$(touch x)'"
    assert shell.quote("it's") == "'it'\"'\"'s'"
    assert shell.join(["a", "", "b c"]) == "a '' 'b c'"


@settings(max_examples=50, deadline=None)
@given(st.lists(values, min_size=1, max_size=6))
def test_local_sh_prints_the_argv_back(argv: list[str]) -> None:
    """The decoded script, run by a real POSIX sh, sees exactly the words we quoted."""
    script = RemoteScript.from_argv(["printf", "%s\\0", *argv])
    out = subprocess.run(
        ["sh", "-c", decode(script.wire())], capture_output=True, check=True
    ).stdout
    assert out == b"".join(word.encode() + b"\0" for word in argv)


# --------------------------------------------------------------------------------------------
# refusals


@pytest.mark.parametrize("char", CONTROL)
def test_every_control_character_is_refused_and_named(char: str) -> None:
    code = f"0x{ord(char):02x}"
    with pytest.raises(UnsafeValue, match=f"contains control characters \\({code}\\)"):
        shell.check_value(f"a{char}b", "tag")
    with pytest.raises(UnsafeValue, match=code):
        shell.quote(f"x{char}")
    with pytest.raises(UnsafeValue, match=code):
        shell.join(["ok", char])
    with pytest.raises(UnsafeValue, match=code):
        RemoteScript.from_argv(["echo", f"{char}touch x"])


def test_all_the_codes_are_named_once_and_sorted() -> None:
    with pytest.raises(UnsafeValue) as caught:
        shell.check_value("a\nb\x00c\n\x1b[31m\x9b", "label value")
    assert str(caught.value) == (
        "label value 'a\\nb\\x00c\\n\\x1b[31m\\x9b' contains control characters "
        "(0x00, 0x0a, 0x1b, 0x9b)"
    )


def test_lone_surrogates_are_refused_not_crashed_on() -> None:
    """``sys.argv`` holds undecodable bytes as lone surrogates; they cannot travel as UTF-8."""
    with pytest.raises(UnsafeValue, match="0xdcff"):
        shell.check_value("tag\udcff", "tag")
    with pytest.raises(UnsafeValue, match="not valid text"):
        RemoteScript.from_argv(["echo", "\ud800"])


@given(printable)
def test_printable_values_pass_unchanged(value: str) -> None:
    assert shell.check_value(value) is value


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "/abs",
        "-rf",
        "--",
        ".hidden",
        "a b",
        "$(x)",
        "a;b",
        "é",
        "x" * 129,
    ],
)
def test_run_ids_and_job_keys_are_plain_names(bad: str) -> None:
    with pytest.raises(UnsafeValue, match="not a plain name"):
        shell.job_dir(bad, "amd64")
    with pytest.raises(UnsafeValue, match="not a plain name"):
        shell.job_dir("20240101-000000-abcdef", bad)


def test_real_run_ids_and_job_keys_are_accepted() -> None:
    run_id = new_run_id()
    for arch in ARCHES:
        key = Platform("linux", arch).tag_arch
        assert shell.job_dir(run_id, key) == f".matui/runs/{run_id}/{key}"


@pytest.mark.parametrize("bad", ["../../x", "a\nb", "$(touch x)", "-x", "a/b"])
def test_every_job_script_refuses_a_hostile_run_id_or_key(bad: str) -> None:
    makers: list[Callable[[str, str], RemoteScript]] = [
        shell.upload_script,
        partial(launch, argv=["true"]),
        partial(shell.follow_script, offset=0, pid=1),
        partial(shell.read_from_script, offset=0, size=1),
        shell.outcome_script,
        shell.cancel_script,
    ]
    for make in makers:
        with pytest.raises(UnsafeValue):
            make(bad, "amd64")
        with pytest.raises(UnsafeValue):
            make("run1", bad)


def launch(run_id: str, job_key: str, argv: list[str]) -> RemoteScript:
    return shell.launch_script(run_id, job_key, argv)


def test_follow_and_read_take_numbers_only() -> None:
    assert "tail -c +42 " in shell.follow_script("run1", "amd64", 41, 1234).script
    assert "head -c 58" in shell.read_from_script("run1", "amd64", 41, 99).script
    with pytest.raises(ValueError):
        shell.follow_script("run1", "amd64", "1; touch x", 1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# argv shapes


def buildx(**overrides: object) -> list[str]:
    kwargs: dict[str, object] = {
        "platform": "linux/amd64",
        "ref": "registry.example.com/app:1.0-amd64",
        "dockerfile": "Dockerfile",
        "build_args": {},
        "labels": {},
        "target": None,
    }
    kwargs.update(overrides)
    return shell.buildx_argv(**kwargs)  # type: ignore[arg-type]


def test_buildx_argv_shape() -> None:
    """Build args by name only (buildx reads each value from its environment) and secrets by
    id and private file: no value of either is ever on the command line."""
    argv = buildx(
        build_args={"B": "2", "A": "1"},
        labels={"k": "v"},
        target="runtime",
        secrets=["npmrc", "API_TOKEN"],
    )
    assert argv == [
        "docker",
        "buildx",
        "build",
        "--progress=plain",
        "--platform=linux/amd64",
        "--provenance=false",
        "--metadata-file=metadata.json",
        "--push",
        "--tag=registry.example.com/app:1.0-amd64",
        "--file=context/Dockerfile",
        "--build-arg=A",
        "--build-arg=B",
        "--secret=id=API_TOKEN,src=secrets/secret.API_TOKEN",
        "--secret=id=npmrc,src=secrets/secret.npmrc",
        "--label=k=v",
        "--target=runtime",
        "--",
        "context",
    ]


@given(
    platform=values,
    ref=values,
    dockerfile=values,
    build_args=st.dictionaries(values, values, max_size=3),
    labels=st.dictionaries(values, values, max_size=3),
    target=st.none() | values,
)
def test_buildx_values_stay_values(
    platform: str,
    ref: str,
    dockerfile: str,
    build_args: dict[str, str],
    labels: dict[str, str],
    target: str | None,
) -> None:
    """Each value is glued to its --flag=, so "-o" or "--push=false" can never be an option;
    the context comes after "--"."""
    argv = buildx(
        platform=platform,
        ref=ref,
        dockerfile=dockerfile,
        build_args=build_args,
        labels=labels,
        target=target,
    )
    assert argv[:3] == ["docker", "buildx", "build"]
    assert argv[-2:] == ["--", "context"]
    flags = argv[3:-2]
    assert all(re.match(r"--[a-z-]+(=|$)", word) for word in flags), flags
    assert f"--platform={platform}" in flags
    assert f"--tag={ref}" in flags
    assert f"--file=context/{dockerfile}" in flags
    # names only, never a value (buildx reads it from its environment)
    assert [w for w in flags if w.startswith("--build-arg=")] == [
        f"--build-arg={name}" for name in sorted(build_args)
    ]
    for name, value in labels.items():
        assert f"--label={name}={value}" in flags
    assert (f"--target={target}" in flags) == bool(target)
    assert shlex.split(shell.join(argv)) == argv


@pytest.mark.parametrize("hostile", ["--push=false", "-o", "--", "-", "--output=type=local,dest=/"])
def test_option_like_values_after_their_flag(hostile: str) -> None:
    argv = buildx(ref=hostile, target=hostile, build_args={"A": hostile}, labels={"k": hostile})
    assert f"--tag={hostile}" in argv
    assert f"--target={hostile}" in argv
    assert "--build-arg=A" in argv and f"--build-arg=A={hostile}" not in argv
    assert f"--label=k={hostile}" in argv
    assert argv.index("--") == len(argv) - 2


def test_imagetools_sources_come_after_double_dash() -> None:
    digest = "sha256:" + "ab" * 32
    argv = shell.imagetools_create_argv(
        ["r.example.com/app:1.0", "r.example.com/app:latest"],
        [f"r.example.com/app@{digest}", "-bad"],
        dry_run=True,
    )
    assert argv == [
        "docker",
        "buildx",
        "imagetools",
        "create",
        "--tag=r.example.com/app:1.0",
        "--tag=r.example.com/app:latest",
        "--dry-run",
        "--",
        f"r.example.com/app@{digest}",
        "-bad",
    ]


# --------------------------------------------------------------------------------------------
# the detached job


def test_launch_script_job_sh_holds_the_argv() -> None:
    """job.sh is written by ``printf '%s\\n' QUOTED``; its command line splits back to argv."""
    argv = ["printf", "%s\\0", "$(touch x)", "it's", "-o", "a b", "🙂"]
    script = shell.launch_script("run1", "amd64", argv).script
    match = re.search(r"^printf '%s\\n' (.*?) > job\.sh$", script, re.MULTILINE | re.DOTALL)
    assert match
    [job] = shlex.split(match.group(1))
    [command] = [line for line in job.splitlines() if " exec " in line]
    assert command.startswith("build() ( ") and command.endswith(" )")
    assert shlex.split(command.partition(" exec ")[2])[:-1] == argv


def test_a_command_over_the_host_argument_limit_is_refused_with_the_reason() -> None:
    from matui.engine.shell import MAX_COMMAND, RemoteScript, UnsafeValue

    RemoteScript("echo " + "x" * 1000).wire()  # an ordinary size passes
    with pytest.raises(UnsafeValue, match="limit of one argument on the host"):
        RemoteScript("echo " + "x" * MAX_COMMAND).wire()
