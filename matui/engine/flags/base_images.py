"""A Dockerfile's base images, read the way BuildKit reads them, and the check that each one
exists for the platform a job builds.

A base image without the platform being built is the most common multi-arch failure, and
BuildKit reports it only after the other arches have started (``no match for platform in
manifest``). Reading the ``FROM`` lines before anything starts lets the pre-flight refuse the
build, naming the ``FROM`` and the platform. Everything here is pure: the gatherer
(:func:`matui.engine.flags.gather.base_image_flags`) reads the Dockerfile and the registry.

What is read: parser directives (``# escape=``), comments, line continuations, heredocs (so a
``FROM`` inside a ``RUN <<EOF`` body is not taken for one), the global ``ARG`` s before the
first ``FROM`` with their defaults (overridden by the config's build args, as ``--build-arg``
overrides them), BuildKit's automatic platform args (``TARGETPLATFORM``, ``BUILDPLATFORM``,
``TARGETARCH``, ...), ``$VAR`` / ``${VAR}`` / ``${VAR:-word}`` / ``${VAR:+word}`` /
``${VAR:?message}`` substitution with quotes and the escape character, ``FROM
[--platform=P] IMAGE [AS name]``, stage references (``FROM builder``), ``scratch``, and which
stages the build target needs (``FROM stage``, ``COPY --from=stage``, ``RUN
--mount=from=stage``): a stage the target does not need is not built, so its base is not
checked. ``COPY --from=IMAGE`` images are not checked (they are expanded with stage-scoped args
matui does not follow).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matui.engine.arch import ArchError, Platform
from matui.engine.flags.model import Flag, FlagKind, Severity
from matui.engine.refs import DIGEST_RE, TAG_RE, RefError, Repository, parse_repository
from matui.engine.registry import Manifest
from matui.engine.text import neutralise

_DIRECTIVE_RE = re.compile(r"#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*", re.ASCII)
_INSTRUCTION_RE = re.compile(r"\s*([A-Za-z]+)(?:\s+(.*))?", re.ASCII | re.DOTALL)
_HEREDOC_RE = re.compile(r"<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2", re.ASCII)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})
_HUB = "docker.io"


class DockerfileError(ValueError):
    """A Dockerfile matui cannot read the base images of; the message says where and why."""


class ExpandError(ValueError):
    """A word whose variables cannot be substituted (``${X:?unset}``, an unsupported form)."""


# --------------------------------------------------------------------------------------------
# Reading the file


@dataclass(frozen=True)
class FromLine:
    """One ``FROM`` instruction as written."""

    line: int
    """1-based line of the instruction's first line."""
    text: str
    """The instruction, continuation lines joined (``FROM --platform=$BUILDPLATFORM ${BASE} AS
    build``)."""
    image: str
    """The image word as written, before substitution (``${BASE}``)."""
    platform: str | None = None
    """The ``--platform=`` value as written, before substitution."""
    stage: str | None = None
    """The ``AS`` name, lower case (stage names are case-insensitive)."""
    uses: tuple[str, ...] = ()
    """``--from`` values of the stage's ``COPY`` and ``RUN --mount`` (stage names or indexes),
    as written."""


@dataclass(frozen=True)
class GlobalArg:
    """An ``ARG`` before the first ``FROM``: usable in ``FROM`` lines."""

    name: str
    default: str | None
    """The default as written (quotes and variables still in it); None: no default."""


@dataclass(frozen=True)
class DockerfileFacts:
    """What the base-image check needs from a Dockerfile."""

    froms: tuple[FromLine, ...]
    args: tuple[GlobalArg, ...] = ()
    escape: str = "\\"
    syntax: str | None = None
    """The ``# syntax=`` directive's frontend, when there is one."""


@dataclass(frozen=True)
class _Instruction:
    line: int
    keyword: str  # lower case
    rest: str


