"""The one place that turns intent into a command line for a builder host.

The command string an SSH client sends is run by the remote user's *login shell*, which may be
bash, dash, fish or tcsh; their quoting rules differ. So the login shell only ever sees one fixed
wrapper made of characters that mean the same in all of them::

    sh -c 'eval "$(printf %s BASE64 | base64 -d)"'

and the real POSIX ``sh`` script travels base64-encoded inside it. Values inside the script are
quoted with :func:`shlex.quote`; control characters are refused before quoting, because no
legitimate ref, path or build argument contains one.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# C0, DEL and C1 (U+0080-U+009F: NEL splits lines, CSI starts terminal escapes).
_CONTROL = frozenset(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A directory name on the builder: no slash, no "..", never taken for an option.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)


MAX_COMMAND = 120 * 1024  # under Linux's MAX_ARG_STRLEN (128 KiB) with room for the shell


class UnsafeValue(ValueError):
    """A value that must never reach a remote command."""


def check_value(value: str, what: str = "value") -> str:
    """Refuse control characters (newline, NUL, ESC ...) in a value bound for a remote command.

    Lone surrogates (undecodable bytes from the command line) are refused too: they cannot be
    sent as UTF-8.
    """
    if not _UNSAFE.search(value):
        return value  # the common case, for every word of every command
    bad = sorted({f"0x{ord(ch):02x}" for ch in value if ch in _CONTROL})
    if bad:
        raise UnsafeValue(f"{what} {value!r} contains control characters ({', '.join(bad)})")
    if found := _SURROGATE.findall(value):
        codes = ", ".join(sorted({f"0x{ord(ch):04x}" for ch in found}))
        raise UnsafeValue(f"{what} {value!r} is not valid text (undecodable bytes: {codes})")
    return value


def check_name(value: str, what: str = "name") -> str:
    """A run id or job key: it becomes a directory name on the builder, so a plain name only."""
    check_value(value, what)
    if not _NAME_RE.fullmatch(value):
        raise UnsafeValue(
            f"{what} {value!r} is not a plain name (1-128 of A-Z a-z 0-9 _ . -, not starting "
            "with . or -)"
        )
    return value


def quote(value: str, what: str = "value") -> str:
    return shlex.quote(check_value(value, what))


def join(argv: Iterable[str]) -> str:
    """Quote every word of an argv for POSIX sh."""
    return " ".join(quote(word) for word in argv)


@dataclass(frozen=True)
class RemoteScript:
    """A POSIX sh script to run on a builder host, whatever its login shell."""

    script: str

    def wire(self) -> str:
        """The exact string handed to SSH as the command.

        The host's kernel takes one argument of at most 128 KiB; a longer command would fail
        there as "Argument list too long", so it is refused here, saying why.
        """
        payload = base64.b64encode(self.script.encode()).decode("ascii")
        command = f"sh -c 'eval \"$(printf %s {payload} | base64 -d)\"'"
        if len(command) > MAX_COMMAND:
            raise UnsafeValue(
                f"the remote command would be {len(command)} bytes, over the {MAX_COMMAND}-byte "
                "limit of one argument on the host; shorten the labels or tags (long "
                "values belong in files in the build context)"
            )
        return command

    @classmethod
    def from_argv(cls, argv: Iterable[str]) -> RemoteScript:
        return cls(join(argv))


# Markers that split the probe's output into sections; ASCII, unlikely in real output.
PROBE_SECTIONS = ("uname", "docker", "buildx", "binfmt", "df", "matui", "registry", "busy")

# How busy the host is, for the planner: its CPUs and 1-minute load, matui's jobs running
# under this login (a job directory whose build holds its lock), and a key naming the machine
# and login (two host entries that are one machine share their figures). Read by
# probe.parse_busy.
_BUSY_CHECK = (
    'echo "cpus $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 0)"; '
    'echo "load $(cut -d" " -f1 /proc/loadavg 2>/dev/null)"; '
    'n=0; for j in "$HOME"/.matui/runs/*/*; do '
    '[ -f "$j/pid" ] && [ ! -f "$j/exit" ] && ( cd "$j" && running ) && n=$((n+1)); done; '
    'echo "jobs $n"; '
    'echo "machine $(printf "%s %s" "$(cat /etc/machine-id 2>/dev/null || hostname)" "$HOME" '
    '| cksum | cut -d" " -f1)"'
)

# One line per registry: whether the host's docker has a login for it (never the login itself)
# and what its /v2/ answers from the host (curl, else wget; -k: only the status matters, and a
# registry's private CA is the docker engine's business). Read by probe.parse_registry_access.
_REGISTRY_CHECK = r"""cfg="${DOCKER_CONFIG:-$HOME/.docker}/config.json"
has() { [ -r "$cfg" ] && tr -d ' \t\r\n' <"$cfg" 2>/dev/null | grep -Eq "$1" && echo 1 || echo 0; }
ask() {
  if command -v curl >/dev/null 2>&1; then
    code=$(curl -sk -o /dev/null -w '%{http_code}' --connect-timeout 5 --max-time 10 "$1/v2/")
    echo "curl $? ${code:-000}"
  elif command -v wget >/dev/null 2>&1; then
    code=$(wget -q -O /dev/null -T 10 -t 1 --no-check-certificate -S "$1/v2/" 2>&1 |
      awk '$1 ~ /^HTTP\// {c=$2} END {print c}')
    echo "wget $? ${code:-000}"
  else
    echo "none 0 000"
  fi
}
reg() {
  key=$(printf '%s' "$1" | sed 's/[].[*^$\/]/\\&/g')
  auth=$(has "\"(https?://)?$key(/[^\"]*)?\":\\{\"")
  helper=$(has "\"(https?://)?$key(/[^\"]*)?\":\"")
  store=$(has '"credsStore":"[^"]')
  answer=$(ask "$2://$1")
  if [ "$2" = https ]; then
    case "$answer" in *" 000") answer=$(ask "http://$1") ;; esac
  fi
  echo "reg $1 $answer auth=$auth helper=$helper store=$store"
}
"""


def _loopback(host: str) -> bool:
    name = host.rpartition(":")[0] if host.count(":") == 1 else host
    return name in ("localhost", "[::1]") or name.startswith("127.")


def probe_script(registries: Sequence[str] = ()) -> RemoteScript:
    """Everything the probe needs from a host, in one round trip.

    Each section starts with a ``@@matui:NAME`` line and ends with ``@@matui:NAME:rc=N`` so a
    missing tool is told apart from empty output. ``registries`` (``host[:port]``) are asked
    from the host: can it reach each, and does its docker hold a login for it.
    """
    checks = [
        f"reg {quote(check_value(r, 'registry'))} {'http' if _loopback(r) else 'https'}"
        for r in dict.fromkeys(registries)
    ]
    sections = {
        "uname": "uname -m",
        "docker": "docker version --format '{{json .}}'",
        "buildx": "docker buildx version",
        "binfmt": (
            "for f in /proc/sys/fs/binfmt_misc/qemu-*; do "
            '[ "$(head -n 1 "$f" 2>/dev/null)" = enabled ] && echo "${f##*/}"; done; true'
        ),
        "df": (
            "root=\"$(docker info --format '{{.DockerRootDir}}' 2>/dev/null)\"; "
            '[ -n "$root" ] || root=/var/lib/docker; '
            'df -Pk "$root" 2>/dev/null || df -Pk /'
        ),
        # What matui itself keeps on the host (job directories), in KiB; 0 when it has none.
        "matui": 'if [ -d "$HOME/.matui" ]; then du -sk "$HOME/.matui"; else echo 0; fi',
        "registry": "; ".join(checks) or "true",
        "busy": _BUSY_CHECK,
    }
    # The sections run concurrently (each docker CLI start costs ~0.1-0.3 s) and print in order.
    lines = ['d=$(mktemp -d 2>/dev/null) || { d="/tmp/matui-probe.$$"; mkdir -p "$d"; }']
    if checks:
        lines.append(_REGISTRY_CHECK)
    lines.append(_RUNNING.rstrip("\n"))
    for name in PROBE_SECTIONS:
        lines.append(f'{{ ( {sections[name]} ) >"$d/{name}" 2>&1; echo $? >"$d/{name}.rc"; }} &')
    lines.append("wait")
    for name in PROBE_SECTIONS:
        lines.append(
            f'echo @@matui:{name}; cat "$d/{name}"; echo "@@matui:{name}:rc=$(cat "$d/{name}.rc")"'
        )
    lines.append('rm -rf "$d"')
    return RemoteScript("\n".join(lines) + "\n")


# --- builds -----------------------------------------------------------------------------------
# Every job lives in its own directory on the host, relative to the login user's $HOME:
#   .matui/runs/<run>/<job>/{context/, job.sh, build.log, pid, lock, exit, metadata.json, cancelled}
# The build runs detached (own session and process group, stdin from /dev/null, output appended
# to build.log) so it survives the SSH connection; the exit code lands atomically in `exit`.
# The context copy is the build's input only: it is removed when the build ends, before `exit`
# is written, so a job directory with an exit code never holds one (unless a cancel or a crash
# cut the job short: `matui gc` removes those). Log and outcome stay for a reattaching matui
# until the host's retention has passed (:mod:`matui.engine.hostgc`).

RUNS_DIR = ".matui/runs"


def job_dir(run_id: str, job_key: str) -> str:
    return f"{RUNS_DIR}/{check_name(run_id, 'run id')}/{check_name(job_key, 'job')}"


def _in_job_dir(run_id: str, job_key: str, body: str) -> RemoteScript:
    return RemoteScript(f'cd "$HOME" && cd {quote(job_dir(run_id, job_key))} || exit 97\n{body}')


# --- a job's private inputs -----------------------------------------------------------------
# Build-arg values and BuildKit secrets never go on a command line (every user of the host can
# read those in ps) nor into job.sh: they travel on the stdin of their own SSH session
# (:func:`secrets_script`) into the job's ``secrets/`` directory (0700, files 0600), job.sh
# hands the build-arg values to buildx through its environment (``--build-arg NAME`` without a
# value makes buildx read it there) and each secret as ``--secret id=ID,src=FILE``, and the
# directory goes when the build ends, whatever the ending (job.sh, a cancel, a reattach's
# outcome, `matui gc`).

SECRETS_DIR = "secrets"
BUILD_ARGS_FILE = f"{SECRETS_DIR}/build-args.sh"
"""``export NAME='value'`` lines, sourced in the subshell that execs buildx only."""
REDACT_FILE = f"{SECRETS_DIR}/redact.sed"
"""A sed script replacing secret values in the build's output before it reaches build.log
(BuildKit shows a RUN step's command with its build args expanded)."""
SECRETS_BUSY = 75
""":func:`secrets_script` exit code when the job is building: its inputs are left as they are."""


def secret_file(secret_id: str) -> str:
    """Where a BuildKit secret's value waits for the build, relative to the job directory."""
    return f"{SECRETS_DIR}/secret.{check_name(secret_id, 'secret id')}"


def secrets_script(run_id: str, job_key: str) -> RemoteScript:
    """Receive the job's private inputs, a tar on stdin, into a fresh ``secrets/`` directory
    (0700, files 0600). Under the job's lock: a job that is building keeps its own
    (exit :data:`SECRETS_BUSY`)."""
    return _in_job_dir(
        run_id,
        job_key,
        f"""umask 077
exec 9>>lock || exit 1
if command -v flock >/dev/null 2>&1; then
  flock -n 9 || {{ echo "this job is building; its private inputs stay" >&2; exit {SECRETS_BUSY}; }}
fi
rm -rf {SECRETS_DIR} {SECRETS_DIR}.new && mkdir -m 700 {SECRETS_DIR}.new || exit 1
if tar -x -f - -C {SECRETS_DIR}.new --no-same-owner --no-same-permissions; then
  mv {SECRETS_DIR}.new {SECRETS_DIR}
else
  rm -rf {SECRETS_DIR}.new; exit 1
fi
""",
    )


def drop_secrets_script(run_id: str, job_key: str) -> RemoteScript:
    """Remove the job's private inputs unless its build is running (a launch that failed)."""
    return _in_job_dir(
        run_id, job_key, f"{_RUNNING}running || rm -rf {SECRETS_DIR} {SECRETS_DIR}.new\n"
    )


def _build_lines(argv: list[str]) -> list[str]:
    """job.sh's build: buildx with the build-arg values in its environment (sourced in its own
    subshell, so nothing else sees them), its output through the redaction when there is one."""
    return [
        f"build() ( [ ! -f {BUILD_ARGS_FILE} ] || . ./{BUILD_ARGS_FILE}; exec {join(argv)} )",
        f"if [ -f {REDACT_FILE} ]; then",
        "  if command -v stdbuf >/dev/null 2>&1; then",
        f"    redact() {{ LC_ALL=C stdbuf -oL sed -f {REDACT_FILE}; }}",
        "  else",
        f"    redact() {{ LC_ALL=C sed -u -f {REDACT_FILE}; }}",
        "  fi",
        f'  {{ build 2>&1; echo "$?" > {SECRETS_DIR}/rc; }} | redact >> build.log 2>&1',
        f'  rc=$(cat {SECRETS_DIR}/rc 2>/dev/null); (exit "${{rc:-1}}")',
        "else",
        "  build >> build.log 2>&1",
        "fi",
    ]


def buildx_argv(
    *,
    platform: str,
    ref: str,
    dockerfile: str,
    build_args: Iterable[str],
    labels: dict[str, str],
    target: str | None,
    secrets: Iterable[str] = (),
    no_cache: bool = False,
    pull: bool = False,
    builder: str | None = None,
    builder_is_context: bool = False,
    push_by_digest: bool = False,
    attestations: Iterable[str] = (),
    cache_ref: str | None = None,
) -> list[str]:
    """The one place that decides a build's flags. Paths are relative to the job directory.

    ``builder`` builds through that buildx builder: ``--builder NAME``, or, when the builder
    is a docker context (``builder_is_context``; buildx 0.13 refuses ``--builder`` for one),
    ``docker --context NAME buildx build``. ``push_by_digest`` (a driver other than docker,
    see :func:`matui.engine.builders.capabilities`) pushes the image by digest instead of
    ``ref``; ``attestations`` (``provenance``, ``sbom``) are then asked for, and
    ``cache_ref`` is the registry cache to read and write.

    ``build_args`` are names only: each becomes ``--build-arg=NAME``, whose value buildx reads
    from its environment (job.sh puts it there from :data:`BUILD_ARGS_FILE`). ``secrets`` are
    BuildKit secret ids, each read from :func:`secret_file`. No value is ever on this argv.
    ``no_cache`` and ``pull`` (a retry that asks for them) add ``--no-cache`` and ``--pull``."""
    argv = ["docker"]
    if builder and builder_is_context:
        argv.append(f"--context={check_name(builder, 'builder')}")
    argv += ["buildx", "build"]
    if builder and not builder_is_context:
        argv.append(f"--builder={check_name(builder, 'builder')}")
    argv += ["--progress=plain", f"--platform={platform}"]
    wanted = sorted(set(attestations))
    if push_by_digest:
        # The repository without the tag: the image is pushed by digest only, and the index
        # is made from the digests (no per-arch tag moves).
        name = ref.rpartition(":")[0] if ":" in ref.rpartition("/")[2] else ref
        argv.append(f"--provenance={'mode=max' if 'provenance' in wanted else 'false'}")
        if "sbom" in wanted:
            argv.append("--sbom=true")
        argv.append("--metadata-file=metadata.json")
        # OCI media types when attestations ride along: their index annotations survive.
        argv.append(
            f"--output=type=image,name={name},push-by-digest=true,name-canonical=true,push=true"
            + (",oci-mediatypes=true" if wanted else "")
        )
    else:
        argv += ["--provenance=false", "--metadata-file=metadata.json", "--push", f"--tag={ref}"]
    if cache_ref:
        argv.append(f"--cache-to=type=registry,ref={cache_ref},mode=max,ignore-error=true")
        argv.append(f"--cache-from=type=registry,ref={cache_ref}")
    argv.append(f"--file=context/{dockerfile}")
    argv += [f"--build-arg={name}" for name in sorted(build_args)]
    argv += [f"--secret=id={name},src={secret_file(name)}" for name in sorted(secrets)]
    argv += [f"--label={name}={value}" for name, value in sorted(labels.items())]
    if target:
        argv.append(f"--target={target}")
    if no_cache:
        argv.append("--no-cache")
    if pull:
        argv.append("--pull")
    argv += ["--", "context"]
    return argv


def upload_script(run_id: str, job_key: str, *, fresh_log: bool = False) -> RemoteScript:
    """Unpack a tar stream from stdin into the job's context directory (created fresh).

    The job's lock is held while tar runs, and a previous attempt's exit code goes first: a
    `matui gc` running meanwhile sees the directory busy, or (between upload and launch) a fresh
    job without an exit code, never a finished job whose context is left over. ``fresh_log``
    (a job moved to this host by a retry) also removes a log left there by an earlier attempt:
    the new attempt's log starts at byte 0 on this host."""
    path = quote(job_dir(run_id, job_key))
    return RemoteScript(
        f'cd "$HOME" && mkdir -p {path} && cd {path} && exec 9>>lock || exit 1\n'
        "if command -v flock >/dev/null 2>&1; then\n"
        '  flock -n 9 || { echo "this job is building or being cleaned up; try again" >&2; '
        "exit 75; }\n"
        "fi\n"
        + ("rm -f build.log || exit 1\n" if fresh_log else "")
        + "rm -f exit && rm -rf context && mkdir context "
        "&& exec tar -x -f - -C context --no-same-owner\n"
    )


# Whether the job's build is running: the lock its job.sh holds (flock) is taken; on a host
# without flock, its pid is alive and it has not written its exit code.
_RUNNING = """running() {
  if command -v flock >/dev/null 2>&1 && [ -f lock ]; then ! flock -n lock true
  else [ -f pid ] && [ ! -f exit ] && kill -0 "$(cat pid)" 2>/dev/null; fi
}
"""


def launch_script(
    run_id: str,
    job_key: str,
    argv: list[str],
    *,
    image_lock: ImageLock | None = None,
    marker: str | None = None,
) -> RemoteScript:
    """Start the build detached; prints ``started PID``, or ``attached PID`` when this job is
    already building (a second launch never starts a second build).

    With ``image_lock``, the build also holds the host's lock for its image and arch (see
    :class:`ImageLock`); when another job holds it, nothing starts: the script prints
    ``@@matui:image-busy`` and the holder file, and exits :data:`IMAGE_BUSY`. The job writes
    the host's clock at its start (``started``) and with its exit code (``ended``).

    ``marker`` (a retry's attempt line, see :func:`~matui.engine.build.retry.attempt_marker`)
    is appended to build.log before the build starts, never when attaching: the log itself
    then says where each attempt begins."""
    job = "\n".join(
        [
            # Held for the whole build, by this shell and everything it starts.
            "exec 9>>lock",
            "if command -v flock >/dev/null 2>&1; then flock -n 9 || exit 75; fi",
            *(image_lock.job_lines() if image_lock is not None else []),
            "date +%s.%N > started 2>/dev/null",
            "echo $$ > pid.tmp && mv pid.tmp pid",
            *_build_lines(argv),
            "rc=$?",
            f"rm -rf context {SECRETS_DIR} {SECRETS_DIR}.new",
            "date +%s.%N > ended 2>/dev/null",
            'echo "$rc" > exit.tmp && mv exit.tmp exit',
        ]
    )
    mark = ""
    if marker is not None:
        mark = f"printf '%s\\n' {quote(marker, 'attempt marker')} >> build.log\n"
    # Everything the job writes (job.sh, its log, outcome) is for its own user only.
    body = f"""{_RUNNING}
umask 077
if running; then echo "attached $(cat pid)"; exit 0; fi
rm -f exit pid metadata.json cancelled image-busy started ended
: >> build.log
{mark}printf '%s\\n' {shlex.quote(job)} > job.sh
(exec setsid sh ./job.sh) </dev/null >/dev/null 2>&1 &
i=0
while [ ! -s pid ] && [ ! -f image-busy ] && [ "$i" -lt 100 ]; do
  sleep 0.05; i=$((i + 1))
done
if [ -f image-busy ]; then echo "@@matui:image-busy"; cat image-busy; exit {IMAGE_BUSY}; fi
[ -s pid ] || {{ echo "build did not start" >&2; exit 98; }}
echo "started $(cat pid)"
"""
    return _in_job_dir(run_id, job_key, body)


PUSH_NOT_BUILT = 77
"""A push retry's exit code when the tag no longer names the image the job built on the host
(removed, or retagged by a later build): nothing was pushed, and a further retry cannot help."""


def push_script(
    run_id: str,
    job_key: str,
    ref: str,
    image_id: str,
    *,
    attempt: int,
    attempts: int,
    delay: float,
    image_lock: ImageLock | None = None,
) -> RemoteScript:
    """Push the image a job built, again, without building (``docker push REF``): a push retry
    after the registry rejected or dropped the build's own push.

    It runs in the job's directory exactly as the build does (detached, under the job's lock and
    the image's lock, its pid in ``pid``, its output appended to ``build.log``, its exit code
    written atomically to ``exit``, the host's clock to ``ended``), so following, cancelling and
    reattaching work on it unchanged. ``build.log`` gets a first line
    ``@@matui push retry N/M after D s: ...`` and, when it fails, a last line
    ``ERROR: push retry N/M failed (exit RC): <docker's last line>``. The tag must still name
    ``image_id`` (the image the build wrote), else nothing is pushed (exit
    :data:`PUSH_NOT_BUILT`). Prints ``started PID``, or ``attached PID`` when something runs in
    the job's directory already (another matui following this run started the same retry), and
    exits :data:`IMAGE_BUSY`, as :func:`launch_script` does."""
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", image_id):
        raise UnsafeValue(f"image id {image_id!r} is not a sha256 digest")
    step = f"push retry {int(attempt)}/{int(attempts)}"
    head = f"@@matui {step} after {float(delay):g} s: docker push {check_value(ref, 'ref')}"
    job = "\n".join(
        [
            "exec 9>>lock",
            "if command -v flock >/dev/null 2>&1; then flock -n 9 || exit 75; fi",
            *(image_lock.job_lines() if image_lock is not None else []),
            "rm -f exit cancelled ended",
            "echo $$ > pid.tmp && mv pid.tmp pid",
            f"echo {quote(head)} >> build.log",
            f"id=$(docker image inspect --format '{{{{.Id}}}}' -- {quote(ref)} 2>/dev/null)",
            f'if [ "$id" != {quote(image_id)} ]; then',
            f"  echo {quote(f'ERROR: {step} not made: {ref} on this host is')} "
            f'"${{id:-no image}}, not the image this job built ({image_id}); rebuild it"'
            " >> build.log",
            f"  rc={PUSH_NOT_BUILT}",
            "else",
            f"  docker push -- {quote(ref)} >> build.log 2>&1",
            "  rc=$?",
            '  if [ "$rc" != 0 ]; then',
            "    last=$(tail -n 1 build.log | cut -c 1-500)",
            f'    echo "ERROR: {step} failed (exit $rc): $last" >> build.log',
            "  fi",
            "fi",
            "date +%s.%N > ended 2>/dev/null",
            'echo "$rc" > exit.tmp && mv exit.tmp exit',
        ]
    )
    body = f"""{_RUNNING}
umask 077
if running; then echo "attached $(cat pid)"; exit 0; fi
rm -f pid image-busy
printf '%s\\n' {shlex.quote(job)} > push.sh
(exec setsid sh ./push.sh) </dev/null >/dev/null 2>&1 &
i=0
while [ ! -s pid ] && [ ! -f image-busy ] && [ "$i" -lt 100 ]; do
  sleep 0.05; i=$((i + 1))
done
if [ -f image-busy ]; then echo "@@matui:image-busy"; cat image-busy; exit {IMAGE_BUSY}; fi
[ -s pid ] || {{ echo "the push did not start" >&2; exit 98; }}
echo "started $(cat pid)"
"""
    return _in_job_dir(run_id, job_key, body)


# --- one build of an image per arch per host --------------------------------------------------
# A job's own lock covers its directory only; two matui processes (or operators) building the
# same image would each start a build per arch and push the same per-arch tags. So each job
# also holds ~/.matui/locks/<repo>-<hash>-<arch>.lock (flock, for the whole build, like its own
# lock) and writes who holds it beside it: <name>.holder, ``key=value`` lines.

LOCKS_DIR = ".matui/locks"
IMAGE_BUSY = 76
"""The launch script's exit code when the image's lock for this arch is held by another job."""


def image_lock_name(repository: str, arch: str) -> str:
    """A plain file name for (repository, arch): readable, and distinct for distinct pairs."""
    import hashlib

    digest = hashlib.sha256(f"{repository}\0{arch}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", repository).strip("._-")[-80:] or "image"
    return check_name(f"{readable}-{digest}-{re.sub(r'[^A-Za-z0-9]+', '-', arch)}", "lock name")


@dataclass(frozen=True)
class ImageLock:
    """The image lock a job holds, and what its holder file says about the job."""

    name: str
    user: str
    local_host: str
    run_id: str
    job_key: str

    def job_lines(self) -> list[str]:
        path = f'"$HOME"/{LOCKS_DIR}/{self.name}'
        holder = "\n".join(
            [
                f"user={check_value(self.user, 'user')}",
                f"host={check_value(self.local_host, 'local host')}",
                f"run={check_name(self.run_id, 'run id')}",
                f"job={check_name(self.job_key, 'job')}",
            ]
        )
        return [
            f'mkdir -p "$HOME"/{LOCKS_DIR} && exec 8>>{path}.lock || exit 1',
            "if command -v flock >/dev/null 2>&1; then flock -n 8 || { "
            f"cat {path}.holder > image-busy.tmp 2>/dev/null; mv image-busy.tmp image-busy; "
            f"exit {IMAGE_BUSY}; }}; fi",
            f"{{ printf '%s\\n' {shlex.quote(holder)}; "
            f'echo "since=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; }} > {path}.holder.$$ '
            f"&& mv {path}.holder.$$ {path}.holder",
        ]


@dataclass(frozen=True)
class ImageHolder:
    """Who holds an image's lock for an arch on a host (its holder file, as the host has it)."""

    lock: str
    user: str = "?"
    local_host: str = "?"
    run_id: str = "?"
    job_key: str = "?"
    since: str = "?"

    @classmethod
    def parse(cls, lock: str, text: str) -> ImageHolder:
        values: dict[str, str] = {}
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep and name in ("user", "host", "run", "job", "since"):
                values[name] = value.strip()[:200]
        return cls(
            lock,
            values.get("user", "?"),
            values.get("host", "?"),
            values.get("run", "?"),
            values.get("job", "?"),
            values.get("since", "?"),
        )

    def line(self) -> str:
        """``run R of USER@MACHINE, since T``: who holds the lock and since when (host's UTC)."""
        return f"run {self.run_id} of {self.user}@{self.local_host}, since {self.since}"


def image_lock_status_script(names: Sequence[str]) -> RemoteScript:
    """For each held lock among ``names``: ``@@matui:held=NAME``, its holder file, then
    ``@@matui:end``. A host without flock reports nothing (it has no image locks either)."""
    lines = ['cd "$HOME" || exit 97', "command -v flock >/dev/null 2>&1 || exit 0"]
    for name in names:
        path = quote(f"{LOCKS_DIR}/{check_name(name, 'lock name')}")
        lines.append(
            f"if [ -f {path}.lock ] && ! flock -n {path}.lock true; then "
            f'echo "@@matui:held={name}"; cat {path}.holder 2>/dev/null; echo; '
            'echo "@@matui:end"; fi'
        )
    lines.append("exit 0")
    return RemoteScript("\n".join(lines) + "\n")


def parse_image_holders(text: str) -> list[ImageHolder]:
    holders: list[ImageHolder] = []
    name: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith("@@matui:held="):
            name, body = line[len("@@matui:held=") :].strip(), []
        elif line == "@@matui:end" and name is not None:
            holders.append(ImageHolder.parse(name, "\n".join(body)))
            name = None
        elif name is not None:
            body.append(line)
    return holders


def follow_script(run_id: str, job_key: str, offset: int, pid: int) -> RemoteScript:
    """Stream build.log from byte ``offset`` until the build has ended.

    The end is the atomically written ``exit`` file (or the process being gone), not
    ``tail --pid``: a finished build stays a zombie until init reaps it, which on some hosts
    takes over a second. Whatever tail had not sent when it is stopped, the client reads by
    offset afterwards (:func:`read_from_script`), so nothing is lost. A job that has already
    ended (a reattach after the fact) streams its backlog straight, in one pass.
    """
    return _in_job_dir(
        run_id,
        job_key,
        f"""[ -f exit ] && exec tail -c +{int(offset) + 1} build.log
{_RUNNING}tail -c +{int(offset) + 1} -F -s 0.1 build.log 2>/dev/null & t=$!
while [ ! -f exit ] && running; do sleep 0.05; done
sleep 0.05
kill "$t" 2>/dev/null
wait "$t" 2>/dev/null
exit 0
""",
    )


def read_from_script(run_id: str, job_key: str, offset: int, size: int) -> RemoteScript:
    """Exactly the bytes ``[offset, size)`` of build.log."""
    count = max(0, int(size) - int(offset))
    return _in_job_dir(run_id, job_key, f"tail -c +{int(offset) + 1} build.log | head -c {count}\n")


def outcome_script(run_id: str, job_key: str) -> RemoteScript:
    """Report what is known for sure: exit code, metadata, whether it was cancelled or runs on."""
    return _in_job_dir(
        run_id,
        job_key,
        _RUNNING
        + """
echo "@@matui:exit=$(cat exit 2>/dev/null)"
if [ ! -f exit ] && running; then echo "@@matui:running=1"; fi
# A build that started after its private inputs came and runs no more (ended, or killed before
# job.sh could remove them): they go now.
if [ -d secrets ] && [ pid -nt secrets ] && ! running; then rm -rf secrets; fi
[ -f cancelled ] && echo "@@matui:cancelled=1"
echo "@@matui:size=$(wc -c < build.log)"
echo "@@matui:started=$(cat started 2>/dev/null)"
echo "@@matui:now=$(date +%s.%N 2>/dev/null)"
echo "@@matui:ended=$(cat ended 2>/dev/null)"
echo "@@matui:metadata"
cat metadata.json 2>/dev/null
""",
    )


def cancel_script(run_id: str, job_key: str, grace: float = 5.0) -> RemoteScript:
    """Stop the build's whole process group: TERM, then KILL after ``grace`` seconds.

    A cancel is a request; the host answers what became of it in one line, which
    :func:`parse_cancel_answer` reads:

    ``@@matui:cancel=stopped EXIT``   the group was running and is gone now (EXIT: its exit code)
    ``@@matui:cancel=finished EXIT``  the build had ended before the cancel arrived (nothing sent)
    ``@@matui:cancel=not-started``    the job never launched on this host
    ``@@matui:cancel=still-running``  the group survived KILL (it is not ours to end)

    The ``cancelled`` marker is written only when a signal really went to a running group, so a
    job that finished first is never taken for a cancelled one.
    """
    steps = max(1, int(grace * 10))
    return _in_job_dir(
        run_id,
        job_key,
        f"""
[ -f pid ] || {{ echo "@@matui:cancel=not-started"; exit 0; }}
pg=$(cat pid)
if [ -f exit ]; then echo "@@matui:cancel=finished $(cat exit)"; exit 0; fi
if ! kill -0 -"$pg" 2>/dev/null; then
  i=0
  while [ ! -f exit ] && [ "$i" -lt 20 ]; do sleep 0.05; i=$((i + 1)); done
  echo "@@matui:cancel=finished $(cat exit 2>/dev/null)"
  exit 0
fi
echo cancelled > cancelled
kill -TERM -"$pg" 2>/dev/null
i=0
while kill -0 -"$pg" 2>/dev/null && [ "$i" -lt {steps} ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL -"$pg" 2>/dev/null
# Killed processes stay zombies until their parent (init, for a detached build) reaps them,
# which can take a second or more: only a live, non-zombie member means it survived.
alive() {{
  ps -e -o pgid= -o stat= 2>/dev/null | awk -v pg="$pg" '$1 == pg && $2 !~ /^Z/ {{ f = 1 }}
    END {{ exit !f }}'
}}
i=0
while alive && [ "$i" -lt 20 ]; do sleep 0.05; i=$((i + 1)); done
if alive; then echo "@@matui:cancel=still-running"; exit 0; fi
rm -rf context {SECRETS_DIR} {SECRETS_DIR}.new
[ -f exit ] || {{ date +%s.%N > ended 2>/dev/null; echo 143 > exit.tmp && mv exit.tmp exit; }}
echo "@@matui:cancel=stopped $(cat exit)"
exit 0
""",
    )


@dataclass(frozen=True)
class CancelAnswer:
    """What the host said a cancel did (see :func:`cancel_script`)."""

    word: str
    """``stopped``, ``finished``, ``not-started``, ``still-running`` or ``unknown``."""
    exit_code: int | None = None


def parse_cancel_answer(text: str) -> CancelAnswer:
    for line in text.splitlines():
        if line.startswith("@@matui:cancel="):
            word, _, rest = line[len("@@matui:cancel=") :].strip().partition(" ")
            code = rest.strip()
            return CancelAnswer(word, int(code) if code.lstrip("-").isdigit() else None)
    return CancelAnswer("unknown")


# --- what matui leaves on a host -------------------------------------------------------------
# `matui gc` lists every job directory with the facts the engine decides on (host clock, so no
# skew with the operator's), then removes what is due in a second script that re-checks each
# one under the job's lock: a job that started, or changed, since it was listed is left alone.

#: The files whose newest mtime says when a job was last touched (its directory's own mtime when
#: it has none of them); the listing and the removal's re-check use the same list.
GC_JOB_FILES = ("build.log", "pid", "exit", "context", "job.sh", "metadata.json", "lock")

_GC_HELPERS = f"""kib() {{ set -- $(du -sk "$1" 2>/dev/null); echo "${{1:-0}}"; }}
newest() {{
  n=$(stat -c %Y {" ".join(GC_JOB_FILES)} 2>/dev/null | sort -n | tail -n 1)
  [ -n "$n" ] || n=$(stat -c %Y . 2>/dev/null)
  echo "${{n:-0}}"
}}
ended() {{ if [ -f exit ]; then stat -c %Y exit 2>/dev/null || echo 0; else echo -; fi; }}
"""


def gc_list_script() -> RemoteScript:
    """Everything matui keeps on the host, in sections a few commands print for all jobs at
    once (a job per command would take seconds on a host with a hundred of them; the paths go
    through ``xargs``, so thousands of them never hit the host's argument limit)::

        @@matui:now=EPOCH            the host's clock, which every mtime below is compared to
        @@matui:storage=ID UID HOME  tells two host entries that reach one home directory apart
        @@matui:total=KIB            all of ~/.matui
        @@matui:sizes                `du -k` of each run, job and context directory (KiB, path)
        @@matui:mtimes               `stat` mtime and path of each job directory and its files
        @@matui:exits                RUN/JOB/exit:CODE
        @@matui:running              RUN/JOB of each job without an exit code whose lock is held
        @@matui:end

    Paths are relative to ``~/.matui/runs``. Nothing here changes anything on the host.
    """
    files = " ".join(f'"$j/{name}"' for name in GC_JOB_FILES)
    return RemoteScript(
        'cd "$HOME" || exit 97\n'
        + _RUNNING
        + f"""echo "@@matui:now=$(date +%s)"
echo "@@matui:storage=$(cat /etc/machine-id 2>/dev/null || hostname) $(id -u) $HOME"
[ -d .matui ] || {{ echo "@@matui:end"; exit 0; }}
set -- $(du -sk .matui 2>/dev/null)
echo "@@matui:total=${{1:-0}}"
cd .matui/runs 2>/dev/null || {{ echo "@@matui:end"; exit 0; }}
echo "@@matui:sizes"
du -k -d 3 . 2>/dev/null
echo "@@matui:mtimes"
for j in */*; do
  case "$j" in *[!A-Za-z0-9_./-]*) continue ;; esac
  printf '%s\\000' "$j" {files}
done | xargs -0 -r stat -c '%Y %n' -- 2>/dev/null
echo "@@matui:exits"
for j in */*; do [ -f "$j/exit" ] && printf '%s\\000' "$j/exit"; done \\
  | xargs -0 -r grep -s -H -m 1 '' --
echo "@@matui:running"
for j in */*; do
  [ -d "$j" ] && [ ! -f "$j/exit" ] && (cd "$j" && running) && echo "$j"
done
echo "@@matui:end"
exit 0
"""
    )


@dataclass(frozen=True)
class GcTarget:
    """One thing to remove from a host, with the state it was listed in."""

    run_id: str
    job_key: str
    whole_job: bool
    """The whole job directory; else only its context copy."""
    ended: int | None
    """The exit file's mtime when listed; ``None``: it had none."""
    newest: int
    """The newest mtime among the job's files when listed."""


def gc_remove_script(targets: Sequence[GcTarget]) -> RemoteScript:
    """Remove each target that is still as listed; one ``@@matui:result INDEX WORD`` line each.

    WORD is ``removed``, ``running`` (its lock is held: never touched), ``changed`` (it ended,
    restarted or was written to since the listing), ``gone`` or ``failed``. Each target is
    checked with the job's lock held and moved aside in one rename, so the lock is held for
    milliseconds; the moved-aside files are deleted at the end (and by the next gc, should this
    one be cut short). ``@@matui:total`` is what matui keeps on the host afterwards, in KiB.
    """
    lines = [
        'cd "$HOME" || exit 97',
        _RUNNING + _GC_HELPERS.rstrip("\n"),
        "t=.matui/.gc-trash.$$",
        "for old in .matui/.gc-trash.*; do",
        '  [ -d "$old" ] && ! kill -0 "${old##*.}" 2>/dev/null && rm -rf "$old"',
        "done",
        'mkdir -p "$t" || exit 96',
        """gc_one() {
  ( cd "$1" 2>/dev/null || { echo "@@matui:result $5 gone"; exit 0; }
    if [ -f lock ] && command -v flock >/dev/null 2>&1; then
      exec 9>>lock
      flock -n 9 || { echo "@@matui:result $5 running"; exit 0; }
    elif running; then echo "@@matui:result $5 running"; exit 0; fi
    if [ "$(ended)" != "$3" ] || [ "$(newest)" != "$4" ]; then
      echo "@@matui:result $5 changed"; exit 0
    fi
    if [ "$2" = context ]; then
      rm -rf secrets secrets.new
      [ -d context ] || { echo "@@matui:result $5 gone"; exit 0; }
      mv context "$HOME/$t/$5"
    else
      cd "$HOME" && mv "$1" "$t/$5"
    fi && echo "@@matui:result $5 removed" || echo "@@matui:result $5 failed"
  )
}""",
    ]
    runs: set[str] = set()
    for index, target in enumerate(targets):
        path = quote(job_dir(target.run_id, target.job_key))
        what = "job" if target.whole_job else "context"
        ended = "-" if target.ended is None else str(int(target.ended))
        lines.append(f"gc_one {path} {what} {ended} {int(target.newest)} {index}")
        if target.whole_job:
            runs.add(target.run_id)
    lines.append('rm -rf "$t"')
    # A run directory emptied here goes too; one that still holds a job stays (rmdir refuses).
    lines += [f"rmdir {quote(f'{RUNS_DIR}/{run}')} 2>/dev/null" for run in sorted(runs)]
    lines.append('echo "@@matui:total=$(kib .matui)"')
    return RemoteScript("\n".join(lines) + "\n")


def imagetools_create_argv(
    targets: list[str], sources: list[str], *, dry_run: bool = False
) -> list[str]:
    """`imagetools create` for an index: one --tag per target, sources pinned by digest."""
    argv = ["docker", "buildx", "imagetools", "create"]
    argv += [f"--tag={target}" for target in targets]
    if dry_run:
        argv.append("--dry-run")
    return [*argv, "--", *sources]


def engine_script() -> RemoteScript:
    """The docker engine's server version, to tell whether it answers right now."""
    return RemoteScript("docker version --format '{{.Server.Version}}'\n")


def builder_inspect_script(builder: str) -> RemoteScript:
    """What a host entry's builder is (driver, nodes): read by
    :func:`matui.engine.builders.parse_inspect`."""
    return RemoteScript.from_argv(["docker", "buildx", "inspect", check_name(builder, "builder")])
