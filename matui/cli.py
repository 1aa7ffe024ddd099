"""The `matui` command: the dashboard by default, headless subcommands for scripts and CI.

Imports of the engine, asyncssh and Textual happen inside the commands so that `matui --help`
and config errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from matui.engine.build import ImageLocked
    from matui.engine.build.run import BuildRun, JobStatus
    from matui.engine.build.steps import Comparison
    from matui.engine.config import Config, HostConfig
    from matui.engine.flags import CheckReport
    from matui.engine.hostgc import GcReport
    from matui.engine.publish import PublishPreview, PublishReport
    from matui.engine.records import RunRecord
    from matui.engine.ssh import SshPool

_T = TypeVar("_T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _run(main: Coroutine[Any, Any, _T]) -> _T:
    # asyncio is imported here, not at the top: it is most of what `matui --help` would load.
    import asyncio

    return asyncio.run(main)


class UsageError(Exception):
    """Bad input from the user: printed as-is, exit code 2."""


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="config file (default: $MATUI_CONFIG, ./matui.toml, "
        "$XDG_CONFIG_HOME/matui/config.toml)",
    )


def _image_options(
    parser: argparse.ArgumentParser, *, tags_default: str, many: str | None = None
) -> None:
    if many:  # a release: several images at once
        parser.add_argument(
            "--image",
            action="append",
            dest="images",
            metavar="NAME",
            help=f"image name (repeatable; default: every image in the config, {many})",
        )
    else:
        parser.add_argument("--image", help="image name (default: the only image in the config)")
    parser.add_argument(
        "--tag",
        action="append",
        dest="tags",
        metavar="TAG",
        help=f"release tag (repeatable; default: {tags_default})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matui",
        description="Build multi-architecture container images natively on SSH builder hosts. "
        "Without a command, opens the dashboard.",
    )
    _config_option(parser)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--image",
        help="dashboard: the image to build (default: the only one; several: the release view)",
    )
    parser.add_argument(
        "--tag",
        action="append",
        dest="tags",
        metavar="TAG",
        help="dashboard: release tag (repeatable; default: the image's tags)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="probe every builder host and flag arch mismatches")
    _config_option(check)
    check.add_argument("--json", action="store_true", help="print one JSON document")

    build = sub.add_parser(
        "build",
        help="build every arch natively on its host, all at once",
        description=(
            "Build every arch natively on its host, all at once. One build of an image per arch "
            "runs on a host at a time, whoever starts it: when another run holds the image's "
            "lock for an arch, a run recorded on this machine is followed read-only (the same "
            "logs; Ctrl-C detaches and it goes on), and another operator's is refused, naming "
            "who holds it (user, machine, run, since when). "
            "Ctrl-C CANCELS the builds (unlike the dashboard's q and `matui attach`, which "
            "leave them running): it asks the hosts to stop them, and a job ends cancelled only "
            "when its host stopped it, succeeded (with its digest) when it had finished first, "
            "lost when the cancel could not be delivered. To leave a build running, kill matui "
            "otherwise (its terminal closing, SIGTERM) and `matui attach` later."
        ),
    )
    _config_option(build)
    _image_options(build, tags_default="the image's tags", many="all built at once")
    build.add_argument(
        "--json", action="store_true", help="log lines to stderr, one JSON document on stdout"
    )

    attach = sub.add_parser(
        "attach",
        help="follow a run that is still building on its hosts (the newest by default)",
        description=(
            "Follow a run that is still building on its hosts (the newest unfinished one by "
            "default): its log so far, then live, then its summary. Ctrl-C DETACHES: the builds "
            "go on on their hosts (`matui attach` again follows them, `matui cancel` stops "
            "them). Exit 0 when the run ends publishable, 1 otherwise or when detached."
        ),
    )
    _config_option(attach)
    attach.add_argument("--run", help="run id or unique prefix")
    attach.add_argument("run_id", nargs="?", metavar="RUN", help="the same as --run RUN")
    attach.add_argument(
        "--json", action="store_true", help="log lines to stderr, one JSON document on stdout"
    )

    cancel = sub.add_parser(
        "cancel",
        help="stop the builds of a run left running on its hosts (the newest by default)",
        description=(
            "Stop builds that a detached matui left running on their hosts (the newest "
            "unfinished run by default; every arch unless --arch). A cancel is a request: each "
            "host answers, and each job ends as its host says — cancelled when the host "
            "stopped it, succeeded or failed when it had ended first, lost when the cancel "
            "could not be delivered (it may still be running). Exit 0 when every cancel was "
            "delivered and answered, 1 when one was not (the build may still be running)."
        ),
    )
    _config_option(cancel)
    cancel.add_argument("--run", help="run id or unique prefix")
    cancel.add_argument("--arch", help="only this arch (amd64, linux/arm64, ...)")

    retry = sub.add_parser(
        "retry",
        help="build one failed arch of a finished run again; the other arches keep their digests",
        description=(
            "Build one failed, cancelled or lost arch of a finished run again (the latest run "
            "of the config's image by default), as a new attempt in the same run: the other "
            "arches keep their digests, the job's log keeps every attempt. Before it starts, "
            "the retry that fits the failure's cause is named. The exit code is the run's "
            "verdict, as for `matui build`; Ctrl-C asks the host to stop the retried build."
        ),
    )
    _config_option(retry)
    retry.add_argument("--arch", required=True, help="the arch to build again (arm64, ...)")
    retry.add_argument(
        "--no-cache", action="store_true", help="build without the build cache (--no-cache)"
    )
    retry.add_argument("--pull", action="store_true", help="pull the base images afresh (--pull)")
    retry.add_argument(
        "--host", metavar="NAME", help="build it on another configured host of that arch"
    )
    retry.add_argument("--run", help="run id or unique prefix (default: the latest run)")
    retry.add_argument(
        "--force", action="store_true", help="build an arch that succeeded again, too"
    )
    retry.add_argument(
        "--json", action="store_true", help="log lines to stderr, one JSON document on stdout"
    )

    manifest = sub.add_parser(
        "manifest", help="push the multi-arch index from a run's digests, then verify it"
    )
    _config_option(manifest)
    _image_options(
        manifest, tags_default="the run's tags", many="each from its newest run, one confirmation"
    )
    manifest.add_argument("--run", help="run id or unique prefix (default: the latest run)")
    manifest.add_argument(
        "--dry-run", action="store_true", help="show the index that would be pushed; push nothing"
    )
    manifest.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    manifest.add_argument(
        "--allow-mixed-sources",
        action="store_true",
        help="publish even though arches were built from different sources (recorded in the run)",
    )
    manifest.add_argument("--json", action="store_true", help="print one JSON document")

    runs = sub.add_parser("runs", help="list recorded runs, newest first")
    runs.add_argument("--json", action="store_true", help="print one JSON document")
    runs.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    runs.add_argument("--image", help="only the runs of this image")

    changes = sub.add_parser(
        "changes",
        help="what changed for an arch since its last green run (base images, build args, "
        "Dockerfile, host, docker and buildx versions)",
    )
    changes.add_argument("--arch", required=True, help="the arch (amd64, linux/arm64, ...)")
    changes.add_argument("--run", help="run id or unique prefix (default: the latest run)")
    changes.add_argument("--json", action="store_true", help="print one JSON document")

    logs = sub.add_parser(
        "logs",
        help="print a run's stored build log (every arch, one arch, one step, the failing step)",
        description=(
            "Print a run's build log as stored on this machine (the newest run by default), "
            "each line prefixed [arch] when there are several arches. --follow on a run still "
            "building follows it live, read-only: Ctrl-C detaches and the builds go on."
        ),
    )
    _config_option(logs)
    logs.add_argument("--run", help="run id or unique prefix (default: the latest run)")
    logs.add_argument("--arch", help="only this arch (amd64, linux/arm64, ...)")
    which = logs.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, metavar="N", help="only the lines of buildx step #N")
    which.add_argument(
        "--failed", action="store_true", help="only the failing step of each failed arch"
    )
    logs.add_argument(
        "--follow", action="store_true", help="a run still building: follow it live (read-only)"
    )

    bundle = sub.add_parser(
        "bundle",
        help="write one .tar.gz of a run for an incident (logs, record, hosts, plan, Dockerfile)",
    )
    bundle.add_argument("--run", help="run id or unique prefix (default: the latest run)")
    bundle.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="where to write it (default: ./matui-RUN.tar.gz, never replaced; a FILE named "
        "here is replaced)",
    )

    compare = sub.add_parser(
        "compare",
        help="a run's arches side by side: each step's state and time per arch, where they part",
        description=(
            "A run's arches side by side (the newest run by default): one row per buildx step in "
            "build order with its state and seconds on each arch, * on the first step where the "
            "arches part ways, then each arch's steps as bars on one time axis (estimated from "
            "the steps' durations when matui did not see the build live). --step shows that "
            "step's own output from each arch side by side."
        ),
    )
    compare.add_argument("--run", help="run id or unique prefix (default: the latest run)")
    compare.add_argument(
        "--step",
        metavar="N|NAME",
        help="that step's output from each arch, side by side (its #N, or part of its name)",
    )
    compare.add_argument(
        "--width",
        type=int,
        metavar="N",
        help="columns to fill (default: the terminal's); with --json, the bars' width (default 40)",
    )
    compare.add_argument("--json", action="store_true", help="print one JSON document")

    gc = sub.add_parser(
        "gc", help="show and free what matui left on the builder hosts (old job directories)"
    )
    _config_option(gc)
    gc.add_argument(
        "--host",
        action="append",
        dest="hosts",
        metavar="NAME",
        help="only this host (repeatable; default: every host)",
    )
    gc.add_argument(
        "--dry-run", action="store_true", help="show what would be removed; remove nothing"
    )
    gc.add_argument("--json", action="store_true", help="print one JSON document")

    init = sub.add_parser("init", help="write a starter config")
    init.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=None,
        help="where to write it (default: --config, $MATUI_CONFIG, or ./matui.toml)",
    )
    _config_option(init)

    host = sub.add_parser("host", help="manage builder hosts in the config")
    host_sub = host.add_subparsers(dest="host_command", metavar="ACTION", required=True)
    add = host_sub.add_parser("add", help="add a builder host")
    _config_option(add)
    add.add_argument("name", help="a short unique name, e.g. arm-1")
    add.add_argument("--arch", required=True, help="the host's native arch: amd64, arm64, ...")
    add.add_argument("--ssh", required=True, metavar="[USER@]HOST[:PORT]", help="how to reach it")
    add.add_argument("--identity", type=Path, help="private key file (default: agent/ssh keys)")
    add.add_argument(
        "--known-hosts", type=Path, help="known_hosts file (default ~/.ssh/known_hosts)"
    )
    add.add_argument("--jump", help="bastion: another host's name or [USER@]HOST[:PORT]")
    add.add_argument(
        "--allow-emulation",
        action="store_true",
        help="let this host build other arches under QEMU (flagged)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from matui import __version__

        print(f"matui {__version__}")
        sys.exit(EXIT_OK)
    try:
        code = _dispatch(args)
    except UsageError as exc:
        print(f"matui: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        print("matui: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    from matui.engine.config import ConfigError

    try:
        if args.command == "check":
            return _cmd_check(args)
        if args.command == "build":
            return _cmd_build(args)
        if args.command == "attach":
            return _cmd_attach(args)
        if args.command == "cancel":
            return _cmd_cancel(args)
        if args.command == "retry":
            return _cmd_retry(args)
        if args.command == "manifest":
            return _cmd_manifest(args)
        if args.command == "runs":
            return _cmd_runs(args)
        if args.command == "changes":
            return _cmd_changes(args)
        if args.command == "logs":
            return _cmd_logs(args)
        if args.command == "bundle":
            return _cmd_bundle(args)
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "gc":
            return _cmd_gc(args)
        if args.command == "init":
            return _cmd_init(args)
        if args.command == "host":
            return _cmd_host_add(args)
        return _cmd_dashboard(args)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _load(args: argparse.Namespace) -> Config:
    from matui.engine.config import find_config, load_config

    config = load_config(find_config(getattr(args, "config", None)))
    for warning in config.warnings:
        print(f"matui: warning: {warning}", file=sys.stderr)
    return config


def _cmd_check(args: argparse.Namespace) -> int:
    config = _load(args)
    if not config.hosts:
        raise UsageError(
            f"{config.path}: no [[hosts]] yet; add one with "
            "`matui host add NAME --arch ARCH --ssh USER@HOST[:PORT]`"
        )
    report = _run(_check(config))
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        print()
    else:
        print(format_check(report))
    return EXIT_OK if report.ok else EXIT_FAILED


async def _check(config: Config) -> CheckReport:
    from matui.engine.flags import check_config
    from matui.engine.ssh import SshPool

    async with SshPool(config.hosts) as pool:
        return await check_config(pool, config)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


def format_check(report: CheckReport) -> str:
    """The human table: one row a host, then every flag and every host problem."""
    headers = (
        *("HOST", "ARCH", "NATIVE", "UNAME", "DOCKER", "BUILDX", "EMULATES", "FREE", "MATUI"),
        "STATUS",
    )
    rows: list[tuple[str, ...]] = []
    for p in report.probes:
        status = str(p.state)  # ok, broken, unreachable, auth-failed, host-key-changed, ...
        if p.native_arch and p.native_arch != p.arch:
            status = "MISMATCH"
        rows.append(
            (
                p.name,
                p.arch,
                p.native_arch or "-",
                p.uname or "-",
                p.docker_version or "-",
                p.buildx_version or "-",
                ",".join(p.emulation) or "-",
                _size(p.free_bytes),
                _size(p.matui_bytes),
                status,
            )
        )
    lines = [_table(headers, rows)]
    # A host building through a builder: its driver, nodes and how it pushes.
    if builders := [f"{p.name}: {p.builder_line}" for p in report.probes if p.builder_line]:
        lines += ["", *builders]
    problems: list[str] = []
    for flag in report.flags:
        problems.append(f"{flag.severity.upper():7} {flag.kind}  {flag.subject}: {flag.message}")
    for p in report.probes:
        if p.error:
            problems.append(f"{'ERROR':7} host  {p.name}: {p.error}")
    if problems:
        lines += ["", *problems]
    summary = "all hosts ready" if report.ok else "not ready"
    lines += ["", f"{len(report.probes)} host(s), {len(report.flags)} flag(s): {summary}"]
    return "\n".join(lines)


def _cmd_init(args: argparse.Namespace) -> int:
    import os

    from matui.engine.config import write_starter_config

    path: Path = (
        args.path
        or getattr(args, "config", None)
        or Path(os.environ.get("MATUI_CONFIG") or "matui.toml")
    )
    write_starter_config(path)
    print(f"wrote {path}; add builder hosts with `matui host add NAME --arch ARCH --ssh USER@HOST`")
    return EXIT_OK


def _cmd_host_add(args: argparse.Namespace) -> int:
    import warnings

    from matui.engine.config import add_host, find_config

    path = find_config(getattr(args, "config", None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        host = add_host(
            path,
            name=args.name,
            arch=args.arch,
            ssh=args.ssh,
            identity=args.identity,
            known_hosts=args.known_hosts,
            jump=args.jump,
            allow_emulation=args.allow_emulation,
        )
    for warning in caught:
        print(f"matui: note: {warning.message}", file=sys.stderr)
    print(f"added host {host.name} ({host.arch}) to {path}; try `matui check`")
    return EXIT_OK


def _cmd_dashboard(args: argparse.Namespace) -> int:
    config = _load(args)
    from matui.ui.app import MatuiApp

    app = MatuiApp(config, image=args.image, tags=args.tags)
    app.run()
    return int(app.return_code or 0)


def _cmd_build(args: argparse.Namespace) -> int:
    from matui.engine.build import BuildRefused, ImageLocked
    from matui.engine.plan import PlanError

    config = _load(args)
    try:
        return _run(_build(config, args))
    except BuildRefused as exc:
        for passed in exc.passed_over:
            print(f"matui: {passed.line()}", file=sys.stderr)
        print(f"matui: {exc}", file=sys.stderr)
        if args.json:
            json.dump(
                {
                    "run": None,
                    "jobs": [],
                    "flags": [f.to_json() for f in exc.flags],
                    "passed_over": [p.to_json() for p in exc.passed_over],
                },
                sys.stdout,
                indent=2,
            )
            print()
        return EXIT_FAILED
    except ImageLocked as exc:
        print(f"matui: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except PlanError as exc:
        print(f"matui: cannot plan the build:\n{exc}", file=sys.stderr)
        return EXIT_FAILED


#: Set to cap the SSH connections matui opens per host (default 8; a host refusing a new
#: session on one gets another). Documented in the README; tests use 1 to starve a cancel.
MAX_CONNECTIONS_ENV = "MATUI_SSH_MAX_CONNECTIONS"


def _max_connections() -> int:
    import os

    text = os.environ.get(MAX_CONNECTIONS_ENV, "").strip()
    if not text:
        return 8
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{MAX_CONNECTIONS_ENV}={text!r}: set a whole number of 1 or more")
    return int(text)


async def _build(config: Config, args: argparse.Namespace) -> int:
    from matui.engine.build import ImageLocked, start_build, start_release
    from matui.engine.ssh import SshPool

    async with SshPool(config.hosts, max_connections=_max_connections()) as pool:
        try:
            if _is_release(config, args.images):
                release = await start_release(config, pool, images=args.images, tags=args.tags)
                return await _follow_release(release.id, release.runs, args)
            image = args.images[0] if args.images else None
            prepared = await start_build(config, pool, image=image, tags=args.tags)
        except ImageLocked as exc:
            run = _holder_run_read_only(config, pool, exc)
            if run is None:
                raise
            holder = exc.holders[0][1]
            print(
                f"matui: {_held_arches(exc)} is already being built by {holder.line()}; "
                "attaching to it read-only (Ctrl-C detaches, the build goes on)",
                file=sys.stderr,
            )
            run.start_resumed()
            try:
                return await _follow_run(run, args, attached=True, read_only=True)
            finally:
                import shutil

                # The private copy of the holder's record (see _holder_run_read_only).
                shutil.rmtree(run.record.dir.parent.parent, ignore_errors=True)
        return await _follow_run(prepared.run, args)


def _held_arches(exc: ImageLocked) -> str:
    return ", ".join(sorted({f"{job.platform}" for job, _ in exc.holders}))


def _holder_run_read_only(config: Config, pool: SshPool, exc: ImageLocked) -> BuildRun | None:
    """The run holding the image's locks, when it is one run recorded on this machine: followed
    from a private copy of its record (its logs so far, its jobs), so this matui shows the same
    logs and the outcome without writing a byte into the holder's record. None otherwise (the
    holder is another operator's, or several runs hold the arches): the build is refused."""
    import shutil
    import tempfile

    from matui.engine.build.run import BuildRun
    from matui.engine.records import RunRecord, find_run, state_dir
    from matui.engine.registry import RegistryClient

    runs = {holder.run_id for _, holder in exc.holders}
    if len(runs) != 1:
        return None
    try:
        record = find_run(state_dir(), runs.pop())
    except LookupError:
        return None
    if {job.key for job, _ in exc.holders} - {job.key for job in record.jobs}:
        return None
    copy = Path(tempfile.mkdtemp(prefix="matui-attach-")) / "runs" / record.id
    shutil.copytree(record.dir, copy, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
    run = BuildRun.resume(RunRecord.load(copy), config, pool, registry=RegistryClient())
    run.follow_only = True  # the holder makes any push retry; this one follows it
    return run


def _cmd_attach(args: argparse.Namespace) -> int:
    from matui.engine.records import find_run, state_dir, unfinished_runs

    config = _load(args)
    if args.run and args.run_id and args.run != args.run_id:
        raise UsageError(f"attach: --run {args.run} and RUN {args.run_id} differ; give one")
    run_id = args.run or args.run_id
    if run_id:
        try:
            record = find_run(state_dir(), run_id)
        except LookupError as exc:
            raise UsageError(str(exc)) from None
    else:
        found = unfinished_runs(state_dir())
        if not found:
            print("matui: no unfinished run to attach to; `matui runs` lists them", file=sys.stderr)
            return EXIT_FAILED
        record = found[0]
        # A release left building: every image of it that is still building, together.
        if (
            record.release
            and len(together := [r for r in found if r.release == record.release]) > 1
        ):
            return _run(_attach_release(config, record.release, together, args))
    return _run(_attach(config, record, args))


async def _attach_release(
    config: Config, release: str, records: Sequence[RunRecord], args: argparse.Namespace
) -> int:
    from matui.engine.build.run import BuildRun
    from matui.engine.registry import RegistryClient
    from matui.engine.ssh import SshPool

    async with SshPool(config.hosts) as pool:
        registry = RegistryClient()
        runs = [BuildRun.resume(r, config, pool, registry=registry) for r in reversed(records)]
        for run in runs:
            run.start_resumed()
        return await _follow_release(release, runs, args, attached=True)


def _cmd_cancel(args: argparse.Namespace) -> int:
    from matui.engine.records import find_run, state_dir, unfinished_runs

    config = _load(args)
    if args.run:
        try:
            record = find_run(state_dir(), args.run)
        except LookupError as exc:
            raise UsageError(str(exc)) from None
    else:
        found = unfinished_runs(state_dir())
        if not found:
            print(
                "matui: no unfinished run to cancel; `matui runs` lists the runs", file=sys.stderr
            )
            return EXIT_FAILED
        record = found[0]
        # A release left building: every image of it still building is asked to stop.
        together = [r for r in found if record.release and r.release == record.release]
        if record.release and len(together) > 1 and not args.arch:
            codes = []
            for member in reversed(together):
                print(f"matui: release {record.release}: {member.image} (run {member.id})")
                codes.append(_cancel_record(config, member, args))
            return max(codes)
    return _cancel_record(config, record, args)


def _cancel_record(config: Config, record: RunRecord, args: argparse.Namespace) -> int:
    from matui.engine.records import JobState

    jobs = list(record.jobs)
    if args.arch:
        jobs = [job for job in jobs if args.arch in (job.arch, job.platform, job.key)]
        if not jobs:
            known = ", ".join(job.arch for job in record.jobs) or "none"
            raise UsageError(
                f"--arch {args.arch}: run {record.id} has no such arch (it has: {known})"
            )
    # A lost job may still be running on its host: it is asked again.
    running = [job for job in jobs if not job.state.finished or job.state is JobState.LOST]
    for job in jobs:
        if job not in running:
            print(f"{job.arch} on {job.host}: already {job.state}; nothing to cancel")
    if not running:
        return EXIT_OK
    for job in running:
        if job.pid is None:
            print(
                f"{job.arch} on {job.host}: never launched as far as run {record.id} knows "
                f"(state {job.state}, no pid); nothing to stop"
            )
    if not any(job.pid is not None for job in running):
        return EXIT_OK
    return _run(_cancel(config, record, [job.key for job in running if job.pid is not None]))


async def _cancel(config: Config, record: RunRecord, keys: list[str]) -> int:
    """Ask each job's host to stop it and print what each host answered; the engine decides
    what each job became (``BuildRun.cancel_detached``)."""
    from matui.engine.build.run import BuildRun
    from matui.engine.records import JobState
    from matui.engine.registry import RegistryClient
    from matui.engine.ssh import SshPool

    async with SshPool(config.hosts) as pool:
        run = BuildRun.resume(record, config, pool, registry=RegistryClient())
        arches = ", ".join(run.status[key].job.arch for key in keys)
        print(f"matui: asking the hosts to stop {arches} of run {run.id}…", file=sys.stderr)
        answers = await run.cancel_detached(keys)
    undelivered = False
    for key in keys:
        status = run.status[key]
        answer = answers.get(key)
        if answer is None:
            said = "nothing: the cancel did not reach it"
        else:
            code = answer.exit_code
            said = answer.word + (f" (exit {code})" if code is not None else "")
        detail = status.digest or status.error or ""
        print(
            f"{status.job.arch} on {status.job.host}: {status.state}"
            + (f" ({detail})" if detail else "")
            + f"; the host answered: {said}"
        )
        for note in status.notes:
            if "cancel" in note:
                print(f"  {note}")
        if answer is None or status.state is JobState.LOST or not status.state.finished:
            undelivered = True
    if undelivered:
        print(
            f"matui: not every build is known to have stopped; `matui attach --run {run.id}` "
            "follows what still runs",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


async def _attach(config: Config, record: RunRecord, args: argparse.Namespace) -> int:
    from matui.engine.build.run import BuildRun
    from matui.engine.registry import RegistryClient
    from matui.engine.ssh import SshPool

    async with SshPool(config.hosts) as pool:
        run = BuildRun.resume(record, config, pool, registry=RegistryClient())
        run.start_resumed()
        return await _follow_run(run, args, attached=True)


def _cmd_retry(args: argparse.Namespace) -> int:
    from matui.engine.records import JobState, RunState, find_run, state_dir

    config = _load(args)
    image = None if args.run else config.image(args.image).name
    try:
        record = find_run(state_dir(), args.run, image=image)
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    wanted = args.arch.strip()
    job = next(
        (j for j in record.jobs if wanted in (j.arch, j.key, j.platform)),
        None,
    )
    if job is None:
        arches = ", ".join(j.arch for j in record.jobs) or "none"
        raise UsageError(
            f"--arch {wanted}: run {record.id} has no such arch (its arches: {arches}); "
            "name one of them"
        )
    running = [j.arch for j in record.jobs if not j.state.finished]
    if running or record.state is RunState.RUNNING:
        what = ", ".join(running) or "its post-build checks"
        raise UsageError(
            f"--arch {job.arch}: run {record.id} is still building ({what}; another matui may "
            f"be following it): `matui attach {record.id}` follows it; retry once it has ended"
        )
    if job.state is JobState.SUCCEEDED and not args.force:
        raise UsageError(
            f"--arch {job.arch}: it succeeded in run {record.id} ({job.digest or 'no digest'}); "
            "nothing to retry — add --force to build it again"
        )
    return _run(_retry(config, record, job.key, args))


async def _retry(config: Config, record: RunRecord, key: str, args: argparse.Namespace) -> int:
    from matui.engine.build.retry import RetryError, RetryOptions
    from matui.engine.build.run import BuildRun
    from matui.engine.registry import RegistryClient
    from matui.engine.ssh import SshPool

    log = sys.stderr if args.json else sys.stdout
    async with SshPool(config.hosts, max_connections=_max_connections()) as pool:
        run = BuildRun.resume(record, config, pool, registry=RegistryClient())
        status = run.status[key]
        suggestion, choices = run.retry_choices(key)
        cause = f" ({status.failure.cause})" if status.failure is not None else ""
        asked = RetryOptions(args.no_cache, args.pull, args.host)
        fits = next((c for c in choices if c.suggested), None)
        line = f"matui: {status.job.arch} {status.state}{cause}: {suggestion.advice}"
        if fits is not None and fits.options != asked:
            words = " ".join(["matui retry --arch", status.job.arch, *fits.options.words()])
            line += f" — suggested: `{words}`"
        print(line, file=log)
        try:
            run.retry(key, no_cache=args.no_cache, pull=args.pull, host=args.host)
        except RetryError as exc:
            raise UsageError(str(exc)) from None
        print(f"matui: {status.job.arch}: {run.attempt_line(key)}", file=log)
        return await _follow_run(run, args)


async def _follow_run(
    run: BuildRun, args: argparse.Namespace, *, attached: bool = False, read_only: bool = False
) -> int:
    """Stream a run's events as prefixed lines, then print the summary (or the JSON document)
    and end with the engine's verdict on the run (exit 0 only when it can be published).

    Ctrl-C asks the hosts to stop the remote builds (by process group); each job then ends as
    its host says (``cancelled`` only when the host stopped it). ``attached`` (``matui
    attach``, or following another matui's run, ``read_only``): Ctrl-C detaches and the builds
    go on, as when the dashboard quits; the message says how to follow or stop them.
    """
    import asyncio
    import signal

    from matui.engine.build.run import FlagsEvent, LinesEvent, NoteEvent, StateEvent
    from matui.engine.records import VerdictKind

    # Every string in the events is inert already (the engine neutralised it): print as is.
    log = sys.stderr if args.json else sys.stdout
    plan = run.plan
    arch = {job.key: job.arch for job in plan.jobs}
    for flag in run.flags:
        print(f"matui: {flag.severity} {flag.kind} {flag.subject}: {flag.message}", file=log)
    for job in plan.jobs:  # where each job goes and why (empty for a resumed run's jobs)
        if job.reason:
            print(f"matui: plan: {job.line()}", file=log)
    for passed in plan.passed_over:  # a host not used is named, with why, before the build
        print(f"matui: {passed.line()}", file=log)
    print(
        f"matui: {'attached to run' if attached else 'run'} {run.id}: "
        + ", ".join(
            f"{job.platform} on {job.host}" + (" (emulated)" if job.emulated else "")
            for job in plan.jobs
        ),
        file=log,
    )
    loop = asyncio.get_running_loop()
    cancelling: list[asyncio.Task[None]] = []

    following = asyncio.current_task()
    detached: list[bool] = []

    def interrupt() -> None:
        if attached or read_only:
            if not detached and following is not None:
                detached.append(True)
                following.cancel()
            return
        if not cancelling:
            print("matui: cancelling: asking the hosts to stop the builds…", file=sys.stderr)
            cancelling.append(loop.create_task(run.cancel()))

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        async for event in run.events():
            if isinstance(event, LinesEvent):
                prefix = f"[{arch[event.job]}] "
                log.write("".join(f"{prefix}{line}\n" for line in event.lines))
            elif isinstance(event, StateEvent):
                log.write(f"[{arch[event.job]}] == {event.state} {event.detail}\n")
            elif isinstance(event, NoteEvent):
                log.write(f"[{arch[event.job]}] note: {event.text}\n")
            elif isinstance(event, FlagsEvent):
                for flag in event.flags:
                    log.write(
                        f"matui: {flag.severity} {flag.kind} {flag.subject}: {flag.message}\n"
                    )
            log.flush()
    except asyncio.CancelledError:
        if not detached:
            raise
        print(
            f"matui: detached from run {run.id}; its builds go on on their hosts. "
            f"Follow them again: `matui attach --run {run.id}`; stop them: "
            f"`matui cancel --run {run.id}`",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    for task in cancelling:
        await task
    if cancelling:
        from matui.engine.records import JobState, RunState

        # The hosts' answers decide: a run is cancelled only if a host stopped a build.
        for status in run.status.values():
            if status.state is not JobState.CANCELLED:
                print(
                    f"matui: the cancel did not stop {status.job.arch} on {status.job.host}: "
                    f"it ended {status.state}"
                    + (f" ({status.digest})" if status.digest else "")
                    + (f": {status.error}" if status.error else ""),
                    file=sys.stderr,
                )
        if any(s.state is JobState.CANCELLED for s in run.status.values()):
            run.record.update(state=RunState.CANCELLED)
    statuses = await run.wait()
    jobs = [statuses[job.key] for job in plan.jobs]
    verdict = run.verdict()
    if args.json:
        json.dump(_run_json(run), sys.stdout, indent=2)
        print()
    else:
        print(
            _table(
                ("ARCH", "HOST", "STATE", "DIGEST", "SECONDS", "DETAIL"),
                [_job_row(s) for s in jobs],
            )
        )
        for s in jobs:  # a job its host's failure moved: where from, where to, why
            for move in s.moves if s.failure is None else ():  # a card shows its own moves
                print(move.line(str(s.job.platform)))
        for s in jobs:  # why each failed arch failed: the dashboard's card (key i), as text
            if s.failure is not None:
                print()
                print("\n".join(s.failure.summary_lines(s.job.arch)))
        hint = "; push the index with `matui manifest`" if verdict.can_publish else ""
        print(f"run {run.id}: {verdict.line()}{hint}")
    ok = verdict.can_publish or verdict.kind is VerdictKind.PUBLISHED
    return EXIT_OK if ok else EXIT_FAILED


def _run_json(run: BuildRun) -> dict[str, Any]:
    """A finished run as ``matui build --json`` prints it (one per image in a release)."""
    plan = run.plan
    verdict = run.verdict()
    return {
        "run": run.id,
        "image": plan.repository,
        "tag": plan.tags[0],
        "tags": list(plan.tags),
        "verdict": {"kind": str(verdict.kind), "reason": verdict.reason},
        # "pushed": how each image left its builder ("pushed by digest; builder X/node N").
        "jobs": [{**s.to_json(), "pushed": s.pushed_line} for s in _statuses(run)],
        "flags": [flag.to_json() for flag in run.flags],
        "passed_over": [p.to_json() for p in plan.passed_over],
        # Each job's host and why it was chosen, each host passed over and why.
        "plan": {
            "jobs": [job.plan_json() for job in plan.jobs],
            "passed_over": [p.to_json() for p in plan.passed_over],
        },
    }


def _statuses(run: BuildRun) -> list[JobStatus]:
    return [run.status[job.key] for job in run.plan.jobs]


def _job_row(s: JobStatus) -> tuple[str, ...]:
    """ARCH, HOST, STATE, DIGEST, SECONDS, DETAIL: a job in the summary table."""
    return (
        s.job.arch,
        s.job.host + (" (emulated)" if s.job.emulated else ""),
        str(s.state),
        (s.digest or "-")[:19],
        f"{s.seconds:.1f}" if s.seconds is not None else "-",
        s.failing_step or s.error or s.pushed_line,
    )


def _is_release(config: Config, images: Sequence[str] | None) -> bool:
    """Several images at once: named with --image more than once, or none named and several
    configured."""
    return len(images) > 1 if images else len(config.images) > 1


def image_labels(repositories: Sequence[str]) -> dict[str, str]:
    """A short label per image for log prefixes and tables: the repository's last path part
    (``registry/team/api`` → ``api``), or more of its path where two would read the same."""
    labels: dict[str, str] = {}
    for repo in repositories:
        parts = repo.split("/")
        for depth in range(1, len(parts) + 1):
            label = "/".join(parts[-depth:])
            others = ["/".join(o.split("/")[-depth:]) for o in repositories if o != repo]
            if label not in others:
                break
        labels[repo] = label
    return labels


async def _follow_release(
    release_id: str | None,
    runs: Sequence[BuildRun],
    args: argparse.Namespace,
    *,
    attached: bool = False,
) -> int:
    """Stream every image's events as ``[IMAGE:ARCH]`` lines, then one table of every job, the
    failure card of each failed one, each image's verdict, and the way to retry or publish.
    Exit 0 only when every image can be published. Ctrl-C cancels every build (as for one
    image); ``attached`` (``matui attach`` of a release): Ctrl-C detaches, the builds go on."""
    import asyncio
    import signal

    from matui.engine.build.run import FlagsEvent, LinesEvent, NoteEvent, StateEvent
    from matui.engine.records import JobState, VerdictKind

    log = sys.stderr if args.json else sys.stdout
    labels = image_labels([run.plan.repository for run in runs])
    for run in runs:
        label = labels[run.plan.repository]
        for flag in run.flags:
            print(
                f"matui: {label}: {flag.severity} {flag.kind} {flag.subject}: {flag.message}",
                file=log,
            )
        for job in run.plan.jobs:
            if job.reason:
                print(f"matui: plan: {label} {job.line()}", file=log)
    used = {job.host for run in runs for job in run.plan.jobs}
    seen: set[str] = set()
    for run in runs:  # a host no image uses is named once, with why
        for passed in run.plan.passed_over:
            if passed.host not in used and passed.host not in seen:
                seen.add(passed.host)
                print(f"matui: {passed.line()}", file=log)
    verb = "attached to release" if attached else "release"
    print(f"matui: {verb} {release_id}: {len(runs)} images", file=log)
    for run in runs:
        jobs = ", ".join(
            f"{job.platform} on {job.host}" + (" (emulated)" if job.emulated else "")
            for job in run.plan.jobs
        )
        print(f"matui:   {labels[run.plan.repository]}: run {run.id}: {jobs}", file=log)

    async def follow(run: BuildRun) -> None:
        label = labels[run.plan.repository]
        arch = {job.key: f"[{label}:{job.arch}] " for job in run.plan.jobs}
        async for event in run.events():
            if isinstance(event, LinesEvent):
                prefix = arch[event.job]
                log.write("".join(f"{prefix}{line}\n" for line in event.lines))
            elif isinstance(event, StateEvent):
                log.write(f"{arch[event.job]}== {event.state} {event.detail}\n")
            elif isinstance(event, NoteEvent):
                log.write(f"{arch[event.job]}note: {event.text}\n")
            elif isinstance(event, FlagsEvent):
                for flag in event.flags:
                    log.write(
                        f"matui: {label}: {flag.severity} {flag.kind} {flag.subject}: "
                        f"{flag.message}\n"
                    )
            log.flush()

    loop = asyncio.get_running_loop()
    cancelling: list[asyncio.Task[None]] = []

    async def cancel_all() -> None:
        await asyncio.gather(*(run.cancel() for run in runs))

    following = asyncio.current_task()
    detached: list[bool] = []

    def interrupt() -> None:
        if attached:
            if not detached and following is not None:
                detached.append(True)
                following.cancel()
            return
        if not cancelling:
            print("matui: cancelling: asking the hosts to stop the builds…", file=sys.stderr)
            cancelling.append(loop.create_task(cancel_all()))

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        await asyncio.gather(*(follow(run) for run in runs))
    except asyncio.CancelledError:
        if not detached:
            raise
        print(
            f"matui: detached from release {release_id}; its builds go on on their hosts. "
            "Follow them again: `matui attach`; stop them: "
            + " / ".join(f"`matui cancel --run {run.id}`" for run in runs),
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    for task in cancelling:
        await task
    for run in runs:
        await run.wait()
    verdicts = [run.verdict() for run in runs]
    ok = all(v.can_publish or v.kind is VerdictKind.PUBLISHED for v in verdicts)
    line = (
        f"release {release_id}: every image built; push the indexes with `matui manifest`"
        if ok
        else f"release {release_id}: "
        + f"{sum(1 for v in verdicts if v.can_publish)} of {len(runs)} images can be published"
    )
    if args.json:
        doc = {
            "release": release_id,
            "ok": ok,
            "line": line,
            "runs": [_run_json(run) for run in runs],
        }
        json.dump(doc, sys.stdout, indent=2)
        print()
        return EXIT_OK if ok else EXIT_FAILED
    rows = [(labels[run.plan.repository], *_job_row(s)) for run in runs for s in _statuses(run)]
    print(_table(("IMAGE", "ARCH", "HOST", "STATE", "DIGEST", "SECONDS", "DETAIL"), rows))
    for run in runs:
        for s in _statuses(run):
            if s.failure is not None:
                print()
                label = f"{labels[run.plan.repository]} {s.job.arch}"
                print("\n".join(s.failure.summary_lines(label)))
    print()
    for run, verdict in zip(runs, verdicts, strict=True):
        print(f"{labels[run.plan.repository]}: run {run.id}: {verdict.line()}")
        for s in _statuses(run):
            if s.state.finished and s.state is not JobState.SUCCEEDED:
                print(f"  retry: `matui retry --run {run.id} --arch {s.job.arch}`")
    print(line)
    return EXIT_OK if ok else EXIT_FAILED


def _cmd_manifest(args: argparse.Namespace) -> int:
    from matui.engine.records import find_run, state_dir

    config = _load(args)
    if _is_release(config, args.images):
        if args.run:
            raise UsageError(
                "--run names one image's run; with several images each one's newest run is "
                "published: drop --run, or name one image with --image"
            )
        return _run(_manifest_release(config, args))
    image = config.image(args.images[0] if args.images else None)
    try:
        record = find_run(state_dir(), args.run, image.name)
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    return _run(_manifest(config, record, args))


def format_preview(preview: PublishPreview) -> list[str]:
    """The publish preview as the CLI prints it: each tag, what it serves now, the new index
    platform by platform, then every open flag."""
    plan = preview.plan
    if plan is None:
        return [f"run {preview.record.id}: no index to publish"]
    where = f" (created on {preview.host})" if preview.host else ""
    lines = [f"run {preview.record.id}: index for {plan.repository}{where}"]
    if by_digest := [str(s.platform) for s in plan.sources if s.by_digest]:
        lines.append(f"  {', '.join(by_digest)}: pushed by digest (no per-arch tag)")
    for tag in preview.tags:
        if tag.now is None:
            held = "nothing (new tag)"
        elif tag.now_is_index:
            held = f"index {tag.now}"
        else:
            held = f"single-arch manifest {tag.now}"
        lines += [f"  {tag.ref}", f"    now: {held}"]
        if tag.serves_index:
            lines.append("    already serves this index: it will not be pushed again")
        for change in tag.changes:
            old = (change.before or "-")[:19]
            new = (change.after or "-")[:19]
            lines.append(f"    {change.change:8} {change.platform:14} {old:19} -> {new}")
    for flag in preview.flags:
        lines.append(f"  {flag.severity} {flag.kind} {flag.subject}: {flag.message}")
    return lines


def format_report(report: PublishReport) -> list[str]:
    """One line a tag: its outcome, the index it serves or the registry's answer."""
    lines = []
    for result in report.results:
        if result.verified:
            detail = f"index {result.digest} ({', '.join(result.platforms)})"
            if result.outcome == "unchanged":
                detail += ": already served it, not pushed"
        else:
            detail = result.error or ""
        lines.append(f"  {result.outcome:13} {result.ref}" + (f"  {detail}" if detail else ""))
    return lines


async def _manifest(config: Config, record: RunRecord, args: argparse.Namespace) -> int:
    from matui.engine.publish import PublishFailed, dry_run_index, preview_publish, publish
    from matui.engine.registry import RegistryClient
    from matui.engine.ssh import SshPool

    out = sys.stderr if args.json else sys.stdout
    registry = RegistryClient()
    preview = await preview_publish(
        record,
        registry=registry,
        config=config,
        tags=args.tags,
        allow_mixed_sources=args.allow_mixed_sources,
    )
    for line in format_preview(preview):
        print(line, file=out)
    doc: dict[str, object] = {
        **preview.to_json(),
        "digest": None,
        "verified": False,
        "pushed": False,
        "error": preview.blocked,
    }

    def done(code: int) -> int:
        if args.json:
            json.dump(doc, sys.stdout, indent=2)
            print()
        return code

    if preview.blocked:
        print(f"matui: {preview.blocked}", file=sys.stderr)
        return done(EXIT_FAILED)
    async with SshPool(config.hosts) as pool:
        if args.dry_run:
            try:
                index = await dry_run_index(preview, config=config, pool=pool)
            except PublishFailed as exc:
                print(f"matui: {exc}", file=sys.stderr)
                doc["error"] = str(exc)
                return done(EXIT_FAILED)
            print(index, file=out)
            doc["index"] = json.loads(index) if index.strip().startswith("{") else index
            return done(EXIT_OK)
        if preview.nothing_to_push:
            print("every tag already serves this index: nothing to push", file=out)
        elif not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("not a terminal: pass --yes to push without asking")
            answer = input(f"push this index to {', '.join(preview.to_push)}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("not pushed", file=out)
                return done(EXIT_FAILED)
        report = await publish(preview, registry=registry, config=config, pool=pool)
    for line in format_report(report):
        print(line, file=out)
    doc.update(
        digest=report.digest,
        verified=report.ok,
        pushed=bool(report.moved),
        results=[r.to_json() for r in report.results],
        flags=[f.to_json() for f in report.flags],
        moved=report.moved,
        no_op=report.no_op,
        line=report.line(),
        record_error=report.record_error,
        error=None if report.ok else report.line(),
    )
    if report.record_error:
        print(f"matui: warning: {report.record_error}", file=sys.stderr)
    if report.ok:
        print(report.line(), file=out)
        return done(EXIT_OK)
    print(f"matui: {report.line()}", file=sys.stderr)
    return done(EXIT_FAILED)


async def _manifest_release(config: Config, args: argparse.Namespace) -> int:
    """Publish the newest run of every image (or the named ones) after one confirmation that
    lists every tag that will move and every image refused; then per tag what happened. Exit 0
    only when every image asked for serves its index, verified."""
    from matui.engine.build import release_images
    from matui.engine.records import state_dir
    from matui.engine.registry import RegistryClient
    from matui.engine.release import latest_runs, preview_release, publish_release
    from matui.engine.ssh import SshPool

    out = sys.stderr if args.json else sys.stdout
    images = release_images(config, args.images)
    runs, missing = latest_runs(state_dir(), images)
    registry = RegistryClient()
    preview = await preview_release(
        runs,
        registry=registry,
        config=config,
        tags=args.tags,
        allow_mixed_sources=args.allow_mixed_sources,
        missing=missing,
    )
    for line in preview.lines():
        print(line, file=out)
    doc: dict[str, Any] = {"preview": preview.to_json(), "ok": False, "pushed": False}

    def done(code: int) -> int:
        if args.json:
            json.dump(doc, sys.stdout, indent=2)
            print()
        return code

    if not preview.ready:
        doc["line"] = "nothing to publish: every image was refused (the lines above say why)"
        print(f"matui: {doc['line']}", file=sys.stderr)
        return done(EXIT_FAILED)
    if args.dry_run:
        doc["line"] = "dry run: nothing pushed"
        print(doc["line"], file=out)
        return done(EXIT_OK if not preview.refused and not missing else EXIT_FAILED)
    if preview.nothing_to_push:
        print("every tag of the images ready already serves its index: nothing to push", file=out)
    elif not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("not a terminal: pass --yes to push without asking")
        answer = input(f"{preview.question()} [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            doc["line"] = "not pushed"
            print("not pushed", file=out)
            return done(EXIT_FAILED)
    async with SshPool(config.hosts) as pool:
        report = await publish_release(preview, registry=registry, config=config, pool=pool)
    for line in report.lines():
        print(f"  {line}", file=out)
    doc.update(report.to_json(), pushed=any(r.moved for r in report.reports))
    for item in report.reports:
        if item.record_error:
            print(f"matui: warning: {item.record_error}", file=sys.stderr)
    if report.ok:
        print(report.line(), file=out)
        return done(EXIT_OK)
    print(f"matui: {report.line()}", file=sys.stderr)
    return done(EXIT_FAILED)


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    )


def _cmd_runs(args: argparse.Namespace) -> int:
    import time

    from matui.engine.history import history
    from matui.engine.records import list_runs, state_dir

    every = list_runs(state_dir())
    if args.image:
        every = [r for r in every if r.image == args.image]
    runs = every[: args.limit]
    # Each run's record, and what the history makes of it (verdict, arches, trend, publishers).
    summary = {row.run: row for row in history(every, limit=args.limit)}
    if args.json:
        docs = [{**r.to_json(), **summary[r.id].to_json()} for r in runs]
        json.dump({"runs": docs}, sys.stdout, indent=2, default=str)
        print()
        return EXIT_OK
    ascii_only = not _can_print("▁█")
    if not runs:
        print(f"no runs recorded under {state_dir() / 'runs'} yet; start one with `matui build`")
        return EXIT_OK
    rows = []
    for r in runs:
        verified = [t for t, result in r.tag_results().items() if result.verified]
        if r.published:
            index = "published"
        elif verified:
            index = f"partly: {len(verified)}/{len(r.tags)} tags"
        else:
            index = ""
        if r.overrides():  # an explicit override is part of what the index is
            index = (index + " " if index else "") + "(mixed sources allowed)"
        rows.append(
            (
                r.id,
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)),
                f"{r.image}:{','.join(r.tags)}",
                " ".join(f"{j.arch}={j.state}" for j in r.jobs),
                summary[r.id].time_text(ascii_only=ascii_only),
                index,  # last: scripts read a row's end ("... published")
            )
        )
    print(_table(("RUN", "STARTED", "IMAGE", "JOBS", "TIME AND TREND", "INDEX"), rows))
    return EXIT_OK


def _can_print(text: str) -> bool:
    """Whether stdout's encoding has these characters (a C locale console has no ▁)."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _cmd_changes(args: argparse.Namespace) -> int:
    import time

    from matui.engine.history import changes_since_green
    from matui.engine.records import list_runs, state_dir

    record = _find_run_or_latest(args.run)
    try:
        changes = changes_since_green(record, args.arch, list_runs(state_dir()))
    except LookupError as exc:
        raise UsageError(f"--arch {args.arch}: {exc}") from None
    if args.json:
        json.dump(changes.to_json(), sys.stdout, indent=2)
        print()
        return EXIT_OK
    print(f"run {record.id} ({record.image}): {changes.message()}")
    if changes.green_run is None:
        return EXIT_OK
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(changes.green_started or 0))
    rows = [
        ("*" if c.changed else "", c.what, c.green or "unknown", c.now or "unknown")
        for c in changes.rows
    ]
    print(_table(("", "WHAT", f"GREEN {changes.green_run} ({when})", f"RUN {record.id}"), rows))
    return EXIT_OK


def _find_run_or_latest(run_id: str | None) -> RunRecord:
    from matui.engine.records import find_run, state_dir

    try:
        return find_run(state_dir(), run_id)
    except LookupError as exc:
        raise UsageError(str(exc)) from None


def _cmd_logs(args: argparse.Namespace) -> int:
    from matui.engine.bundle import LogSelectionError, select_logs
    from matui.engine.records import RunState

    if args.step is not None and args.step < 0:
        raise UsageError(f"--step {args.step}: give a buildx step number (#N), 0 or more")
    record = _find_run_or_latest(args.run)
    try:
        parts = select_logs(record, arch=args.arch, step=args.step, failed=args.failed)
    except LogSelectionError as exc:
        raise UsageError(str(exc)) from None
    if args.follow and record.state is not RunState.RUNNING:
        print(f"matui: run {record.id} has finished: its stored log follows", file=sys.stderr)
    elif args.follow:
        # Resuming a job with no pid would launch it: following must never start a build.
        waiting = [j.arch for j in record.jobs if not j.state.finished and j.pid is None]
        if waiting:
            print(
                f"matui: run {record.id}: {', '.join(waiting)} not launched on its host yet; "
                "try again in a moment (following now would launch it)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return _run(_follow_logs(_load(args), record, {p.job.key: p.step for p in parts}))
    prefixed = len(parts) > 1  # several arches: "[arch] line", as `matui build` prints
    out = sys.stdout
    # Every line is inert (the engine's decoder made it so): printed as is.
    for part in parts:
        prefix = f"[{part.job.arch}] " if prefixed else ""
        if part.note:
            print(f"matui: {part.job.arch}: {part.note}", file=sys.stderr)
        for line in part.lines():
            out.write(f"{prefix}{line}\n")
    out.flush()
    return EXIT_OK


async def _follow_logs(config: Config, record: RunRecord, keys: dict[str, int | None]) -> int:
    """Follow a run still building, read-only: a private copy of its record is resumed (its
    stored lines replayed, then the live ones), so nothing is written into the run's own record
    and Ctrl-C only detaches. ``keys``: the jobs to print, each with the one step to keep."""
    import asyncio
    import shutil
    import signal
    import tempfile

    from matui.engine.build.progress import step_of
    from matui.engine.build.run import BuildRun, LinesEvent, StateEvent
    from matui.engine.records import RunRecord
    from matui.engine.registry import RegistryClient
    from matui.engine.ssh import SshPool

    copy = Path(tempfile.mkdtemp(prefix="matui-logs-")) / "runs" / record.id
    shutil.copytree(record.dir, copy, ignore=shutil.ignore_patterns(".lock", ".*.tmp"))
    arch = {job.key: job.arch for job in record.jobs}
    prefixed = len(keys) > 1
    loop = asyncio.get_running_loop()
    following = asyncio.current_task()
    detached: list[bool] = []

    def interrupt() -> None:
        if not detached and following is not None:
            detached.append(True)
            following.cancel()

    try:
        async with SshPool(config.hosts) as pool:
            run = BuildRun.resume(RunRecord.load(copy), config, pool, registry=RegistryClient())
            run.follow_only = True  # following: any push retry is the run's owner's to make
            run.start_resumed()
            loop.add_signal_handler(signal.SIGINT, interrupt)
            try:
                async for event in run.events():
                    if isinstance(event, LinesEvent) and event.job in keys:
                        prefix = f"[{arch[event.job]}] " if prefixed else ""
                        lines = event.lines
                        if (step := keys[event.job]) is not None:
                            lines = [line for line in lines if step_of(line) == step]
                        sys.stdout.write("".join(f"{prefix}{line}\n" for line in lines))
                        sys.stdout.flush()
                    elif isinstance(event, StateEvent) and event.job in keys:
                        print(
                            f"matui: {arch[event.job]}: {event.state} {event.detail}".rstrip(),
                            file=sys.stderr,
                        )
            except asyncio.CancelledError:
                if not detached:
                    raise
                print(
                    f"matui: detached from run {record.id}; its builds go on",
                    file=sys.stderr,
                )
                return EXIT_OK
            finally:
                loop.remove_signal_handler(signal.SIGINT)
            await run.wait()
    finally:
        shutil.rmtree(copy.parent.parent, ignore_errors=True)
    return EXIT_OK


def _cmd_bundle(args: argparse.Namespace) -> int:
    from matui.engine.bundle import BundleExists, default_bundle_name, write_bundle

    record = _find_run_or_latest(args.run)
    out = args.output if args.output is not None else Path(default_bundle_name(record))
    if out.is_dir():
        raise UsageError(f"-o {out}: is a directory; name the file to write")
    try:
        report = write_bundle(record, out, overwrite=args.output is not None)
    except BundleExists as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        print(f"matui: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    for note in report.notes:
        print(f"matui: note: {note}", file=sys.stderr)
    if report.redacted:
        print(
            f"matui: values of build args {', '.join(report.redacted)} replaced with ***",
            file=sys.stderr,
        )
    print(f"{report.path}: {len(report.members)} files, run {record.id}")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    import shutil

    from matui.engine.build.steps import compare_run, run_step_output, side_by_side

    if args.width is not None and not 10 <= args.width <= 1000:
        raise UsageError(f"--width {args.width}: give a number of columns from 10 to 1000")
    record = _find_run_or_latest(args.run)
    result = compare_run(record)
    if not result.rows and args.step is None and not args.json:
        print(f"run {record.id}: no buildx step in its logs yet (nothing has run)")
        return EXIT_OK
    width = args.width or (40 if args.json else shutil.get_terminal_size((100, 24)).columns)
    if args.step is not None:
        try:
            row = result.find(args.step)
        except LookupError as exc:
            raise UsageError(str(exc)) from None
        outputs = run_step_output(record, row)
        if args.json:
            document = {
                "run": record.id,
                "step": row.to_json(),
                "outputs": [o.to_json() for o in outputs],
            }
            json.dump(document, sys.stdout, indent=2)
            print()
            return EXIT_OK
        print(f"#{row.number} {row.name}")
        for line in side_by_side(outputs, width):
            print(line)
        return EXIT_OK
    if args.json:
        json.dump(result.to_json(width), sys.stdout, indent=2)
        print()
        return EXIT_OK
    for line in _compare_text(result, width):
        print(line)
    return EXIT_OK


def _compare_text(result: Comparison, width: int) -> list[str]:
    """``matui compare``'s table and timeline."""
    arches = result.arches
    cell = max(12, *(len(a) for a in arches))
    jobs = " · ".join(
        f"{arch} {state}" + ("" if sec is None else f" {sec:.1f}s")
        for arch, state, sec in result.jobs
    )
    out = [f"run {result.run}: {jobs}", ""]
    number = max(3, *(len(str(r.number)) + 1 for r in result.rows)) if result.rows else 3
    name_width = max(16, width - 2 - number - 2 - (cell + 2) * len(arches))
    head = "  " + "#".ljust(number) + "  " + "STEP".ljust(name_width)
    out.append((head + "".join("  " + a.ljust(cell) for a in arches)).rstrip())
    for row in result.rows:
        name = row.name if len(row.name) <= name_width else row.name[: name_width - 1] + "…"
        text = ("* " if row.diverges else "  ") + f"#{row.number}".ljust(number) + "  "
        text += name.ljust(name_width)
        text += "".join("  " + row.cell(a).label().ljust(cell) for a in arches)
        out.append(text.rstrip())
    out.append("")
    diverging = result.diverging
    if diverging is not None:
        out.append(f"* parts ways at #{diverging.number} {diverging.name}: {result.why}")
    else:
        out.append(result.why)
    bar_width = max(10, width - number - 5)  # "  #N |bar|" fills the width
    estimated = (
        f"; estimated from durations: {', '.join(result.estimated)}" if result.estimated else ""
    )
    out += ["", f"timeline: 0 to {result.span:.1f}s, one axis for every arch{estimated}"]
    for lane in result.timeline(bar_width):
        out.append(f"{lane.arch}" + (" (estimated)" if lane.estimated else ""))
        for row, bar in zip(result.rows, lane.bars, strict=True):
            out.append(f"  {('#' + str(row.number)).ljust(number)} |{bar}|")
    return out


def _cmd_gc(args: argparse.Namespace) -> int:
    config = _load(args)
    if not config.hosts:
        raise UsageError(f"{config.path}: no [[hosts]] configured, so nothing to clean up")
    hosts = [config.host(name) for name in dict.fromkeys(args.hosts)] if args.hosts else None
    report = _run(_gc(config, hosts or list(config.hosts), dry_run=args.dry_run))
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        print()
    else:
        print(format_gc(report))
    return EXIT_OK if report.ok else EXIT_FAILED


async def _gc(config: Config, hosts: Sequence[HostConfig], *, dry_run: bool) -> GcReport:
    from matui.engine.hostgc import collect_garbage
    from matui.engine.ssh import SshPool

    async with SshPool(config.hosts) as pool:
        return await collect_garbage(pool, hosts, dry_run=dry_run)


def format_gc(report: GcReport) -> str:
    """Per host: each job directory (size, age, state, what happens to it and why), then what
    was freed (or, in a dry run, would be)."""
    from matui.engine.hostgc import Action, Result, format_age

    freed = "would free" if report.dry_run else "freed"
    lines: list[str] = []
    for host in report.hosts:
        if lines:
            lines.append("")
        if host.same_as is not None:
            lines.append(f"{host.host}: same machine, user and ~/.matui as {host.same_as}")
            continue
        head = f"{host.host}: job directories kept {host.retention_days} days after the build"
        if host.total_before is not None:
            head += f", {_size(host.total_before)} in ~/.matui"
        lines.append(head)
        rows: list[tuple[str, ...]] = []
        for item in host.items:
            job, decision = item.decision.job, item.decision
            if item.result is None or item.result is Result.REMOVED:
                result = "" if item.result is None else "removed"
            else:
                result = f"left: {item.result}"
            rows.append(
                (
                    job.run_id,
                    job.job_key,
                    str(job.state),
                    format_age(decision.age),
                    _size(job.bytes),
                    "" if decision.action is Action.KEEP else str(decision.action),
                    result,
                    decision.reason,
                )
            )
        if rows:
            headers = ("RUN", "JOB", "STATE", "AGE", "SIZE", "ACTION", "RESULT", "WHY")
            lines += ["  " + line for line in _table(headers, rows).splitlines()]
        elif host.error is None:
            lines.append("  no job directories")
        if host.error is not None:
            lines.append(f"  ERROR {host.error}")
        amount = host.due_bytes if report.dry_run else host.freed_bytes
        after = "" if report.dry_run else f", {_size(host.total_after)} left in ~/.matui"
        if host.error is None or host.items:
            lines.append(f"  {freed} {_size(amount)}{after}")
    amount = report.due_bytes if report.dry_run else report.freed_bytes
    lines += ["", f"{len(report.hosts)} host(s): {freed} {_size(amount)} in all"]
    if report.dry_run:
        lines.append("dry run: nothing was removed; run `matui gc` to remove it")
    return "\n".join(lines)