def _instructions(text: str) -> tuple[list[_Instruction], str, str | None]:
    """The file's instructions (continuations joined, comments and heredoc bodies dropped), its
    escape character and its ``# syntax=`` frontend."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    escape = "\\"
    index = 0
    seen: set[str] = set()
    syntax: str | None = None
    # Parser directives: only at the very top, each once; anything else ends them.
    while index < len(lines):
        match = _DIRECTIVE_RE.fullmatch(lines[index])
        if match is None or match.group(1).lower() in seen:
            break
        key, value = match.group(1).lower(), match.group(2)
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(
                    f"line {index + 1}: escape directive {value!r} must be \\ or `"
                )
            escape = value
        elif key == "syntax":
            syntax = value
        index += 1
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    result: list[_Instruction] = []
    while index < len(lines):
        text = lines[index]
        first = index + 1
        index += 1
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts: list[str] = []
        while continuation.search(text):
            parts.append(continuation.sub("", text))
            # Comment and empty lines inside a continued instruction are dropped.
            while index < len(lines) and (
                not lines[index].strip() or lines[index].lstrip().startswith("#")
            ):
                index += 1
            if index >= len(lines):
                text = ""
                break
            text = lines[index]
            index += 1
        parts.append(text)
        joined = "".join(parts)
        match = _INSTRUCTION_RE.fullmatch(joined)
        if match is None:
            raise DockerfileError(f"line {first}: {stripped[:60]!r} is not an instruction")
        keyword = match.group(1).lower()
        rest = (match.group(2) or "").strip()
        result.append(_Instruction(first, keyword, rest))
        if keyword in _HEREDOC_INSTRUCTIONS:
            for heredoc in _HEREDOC_RE.finditer(rest):
                strip_tabs, word = heredoc.group(1) == "-", heredoc.group(3)
                while index < len(lines):
                    body = lines[index]
                    index += 1
                    if (body.lstrip("\t") if strip_tabs else body) == word:
                        break
    return result, escape, syntax


def _words(text: str, escape: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes (substitution removes them)."""
    words: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            current += [ch, text[i + 1]]
            i += 2
            continue
        if quote is not None:
            if ch == quote:
                quote = None
            current.append(ch)
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if current:
        words.append("".join(current))
    return words


def _from_values(words: Sequence[str]) -> list[str]:
    """``--from=X`` values among an instruction's flags, and ``from=X`` of ``--mount=...``."""
    values: list[str] = []
    for word in words:
        if not word.startswith("--"):
            break
        name, _, value = word[2:].partition("=")
        if name.lower() == "from" and value:
            values.append(value)
        elif name.lower() == "mount":
            for option in value.split(","):
                key, _, option_value = option.partition("=")
                if key.strip().lower() == "from" and option_value:
                    values.append(option_value.strip())
    return values


def parse_dockerfile(text: str) -> DockerfileFacts:
    """Read the base-image facts of a Dockerfile's text.

    Raises :class:`DockerfileError` when it has no ``FROM`` or a ``FROM`` without an image
    (BuildKit refuses such a file too)."""
    instructions, escape, syntax = _instructions(text)
    args: list[GlobalArg] = []
    froms: list[dict[str, Any]] = []
    for ins in instructions:
        words = _words(ins.rest, escape)
        if ins.keyword == "from":
            platform: str | None = None
            while words and words[0].startswith("--"):
                flag = words.pop(0)
                name, eq, value = flag[2:].partition("=")
                if name.lower() != "platform" or not eq:
                    raise DockerfileError(
                        f"line {ins.line}: FROM flag {flag!r} is not --platform=VALUE"
                    )
                platform = value
            if not words:
                raise DockerfileError(f"line {ins.line}: FROM without an image")
            stage: str | None = None
            if len(words) >= 3 and words[1].lower() == "as":
                stage = words[2].lower()
            elif len(words) != 1:
                raise DockerfileError(
                    f"line {ins.line}: FROM takes IMAGE [AS name], got {ins.rest[:80]!r}"
                )
            froms.append(
                {
                    "line": ins.line,
                    "text": f"FROM {ins.rest}",
                    "image": words[0],
                    "platform": platform,
                    "stage": stage,
                    "uses": [],
                }
            )
        elif ins.keyword == "arg" and not froms:
            for word in words:
                name, eq, default = word.partition("=")
                args.append(GlobalArg(name, default if eq else None))
        elif froms and ins.keyword in ("copy", "run", "add"):
            froms[-1]["uses"] += _from_values(words)
    if not froms:
        raise DockerfileError("no FROM instruction: a Dockerfile must start a stage with FROM")
    return DockerfileFacts(
        tuple(
            FromLine(f["line"], f["text"], f["image"], f["platform"], f["stage"], tuple(f["uses"]))
            for f in froms
        ),
        tuple(args),
        escape,
        syntax,
    )


