"""A build's private inputs (:mod:`matui.engine.build.secrets`) and the host scripts that carry
them (:mod:`matui.engine.shell`), the scripts run by a real ``sh`` in a scratch ``$HOME``: no
value on buildx's argv or in job.sh, values exact in buildx's environment whatever they hold,
secrets in a 0700 directory of 0600 files, the log redacted, the directory gone at every end."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import tarfile
import time
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matui.engine import shell
from matui.engine.arch import Platform
from matui.engine.build.secrets import (
    MAX_SECRET_BYTES,
    PrivateInputs,
    SecretUnavailable,
    build_args_file,
    private_inputs,
    read_secrets,
    redact_script,
)
from matui.engine.config import ImageConfig, SecretSource

HOSTILE = [
    "it's",
    '"double" $HOME `id` $(touch pwned) \\n \\',
    "-o --push=false",
    "a=b=c, d",
    "é🙂\u200f",
    "",
    " leading and trailing ",
    "* ? [a-z] ~ ! # ; | & < >",
]


def make_image(
    build_args: dict[str, str] | None = None, secrets: dict[str, SecretSource] | None = None
) -> ImageConfig:
    return ImageConfig(
        name="registry.example.com/team/app",
        tags=("1.0",),
        context=Path("."),
        platforms=(Platform("linux", "amd64"),),
        build_args=MappingProxyType(build_args or {}),
        secrets=MappingProxyType(secrets or {}),
    )


# --------------------------------------------------------------------------------------------
# reading on the operator's machine


def test_values_are_read_from_the_environment_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATUI_T_TOKEN", "tok")
    (tmp_path / "npmrc").write_bytes(b"//r/:_authToken=x\n\xff")
    image = make_image(
        secrets={
            "a": SecretSource("env", variable="MATUI_T_TOKEN"),
            "b": SecretSource("file", path=tmp_path / "npmrc"),
        }
    )
    assert read_secrets(None, image) == {"a": b"tok", "b": b"//r/:_authToken=x\n\xff"}


def test_every_unreadable_secret_is_one_line_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MATUI_T_UNSET", raising=False)
    (tmp_path / "big").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    image = make_image(
        secrets={
            "env1": SecretSource("env", variable="MATUI_T_UNSET"),
            "gone": SecretSource("file", path=tmp_path / "nope"),
            "dir.x": SecretSource("file", path=tmp_path),
            "big": SecretSource("file", path=tmp_path / "big"),
        }
    )
    with pytest.raises(SecretUnavailable) as caught:
        read_secrets(None, image)
    lines = str(caught.value).splitlines()
    assert len(lines) == 4 == len(caught.value.problems)
    by_key = {line.partition(": ")[0]: line for line in lines}
    where = "images[name = registry.example.com/team/app]"  # no config: named by the image
    assert "MATUI_T_UNSET is not set" in by_key[f"{where}.secrets.env1"]
    assert "export MATUI_T_UNSET=" in by_key[f"{where}.secrets.env1"]
    assert "does not exist" in by_key[f"{where}.secrets.gone"]
    assert "is a directory" in by_key[f'{where}.secrets."dir.x"']
    assert "500 KiB" in by_key[f"{where}.secrets.big"]


def test_a_control_character_in_a_build_arg_is_refused_without_showing_it() -> None:
    with pytest.raises(SecretUnavailable) as caught:
        read_secrets(None, make_image(build_args={"API_TOKEN": "s3cr3t\nx"}))
    assert "s3cr3t" not in str(caught.value)
    assert ".build_args.API_TOKEN:" in str(caught.value)


# --------------------------------------------------------------------------------------------
# what goes to the host


def test_build_args_go_by_name_and_secrets_by_id_never_by_value() -> None:
    image = make_image(build_args={"BASE": "img:1", "API_TOKEN": "t0ken-value"})
    argv = shell.buildx_argv(
        platform="linux/amd64",
        ref="r/app:1.0-amd64",
        dockerfile="Dockerfile",
        build_args=list(image.build_args),
        labels={},
        target=None,
        secrets=["npmrc"],
    )
    assert "--build-arg=API_TOKEN" in argv and "--build-arg=BASE" in argv
    assert "--secret=id=npmrc,src=secrets/secret.npmrc" in argv
    assert not any("t0ken-value" in word or "img:1" in word for word in argv)
    script = shell.launch_script("run1", "amd64", argv).script
    assert "t0ken-value" not in script and "img:1" not in script


def test_a_secret_id_that_is_not_a_plain_name_never_becomes_a_path() -> None:
    with pytest.raises(shell.UnsafeValue):
        shell.secret_file("../x")


def test_the_payload_is_a_tar_of_private_files() -> None:
    image = make_image(build_args={"BASE": "img:1", "API_TOKEN": "t0ken-value"})
    inputs = private_inputs(image, {"npmrc": b"line-one-secret\nline-two-secret\n"})
    with tarfile.open(fileobj=io.BytesIO(inputs.payload())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"build-args.sh", "secret.npmrc", "redact.sed"}
        assert {m.mode for m in members.values()} == {0o600}
        secret = tar.extractfile("secret.npmrc")
        assert secret is not None and secret.read() == b"line-one-secret\nline-two-secret\n"
    # the secret-looking build arg's value and each line of the secret are redacted; BASE is not
    assert set(inputs.redactions) == {b"t0ken-value", b"line-one-secret", b"line-two-secret"}
    assert "t0ken-value" not in repr(inputs) and "line-one" not in repr(inputs)


def test_nothing_to_send_without_build_args_or_secrets() -> None:
    assert not private_inputs(make_image(), {})
    assert not PrivateInputs()


def test_short_values_are_not_redacted_and_longest_go_first() -> None:
    image = make_image(build_args={"A_TOKEN": "abc", "B_TOKEN": "abcdef", "C_TOKEN": "abcdefgh"})
    assert private_inputs(image, {}).redactions == (b"abcdefgh", b"abcdef")


def sh(home: Path, script: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["sh", "-c", script],
        input=stdin,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        timeout=60,
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs"))), max_size=4))
def test_the_build_args_file_gives_buildx_each_value_exactly(values: list[str]) -> None:
    args = {f"ARG_{i}": value for i, value in enumerate([*values, *HOSTILE])}
    script = ". /dev/stdin; " + "; ".join(f'printf "%s\\0" "${name}"' for name in args)
    result = subprocess.run(
        ["sh", "-c", script], input=build_args_file(args), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(b"\0")[:-1] == [v.encode() for v in args.values()]


def test_the_redaction_replaces_each_value_literally(tmp_path: Path) -> None:
    values = [v.encode() for v in HOSTILE if len(v.encode()) >= 4] + [b"a.c", b"x/y\\z"]
    (tmp_path / "r.sed").write_bytes(redact_script(sorted(values, key=len, reverse=True)))
    text = b"".join(b"<" + v + b"> abc xyz\n" for v in values) + b"\xff\xfe no newline"
    result = subprocess.run(
        ["sed", "-f", str(tmp_path / "r.sed")],
        input=text,
        env={**os.environ, "LC_ALL": "C"},
        capture_output=True,
        check=True,
    )
    lines = result.stdout.split(b"\n")
    assert lines[: len(values)] == [b"<***> abc xyz"] * len(values)  # "a.c" is not "abc"
    assert lines[-1] == b"\xff\xfe no newline"


# --------------------------------------------------------------------------------------------
# the scripts on a real sh


def job_dir(home: Path) -> Path:
    path = home / ".matui" / "runs" / "r1" / "amd64"
    (path / "context").mkdir(parents=True)
    return path


def send(home: Path, inputs: PrivateInputs) -> subprocess.CompletedProcess[bytes]:
    return sh(home, shell.secrets_script("r1", "amd64").script, inputs.payload())


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), path


# What the fake "buildx" does: show its arguments and what its environment holds, print the
# value as BuildKit would print a RUN line with the build arg expanded, read the secret file.
FAKE_BUILDX = [
    "sh",
    "-c",
    'printf "%s" "$API_TOKEN" > seen-arg; cat "$1" > seen-secret; '
    'echo "#6 [2/2] RUN test $API_TOKEN = x"; echo "plain $BASE"; printf "last-no-newline"',
    "fake-buildx",
    shell.secret_file("npmrc"),
]


def test_a_job_gets_its_values_privately_and_leaves_none(tmp_path: Path) -> None:
    path = job_dir(tmp_path)
    image = make_image(build_args={"BASE": "img:1", "API_TOKEN": "t0ken 'value'"})
    inputs = private_inputs(image, {"npmrc": b"npm-secret-value\n"})
    result = send(tmp_path, inputs)
    assert result.returncode == 0, result.stderr
    private = path / shell.SECRETS_DIR
    assert private.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in private.iterdir()} == {0o600}

    out = sh(tmp_path, shell.launch_script("r1", "amd64", FAKE_BUILDX).script)
    assert out.stdout.startswith(b"started "), out.stderr
    wait_for(path / "exit")
    assert (path / "exit").read_text() == "0\n"
    assert (path / "seen-arg").read_bytes() == b"t0ken 'value'"
    assert (path / "seen-secret").read_bytes() == b"npm-secret-value\n"
    assert (path / "build.log").read_bytes() == (
        b"#6 [2/2] RUN test *** = x\nplain img:1\nlast-no-newline"
    )
    assert not private.exists() and not (path / "context").exists()
    job_sh = (path / "job.sh").read_bytes()
    assert b"t0ken" not in job_sh and b"img:1" not in job_sh and b"npm-secret" not in job_sh
    assert (path / "job.sh").stat().st_mode & 0o077 == 0


def test_the_build_exit_code_comes_through_the_redaction(tmp_path: Path) -> None:
    path = job_dir(tmp_path)
    send(tmp_path, private_inputs(make_image(build_args={"API_TOKEN": "t0ken"}), {}))
    out = sh(tmp_path, shell.launch_script("r1", "amd64", ["sh", "-c", "exit 3"]).script)
    assert out.stdout.startswith(b"started ")
    wait_for(path / "exit")
    assert (path / "exit").read_text() == "3\n"
    assert not (path / shell.SECRETS_DIR).exists()


def test_without_private_inputs_the_build_runs_as_before(tmp_path: Path) -> None:
    path = job_dir(tmp_path)
    out = sh(tmp_path, shell.launch_script("r1", "amd64", ["sh", "-c", "echo hi; exit 4"]).script)
    assert out.stdout.startswith(b"started ")
    wait_for(path / "exit")
    assert (path / "exit").read_text() == "4\n" and (path / "build.log").read_bytes() == b"hi\n"


def test_a_cancel_removes_the_private_inputs(tmp_path: Path) -> None:
    path = job_dir(tmp_path)
    send(tmp_path, private_inputs(make_image(build_args={"API_TOKEN": "t0ken"}), {}))
    out = sh(tmp_path, shell.launch_script("r1", "amd64", ["sleep", "60"]).script)
    assert out.stdout.startswith(b"started ")
    assert (path / shell.SECRETS_DIR).exists()  # the build holds them while it runs
    answer = sh(tmp_path, shell.cancel_script("r1", "amd64", grace=2).script)
    assert b"@@matui:cancel=stopped" in answer.stdout
    assert not (path / shell.SECRETS_DIR).exists()


def test_a_building_job_keeps_its_inputs_and_a_second_send_is_refused(tmp_path: Path) -> None:
    path = job_dir(tmp_path)
    send(tmp_path, private_inputs(make_image(build_args={"API_TOKEN": "first"}), {}))
    sh(tmp_path, shell.launch_script("r1", "amd64", ["sleep", "60"]).script)
    try:
        again = send(tmp_path, private_inputs(make_image(build_args={"API_TOKEN": "second"}), {}))
        assert again.returncode == shell.SECRETS_BUSY
        assert b"first" in (path / shell.BUILD_ARGS_FILE).read_bytes()
        sh(tmp_path, shell.drop_secrets_script("r1", "amd64").script)
        assert (path / shell.SECRETS_DIR).exists()  # running: a drop leaves them
    finally:
        sh(tmp_path, shell.cancel_script("r1", "amd64", grace=1).script)


def test_a_build_killed_before_it_could_clean_up_loses_them_at_the_next_outcome(
    tmp_path: Path,
) -> None:
    path = job_dir(tmp_path)
    send(tmp_path, private_inputs(make_image(build_args={"API_TOKEN": "t0ken"}), {}))
    out = sh(tmp_path, shell.launch_script("r1", "amd64", ["sleep", "60"]).script)
    pid = int(out.stdout.split()[-1])
    os.killpg(pid, 9)  # job.sh and buildx die at once: nothing of theirs removes anything
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    assert (path / shell.SECRETS_DIR).exists()
    text = sh(tmp_path, shell.outcome_script("r1", "amd64").script).stdout
    assert b"@@matui:running=1" not in text
    assert not (path / shell.SECRETS_DIR).exists()


def test_an_outcome_before_the_launch_leaves_freshly_sent_inputs(tmp_path: Path) -> None:
    """Inputs newer than the last start belong to a launch about to happen."""
    path = job_dir(tmp_path)
    (path / "pid").write_text("999999\n")
    time.sleep(0.05)
    send(tmp_path, private_inputs(make_image(build_args={"API_TOKEN": "t0ken"}), {}))
    sh(tmp_path, shell.outcome_script("r1", "amd64").script)
    assert (path / shell.SECRETS_DIR).exists()
    sh(tmp_path, shell.drop_secrets_script("r1", "amd64").script)  # a failed launch
    assert not (path / shell.SECRETS_DIR).exists()


def test_gc_removing_a_context_removes_the_inputs_too(tmp_path: Path) -> None:
    path = job_dir(tmp_path)
    send(tmp_path, private_inputs(make_image(build_args={"API_TOKEN": "t0ken"}), {}))
    (path / f"{shell.SECRETS_DIR}.new").mkdir()  # an upload cut short
    newest = max(int(p.stat().st_mtime) for p in path.iterdir())
    target = shell.GcTarget("r1", "amd64", whole_job=False, ended=None, newest=newest)
    text = sh(tmp_path, shell.gc_remove_script([target]).script).stdout.decode()
    assert "@@matui:result 0 removed" in text, text
    assert not (path / shell.SECRETS_DIR).exists() and not (path / "context").exists()
    assert not (path / f"{shell.SECRETS_DIR}.new").exists()


def test_job_sh_sources_the_values_only_in_the_subshell_that_execs_buildx() -> None:
    script = shell.launch_script("r1", "amd64", ["docker", "buildx", "build"]).script
    job = shlex.split(script.partition("printf '%s\\n' ")[2].partition(" > job.sh")[0])[0]
    [build] = [line for line in job.splitlines() if line.startswith("build() ")]
    assert build == (
        "build() ( [ ! -f secrets/build-args.sh ] || . ./secrets/build-args.sh; "
        "exec docker buildx build )"
    )
