"""What matui costs on top of the builds themselves.

Measures, side by side in one run, the wall time of a two-arch build (amd64 native, arm64 under
QEMU on the rig) through matui's engine against the same work done by hand: the same context
tarred over the OpenSSH client and the same ``docker buildx build`` commands, both arches in
parallel, each build's output brought back over ssh into a local file (what a person running
them by hand sees; matui keeps a local copy of each log too). Two builds, interleaved round by
round:

- ``small``: a few steps and a few lines of output (the overhead of matui's plumbing);
- ``log``: the same plus a RUN step printing 200 000 lines (where the log path costs: matui
  reads each line through its engine, parser and event queue; by hand, ssh copies bytes).

Each round builds both sides once, from a fresh Dockerfile each (a new cache key: both really
build), matui first in odd rounds and by hand first in even ones, and prints its ratio. The
figure is the median of the rounds' ratios, with their spread (min-max, IQR) and a
distribution-free 95 % interval of the median, so that it resolves the 5 % target.

A round where either side fails for a registry or infrastructure reason (push rejected, blob
unknown, digest invalid, a reset connection, a lost host; or matui's own push retry had to
deliver an image, which times a registry hiccup, not matui) is run again, at most ``--retries``
times, and the output says why. A failure that repeats, or a build error, ends that build's
rounds: its figure is missing and the output says why (``no figure: ...``), the other build
still gets its figure.

    . /tmp/matui-rig/env && .venv/bin/python benchmarks/build_overhead.py [--rounds 9] [--small]
    ... --profile /tmp/matui.prof   # also cProfile matui's side (the ratio then includes it)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import math
import os
import pstats
import re
import resource
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # run as a script: make `benchmarks.common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Figure, emit, machine, now, remove_run_script, rig_env, ssh_argv
from matui.engine.build import start_build
from matui.engine.config import load_config
from matui.engine.records import JobState, RunRecord
from matui.engine.shell import buildx_argv
from matui.engine.ssh import SshPool

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN echo %s; for i in $(seq 1 20); do echo "work $i"; done
%sRUN sleep 1; echo done > /done
"""

LOG_STEP = "RUN seq 1 %d\n"
"""The step of the ``log`` build: N lines of output in one step."""

LOG_LINES = 200_000
SMALL_LOG_LINES = 20_000
"""The ``log`` build's lines under ``--small`` (CI proves it runs, quickly)."""

REPOSITORY = "bench/overhead"
"""Where both sides push (in the rig's registry, or ``--registry``)."""

TARGET = 1.05
NO_FIGURE = "no figure: "
"""What a build's last line starts with when its figure is missing (the runner shows it)."""

TRANSIENT_RE = re.compile(
    r"blob unknown|digest invalid|manifest (?:unknown|invalid)|unexpected EOF|"
    r"connection (?:reset|refused)|broken pipe|i/o timeout|TLS handshake timeout|"
    r"toomanyrequests|429 Too Many Requests|50[0234] |Service Unavailable|Bad Gateway|"
    r"failed to (?:push|do request)|server misbehaving|no such host|"
    r"Connection closed|Connection timed out|ssh_exchange|kex_exchange|"
    # buildx 0.13.1 loses its status stream on a burst of >100 k lines in one step (field
    # notes): the build client's fault, on either side, not the build's.
    r"failed to receive status: rpc error",
    re.IGNORECASE,
)
"""A registry's, the network's or buildx's own fault, in a by-hand build's output or a matui
failure."""

TRANSIENT_CAUSES = {"registry-push-failed", "network-failure", "host-or-engine-lost"}
"""matui's own failure causes that are the registry's or the infrastructure's fault."""


class Transient(Exception):
    """A side failed for the registry's or the infrastructure's sake: run the round again."""


class BuildFailed(Exception):
    """A side failed for a reason a re-run will not change."""


@dataclass
class Series:
    """One build's rounds."""

    name: str
    what: str
    lines: int
    matui: list[float] = field(default_factory=list)
    hand: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    missing: str | None = None
    """Why the figure is missing; None while it is not."""
    phases: list[tuple[float, float, float]] = field(default_factory=list)
    """matui's side per round: seconds to start (connect, probe, pre-flight, record), to run
    (upload, build, follow, post-build checks) and to close the pool."""
    cpu: list[tuple[float, float]] = field(default_factory=list)
    """CPU seconds per round: matui's process (this one, while its side ran), and the by-hand
    side's local processes (ssh, tar)."""


# -- the project --------------------------------------------------------------------------------


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


def fresh_dockerfile(root: Path, lines: int) -> None:
    """A Dockerfile no cache has seen (its first RUN echoes a new token)."""
    extra = LOG_STEP % lines if lines else ""
    (root / "ctx" / "Dockerfile").write_text(DOCKERFILE % (secrets.token_hex(8), extra))