# --------------------------------------------------------------------------------------------
# Substitution


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``word`` with its variables substituted and quotes removed, as BuildKit's lexer does for
    ``FROM`` and ``ARG``: ``$VAR``, ``${VAR}``, ``${VAR:-word}`` / ``${VAR-word}`` (default),
    ``${VAR:+word}`` / ``${VAR+word}`` (alternative), ``${VAR:?msg}`` / ``${VAR?msg}``
    (required). ``env`` holds the variables that are set; a name not in it is unset and
    expands to nothing. Raises :class:`ExpandError`."""
    text, end = _expand(word, 0, env, escape, stop=None)
    assert end == len(word)
    return text


def _plain(word: str, i: int, env: Mapping[str, str], escape: str) -> tuple[str, int]:
    """At ``word[i]``, neither a quote nor an escape: a variable's value when it is ``$`` (in
    double quotes as outside them), else the character itself; and where the text goes on."""
    if word[i] == "$":
        return _variable(word, i, env, escape)
    return word[i], i + 1


def _expand(
    word: str, i: int, env: Mapping[str, str], escape: str, stop: str | None
) -> tuple[str, int]:
    out: list[str] = []
    while i < len(word):
        ch = word[i]
        if stop is not None and ch == stop:
            return "".join(out), i
        if ch == escape:
            if i + 1 < len(word):
                out.append(word[i + 1])
                i += 2
            else:
                out.append(ch)
                i += 1
        elif ch == "'":
            end = word.find("'", i + 1)
            if end < 0:
                raise ExpandError(f"unclosed ' in {word!r}")
            out.append(word[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while True:
                if i >= len(word):
                    raise ExpandError(f'unclosed " in {word!r}')
                ch = word[i]
                if ch == '"':
                    i += 1
                    break
                if ch == escape and i + 1 < len(word) and word[i + 1] in f'$"{escape}':
                    out.append(word[i + 1])
                    i += 2
                else:
                    value, i = _plain(word, i, env, escape)
                    out.append(value)
        else:
            value, i = _plain(word, i, env, escape)
            out.append(value)
    if stop is not None:
        raise ExpandError(f"unclosed ${{ in {word!r}")
    return "".join(out), i


def _variable(word: str, i: int, env: Mapping[str, str], escape: str) -> tuple[str, int]:
    """The value of the variable starting at ``word[i] == "$"`` and the index after it."""
    if i + 1 < len(word) and word[i + 1] == "{":
        match = _NAME_RE.match(word, i + 2)
        if match is None:
            raise ExpandError(f"{word[i : i + 20]!r}: a variable name must follow ${{")
        name, j = match.group(0), match.end()
        if j >= len(word):
            raise ExpandError(f"unclosed ${{ in {word!r}")
        if word[j] == "}":
            return env.get(name, ""), j + 1
        colon = word[j] == ":"
        op_at = j + 1 if colon else j
        op = word[op_at] if op_at < len(word) else ""
        if op not in "-+?" or not op:
            raise ExpandError(
                f"${{{name}{word[j : j + 2]}...}}: only the :- :+ :? (and - + ?) forms are "
                "understood here"
            )
        inner, end = _expand(word, op_at + 1, env, escape, stop="}")
        is_set = name in env and (not colon or env[name] != "")
        if op == "-":
            value = env[name] if is_set else inner
        elif op == "+":
            value = inner if is_set else ""
        else:
            if not is_set:
                raise ExpandError(f"{name}: {inner or 'is not set'}")
            value = env[name]
        return value, end + 1
    match = _NAME_RE.match(word, i + 1)
    if match is None:
        return "$", i + 1
    return env.get(match.group(0), ""), match.end()


# --------------------------------------------------------------------------------------------
# The base images one job needs


def platform_args(target: Platform, build: Platform) -> dict[str, str]:
    """BuildKit's automatic platform args, in the global scope (usable in ``FROM``)."""
    values: dict[str, str] = {}
    for prefix, platform in (("TARGET", target), ("BUILD", build)):
        values[f"{prefix}PLATFORM"] = str(platform)
        values[f"{prefix}OS"] = platform.os
        values[f"{prefix}ARCH"] = platform.architecture
        values[f"{prefix}VARIANT"] = platform.variant or ""
    return values


def global_args(
    facts: DockerfileFacts,
    build_args: Mapping[str, str],
    target: Platform,
    build: Platform,
) -> dict[str, str]:
    """The variables a ``FROM`` line sees: automatic platform args, then each global ``ARG``
    in order (a build arg overrides its default; only declared ones count)."""
    env = platform_args(target, build)
    for arg in facts.args:
        if arg.name in build_args:
            env[arg.name] = build_args[arg.name]
        elif arg.default is not None:
            env[arg.name] = expand(arg.default, env, facts.escape)
        else:
            env.pop(arg.name, None)
    return env


@dataclass(frozen=True)
class BaseImage:
    """A ``FROM`` image one job pulls, after substitution; or why it cannot be read."""

    source: FromLine
    platform: Platform
    """The platform the build pulls it for: the target's, the build host's for ``--platform=
    $BUILDPLATFORM``, or whatever ``--platform`` says."""
    reference: str
    """The image after substitution, as written (``busybox:1.36``)."""
    repository: Repository | None = None
    tag: str | None = None
    digest: str | None = None
    problem: str | None = None
    """Why this ``FROM`` cannot be built or checked (set: the other fields may be empty)."""
    reason: str = "target"
    """``target``, ``build-host`` (``--platform=$BUILDPLATFORM``) or ``--platform``."""

    @property
    def key(self) -> tuple[str, str]:
        """What to ask the registry: (repository, tag or digest)."""
        return (str(self.repository), self.digest or self.tag or "latest")


def parse_image_reference(text: str) -> tuple[Repository, str | None, str | None]:
    """``[host[:port]/]path[:tag][@sha256:...]`` as docker reads it: no host means Docker Hub
    (``library/`` for one path component). Raises :class:`~matui.engine.refs.RefError`."""
    name, at, digest = text.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        raise RefError(f"{digest!r} is not a sha256 digest")
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not TAG_RE.fullmatch(tag):
            raise RefError(f"{tag!r} is not a valid tag")
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        full = name
    else:
        full = f"{_HUB}/{name}" if sep else f"{_HUB}/library/{name}"
    if any(c.isupper() for c in full.partition("/")[2]):
        raise RefError(f"{text!r}: repository names must be lowercase")
    return parse_repository(full), tag, digest if at else None


def job_base_images(
    facts: DockerfileFacts,
    *,
    target: Platform,
    build: Platform,
    build_args: Mapping[str, str] | None = None,
    stage: str | None = None,
) -> list[BaseImage]:
    """The external images one job (``target`` built on a ``build`` host) pulls: the bases of
    the stages the build target ``stage`` (default: the last) needs, in file order."""
    try:
        env = global_args(facts, build_args or {}, target, build)
    except ExpandError as exc:
        first = facts.froms[0]
        return [BaseImage(first, target, first.image, problem=f"a global ARG: {exc}")]
    names: dict[str, int] = {}
    parents: list[int | None] = []
    images: list[BaseImage | None] = []
    for index, line in enumerate(facts.froms):
        parent: int | None = None
        image: BaseImage | None = None
        try:
            word = expand(line.image, env, facts.escape)
        except ExpandError as exc:
            image = BaseImage(line, target, line.image, problem=str(exc))
            word = ""
        if image is None and word.lower() in names:
            parent = names[word.lower()]
        elif image is None and word.lower() == "scratch":
            pass
        elif image is None:
            image = _base(line, word, env, facts.escape, target)
        parents.append(parent)
        images.append(image)
        if line.stage:
            names[line.stage] = index
    wanted = _needed_stages(facts, names, parents, stage)
    return [image for index, image in enumerate(images) if image and index in wanted]


def _base(
    line: FromLine, word: str, env: Mapping[str, str], escape: str, target: Platform
) -> BaseImage:
    platform, reason = target, "target"
    if line.platform is not None:
        try:
            text = expand(line.platform, env, escape)
            platform = Platform.parse(text)
        except (ExpandError, ArchError) as exc:
            return BaseImage(line, target, word, problem=f"--platform={line.platform}: {exc}")
        if platform != target:
            reason = "build-host" if "BUILDPLATFORM" in line.platform else "--platform"
    if not word:
        return BaseImage(
            line,
            platform,
            word,
            problem="the image is empty after substitution (BuildKit refuses it)",
            reason=reason,
        )
    try:
        repository, tag, digest = parse_image_reference(word)
    except RefError as exc:
        return BaseImage(line, platform, word, problem=str(exc), reason=reason)
    return BaseImage(line, platform, word, repository, tag, digest, reason=reason)


def _needed_stages(
    facts: DockerfileFacts,
    names: Mapping[str, int],
    parents: Sequence[int | None],
    stage: str | None,
) -> set[int]:
    """Indexes of the stages the target stage depends on (itself included)."""
    last = len(facts.froms) - 1
    start = names.get(stage.lower(), last) if stage else last
    wanted: set[int] = set()
    todo = [start]
    while todo:
        index = todo.pop()
        if index in wanted:
            continue
        wanted.add(index)
        if (parent := parents[index]) is not None:
            todo.append(parent)
        for use in facts.froms[index].uses:
            key = use.lower()
            if key in names and names[key] < index:
                todo.append(names[key])
            elif key.isdigit() and int(key) < index:
                todo.append(int(key))
    return wanted