# -- the two sides ------------------------------------------------------------------------------


def matui_trouble(record: RunRecord) -> tuple[str, bool] | None:
    """Why a finished matui run does not time a clean build, and whether that is transient
    (the registry's or the infrastructure's fault); None when it does."""
    for job in record.jobs:
        if job.state is not JobState.SUCCEEDED:
            failure = job.failure or {}
            cause = str(failure.get("cause") or "")
            said = str(failure.get("error") or job.error or job.state.value)
            reason = f"matui {job.arch} {job.state.value}"
            reason += f" ({cause}): {said}" if cause else f": {said}"
            transient = cause in TRANSIENT_CAUSES or bool(TRANSIENT_RE.search(said))
            return reason, transient
    for job in record.jobs:
        if job.push_attempts:
            return (
                f"matui {job.arch} push failed ({first_transient(record.log_path(job.key))}); "
                f"matui's own push retry delivered it ({len(job.push_attempts)} attempt(s)): "
                "that times the registry, not matui",
                True,
            )
        if job.moves:
            move = job.moves[0]
            return (
                f"matui {job.arch} moved from {move.get('from')} to {move.get('to')} "
                f"({move.get('cause')}): the host failed, not matui",
                True,
            )
    return None


async def through_matui(config_path: Path, state: Path, runs: list[str]) -> tuple[float, ...]:
    """One build through matui's engine, as a front end drives it (every event read); its
    wall time and the phases (start, run, close) as seconds since it began."""
    started = time.perf_counter()
    config = load_config(config_path)
    try:
        async with SshPool(config.hosts) as pool:
            prepared = await start_build(config, pool, state_root=state)
            launched = time.perf_counter()
            runs.append(prepared.run.record.id)
            async for _ in prepared.run.events():
                pass
            await prepared.run.wait()
            ended = time.perf_counter()
    except (TimeoutError, OSError) as exc:
        raise Transient(f"matui could not reach a host: {exc}") from exc
    except Exception as exc:  # the engine's own errors: pre-flight refusals, SSH failures
        text = f"matui did not start: {type(exc).__name__}: {exc}"
        if TRANSIENT_RE.search(str(exc)) or "asyncssh" in type(exc).__module__:
            raise Transient(text) from exc
        raise BuildFailed(text) from exc
    closed = time.perf_counter()
    for job in prepared.run.record.jobs:
        print(
            f"    matui {job.arch}: {job.seconds} s on {job.host}, {job.lines} lines",
            file=sys.stderr,
        )
    trouble = matui_trouble(prepared.run.record)
    if trouble is not None:
        reason, transient = trouble
        raise (Transient if transient else BuildFailed)(
            reason + f" (record: {prepared.run.record.dir})"
        )
    return closed - started, launched - started, ended - started, closed - started


def by_hand(root: Path, env: dict[str, str], repo: str, logs: Path) -> float:
    """The same work with the OpenSSH client: tar the context over ssh, build, push, both
    arches in parallel, each build's output coming back over ssh into a local file."""
    jobs = [("amd64", env["MATUI_RIG_PORT_AMD64"]), ("arm64", env["MATUI_RIG_PORT_EMU"])]
    workdir = f".bench/{secrets.token_hex(6)}"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    procs = []
    for arch, port in jobs:
        argv = buildx_argv(
            platform=f"linux/{arch}",
            ref=f"{repo}:hand-{arch}",
            dockerfile="Dockerfile",
            build_args=["BASE"],
            labels={},
            target=None,
        )
        remote = (
            f"mkdir -p {workdir}/{arch}/context && tar -x -f - -C {workdir}/{arch}/context && "
            f"cd {workdir}/{arch} && "
            # buildx reads a --build-arg=NAME's value from its environment, as in job.sh
            + f"BASE={shlex.quote(env['MATUI_RIG_BASE_IMAGE'])} "
            + " ".join(shlex.quote(a) for a in argv)
            + " 2>&1"
        )
        ssh = ssh_argv(env, remote, port=port)
        tar = subprocess.Popen(["tar", "-c", "-C", str(root / "ctx"), "."], stdout=subprocess.PIPE)
        with (logs / f"{arch}.log").open("wb") as out:
            procs.append((arch, subprocess.Popen(ssh, stdin=tar.stdout, stdout=out)))
        assert tar.stdout is not None
        tar.stdout.close()
    codes = [(arch, p.wait()) for arch, p in procs]
    elapsed = time.perf_counter() - started
    subprocess.run(ssh_argv(env, f"rm -rf {workdir}"), capture_output=True)
    for arch, code in codes:
        if code:
            raise hand_failure(arch, code, logs / f"{arch}.log")
    return elapsed