# --------------------------------------------------------------------------------------------
# The rule


@dataclass(frozen=True)
class BaseLookup:
    """What the registry said about one base image: the manifest (None: not there), the
    platform a single manifest's config names, or the error that stopped the read."""

    manifest: Manifest | None = None
    config_platform: Platform | None = None
    config_text: str | None = None
    """The config's ``os/architecture[/variant]`` as written, for a platform matui does not
    know."""
    error: str | None = None
    found: bool = field(default=True)


def _where(dockerfile: str, base: BaseImage) -> str:
    line = base.source
    substituted = f" → {base.reference}" if base.reference not in ("", line.image) else ""
    return neutralise(f"{dockerfile}:{line.line} {' '.join(line.text.split())}{substituted}")


def base_platform_flags(
    dockerfile: str, base: BaseImage, lookup: BaseLookup | None, *, subject: str
) -> list[Flag]:
    """Whether ``base`` exists for ``base.platform``: an index must list the platform, a single
    manifest's config must name it (a digest pin included); ERROR otherwise. A base matui could
    not read (registry unreachable, unauthorised) is a WARNING: the builder host may reach
    what matui cannot, and its own pull will tell. A base the registry does not have is a
    WARNING too: the host's docker may hold it locally (the docker driver builds from local
    images). ``subject`` names the job (its platform)."""
    where = _where(dockerfile, base)
    platform = str(base.platform)
    evidence: dict[str, Any] = {
        "dockerfile": dockerfile,
        "line": base.source.line,
        "from": base.source.text,
        "image": base.reference,
        "platform": platform,
        "needed_for": base.reason,
    }
    why = {
        "target": "",
        "build-host": " (--platform=$BUILDPLATFORM: the build host's platform)",
        "--platform": " (its --platform)",
    }[base.reason]
    if base.problem is not None:
        return [
            Flag(
                FlagKind.BASE_IMAGE,
                Severity.ERROR,
                subject,
                f"{where}: {base.problem}; fix the FROM line or the build args it uses",
                evidence,
            )
        ]
    if lookup is None:
        return []
    if lookup.error is not None:
        return [
            Flag(
                FlagKind.BASE_IMAGE,
                Severity.WARNING,
                subject,
                f"{where}: cannot check that it has a {platform} image{why}: {lookup.error}; "
                "the build host pulls it itself and may reach what matui cannot",
                {**evidence, "error": lookup.error},
            )
        ]
    manifest = lookup.manifest
    if manifest is None:
        return [
            Flag(
                FlagKind.BASE_IMAGE,
                Severity.WARNING,
                subject,
                f"{where}: the registry has no such image; the build fails unless the build "
                "host's docker holds it locally: check the name and tag",
                evidence,
            )
        ]
    if manifest.is_index:
        listed = [str(p) for p in manifest.platforms()]
        if base.platform in manifest.platforms():
            return []
        shown = ", ".join(dict.fromkeys(listed)) or "no platform"
        fix = (
            f"use a base that has {platform} (or a tag of it built for {platform}), or drop "
            f"{platform} from the image's platforms"
        )
        if base.digest:
            fix = f"pin an index digest that lists {platform}, or " + fix
        return [
            Flag(
                FlagKind.BASE_IMAGE,
                Severity.ERROR,
                subject,
                f"{where} has no {platform} image{why} (index lists {shown}); {fix}",
                {**evidence, "index_platforms": listed, "digest": manifest.digest},
            )
        ]
    found = str(lookup.config_platform) if lookup.config_platform else lookup.config_text
    if lookup.config_platform == base.platform:
        return []
    if base.digest:
        message = (
            f"{where} is pinned to a {found or 'unknown-platform'} image, not {platform}{why}; "
            f"pin the digest of the index (the one listing every platform) instead of one "
            "platform's manifest, or drop "
            f"{platform} from the image's platforms"
        )
    else:
        message = (
            f"{where} is a single {found or 'unknown-platform'} image, not a multi-platform "
            f"index: it has no {platform} image{why}; use a base published for {platform}, or "
            f"drop {platform} from the image's platforms"
        )
    return [
        Flag(
            FlagKind.BASE_IMAGE,
            Severity.ERROR,
            subject,
            message,
            {**evidence, "image_platform": found, "digest": manifest.digest},
        )
    ]