def first_transient(log: Path) -> str:
    """The first line of a log saying the registry or the network failed (else a stand-in)."""
    try:
        with log.open("rb") as f:
            for raw in f:
                line = raw.decode(errors="replace").strip()
                if TRANSIENT_RE.search(line):
                    return line[-300:]
    except OSError:
        pass
    return "the registry rejected it"


def hand_failure(arch: str, code: int, log: Path) -> Exception:
    """Why a by-hand build failed, out of its output: transient when the registry or the
    connection failed (or ssh itself, exit 255), else a build error."""
    lines = [ln.strip() for ln in log.read_bytes().decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    registry = next((ln for ln in reversed(lines) if TRANSIENT_RE.search(ln)), None)
    if registry is not None:
        what = "push failed" if "push" in " ".join(lines[-20:]).lower() else "failed"
        return Transient(f"by hand {arch} {what}: {registry[-300:]}")
    last = lines[-1][-300:] if lines else "(no output)"
    if code == 255:
        return Transient(f"by hand {arch}: ssh failed (exit 255): {last}")
    return BuildFailed(f"by hand {arch} exited {code}: {last}")


# -- figures ------------------------------------------------------------------------------------


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """A distribution-free interval of the median (order statistics): low, high and its
    coverage (>= 95 % when there are at least 6 values; else min-max and what it covers)."""
    xs = sorted(values)
    n = len(xs)
    k = 0  # P(Binomial(n, 1/2) <= k) <= 2.5 %: the (k+1)-th smallest and largest bound it
    while sum(math.comb(n, i) for i in range(k + 2)) / 2**n <= 0.025:
        k += 1
    coverage = 1 - 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return xs[k], xs[n - 1 - k], coverage


def summary(series: Series) -> str:
    r = series.ratios
    low, high, coverage = median_interval(r)
    m = statistics.median(r)
    parts = [f"median of {len(r)} rounds' ratios {m:.3f}", f"min-max {min(r):.3f}-{max(r):.3f}"]
    if len(r) >= 4:
        q1, _, q3 = statistics.quantiles(r, n=4, method="inclusive")
        parts.append(f"IQR {q1:.3f}-{q3:.3f}")
    if len(r) >= 2:
        parts.append(f"{coverage:.0%} interval of the median {low:.3f}-{high:.3f}")
    verdict = (
        f"met with {(TARGET - m) / TARGET:.1%} to spare"
        if m <= TARGET
        else f"missed by {(m - TARGET) / TARGET:.1%}"
    )
    parts.append(verdict)
    if series.retried:
        parts.append(f"{len(series.retried)} round(s) retried")
    parts.append("rounds " + " ".join(f"{x:.3f}" for x in r))
    return ", ".join(parts)


def figure(series: Series) -> Figure:
    m = statistics.median(series.ratios)
    return Figure(
        name=series.name,
        what=series.what,
        value=statistics.median(series.matui),
        unit="s",
        baseline="same buildx over ssh by hand",
        baseline_value=statistics.median(series.hand),
        ratio=m,
        ratio_text="matui time / by-hand time (median of paired rounds)",
        target=f"<= {TARGET}x",
        met=m <= TARGET,
        detail=summary(series) + " (benchmarks/build_overhead.py)",
    )


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


# -- the run ------------------------------------------------------------------------------------


def run_round(
    series: Series,
    number: int,
    *,
    root: Path,
    config: Path,
    env: dict[str, str],
    repo: str,
    runs: list[str],
    profile: cProfile.Profile | None,
) -> None:
    """Both sides once, in this round's order; raises Transient or BuildFailed."""
    order = ("matui", "hand") if number % 2 == 1 else ("hand", "matui")
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}
    phases: tuple[float, ...] = ()
    for side in order:
        fresh_dockerfile(root, series.lines)
        if side == "matui":
            if profile is not None:
                profile.enable()
            before = resource.getrusage(resource.RUSAGE_SELF)
            try:
                measured = asyncio.run(through_matui(config, root / "state", runs))
            finally:
                if profile is not None:
                    profile.disable()
            cpu["matui"] = cpu_seconds(before, resource.getrusage(resource.RUSAGE_SELF))
            times["matui"], phases = measured[0], measured[1:]
        else:
            logs = root / "hand" / f"{series.name}-{number}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            times["hand"] = by_hand(root, env, repo, logs)
            cpu["hand"] = cpu_seconds(before, resource.getrusage(resource.RUSAGE_CHILDREN))
    ratio = times["matui"] / times["hand"]
    series.matui.append(times["matui"])
    series.hand.append(times["hand"])
    series.ratios.append(ratio)
    series.phases.append((phases[0], phases[1] - phases[0], phases[2] - phases[1]))
    series.cpu.append((cpu["matui"], cpu["hand"]))
    print(
        f"{series.name} round {number} ({order[0]} first): matui {times['matui']:.2f} s "
        f"(start {phases[0]:.2f}, run {phases[1] - phases[0]:.2f}, close "
        f"{phases[2] - phases[1]:.2f}; CPU {cpu['matui']:.2f} s), by hand "
        f"{times['hand']:.2f} s (ssh and tar CPU {cpu['hand']:.2f} s), ratio {ratio:.3f}",
        flush=True,
    )


def cpu_seconds(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    """User + system CPU between two getrusage readings."""
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(
    series: Sequence[Series],
    rounds: int,
    retries: int,
    do_round: Callable[[Series, int], None],
) -> None:
    """``rounds`` rounds of each build, interleaved (load that drifts during the run weighs on
    both alike). A round raising :class:`Transient` is run again, at most ``retries`` times, and
    says so; one failing more often, or raising :class:`BuildFailed`, ends its build's rounds
    with the reason in :attr:`Series.missing` (printed as ``NAME: no figure: ...``)."""
    for number in range(1, rounds + 1):
        for s in series:
            if s.missing is not None:
                continue
            for attempt in range(1, retries + 2):
                try:
                    do_round(s, number)
                    break
                except Transient as exc:
                    if attempt > retries:
                        s.missing = (
                            f"round {number} failed {attempt} times for a registry or "
                            f"infrastructure reason; the last: {exc}"
                        )
                    else:
                        s.retried.append(f"round {number}: {exc}")
                        print(
                            f"{s.name} round {number} retried ({attempt} of {retries}): {exc}",
                            flush=True,
                        )
                except BuildFailed as exc:
                    s.missing = f"round {number} failed (not transient, not retried): {exc}"
                    break
            if s.missing is not None:
                print(f"{s.name}: {NO_FIGURE}{s.missing}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None, help="rounds per build (default 9)")
    p.add_argument("--small", action="store_true", help="CI: 1 round, a 20 000-line log build")
    p.add_argument("--retries", type=int, default=2, help="re-runs of a round (transient)")
    p.add_argument("--lines", type=int, default=None, help="lines of the log build's step")
    p.add_argument("--only", choices=("small", "log"), help="one build only")
    p.add_argument("--profile", type=Path, help="cProfile matui's side into this file")
    p.add_argument("--registry", help="push here (HOST:PORT) instead of the rig's registry")
    args = p.parse_args()
    rounds = args.rounds or (1 if args.small else 9)
    lines = args.lines or (SMALL_LOG_LINES if args.small else LOG_LINES)
    env = rig_env()
    repo = f"{args.registry or env['MATUI_RIG_REGISTRY']}/{REPOSITORY}"
    print(f"machine: {machine()}", flush=True)
    print(f"date: {now()}; at start: {loadavg()}", flush=True)
    series = [
        Series("build_overhead", "two-arch build (amd64 native, arm64 under QEMU)", 0),
        Series(
            "build_overhead_200k",
            f"two-arch build with a {lines:,}-line RUN step".replace(",", " "),
            lines,
        ),
    ]
    if args.only:
        series = [s for s in series if (s.lines == 0) == (args.only == "small")]
    profile = cProfile.Profile() if args.profile else None
    runs: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_project(root, env, repo)

        def do_round(s: Series, number: int) -> None:
            run_round(
                s,
                number,
                root=root,
                config=config,
                env=env,
                repo=repo,
                runs=runs,
                profile=profile,
            )

        measure(series, rounds, args.retries, do_round)
    cleanup(env, runs)
    print(f"at end: {loadavg()}", flush=True)
    for s in series:
        if s.missing is None and s.ratios:
            start, run, close = (statistics.median(p[i] for p in s.phases) for i in range(3))
            mine, theirs = (statistics.median(c[i] for c in s.cpu) for i in range(2))
            print(
                f"{s.name}: matui's side, medians: start {start:.2f} s (connect, probe, "
                f"pre-flight, record), run {run:.2f} s (upload, build, follow, post-build "
                f"checks), close {close:.2f} s; CPU of matui's process {mine:.2f} s, of "
                f"ssh and tar by hand {theirs:.2f} s",
                flush=True,
            )
            emit(figure(s))
    if profile is not None:
        report_profile(profile, args.profile)
    return 0 if all(s.missing is None for s in series) else 1


def cleanup(env: dict[str, str], runs: list[str]) -> None:
    """Remove matui's job directories from the rig host (both rig hosts share it; by_hand
    removes its own)."""
    script = "".join(remove_run_script(run) for run in runs) or ":\n"
    subprocess.run(ssh_argv(env, "sh -s"), input=script, text=True, capture_output=True)


def report_profile(profile: cProfile.Profile, path: Path) -> None:
    profile.dump_stats(str(path))
    for sort in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(sort).print_stats(25)
        print(f"-- matui's side, cProfile by {sort} (all rounds):", file=sys.stderr)
        print(out.getvalue(), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
