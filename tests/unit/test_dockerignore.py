"""DockerIgnore follows moby/patternmatcher (as the Docker CLI and BuildKit use it)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from matui.engine.build.dockerignore import DockerIgnore, DockerIgnoreError, go_clean

# (.dockerignore lines, relpath, excluded?)
CASES: list[tuple[list[str], str, bool]] = [
    # plain names; a pattern matching a directory matches everything below it
    (["foo"], "foo", True),
    (["foo"], "foo/bar/baz", True),
    (["foo"], "foobar", False),
    (["foo"], "a/foo", False),
    (["foo/bar"], "foo/bar/x", True),
    # leading slash and trailing slash are cleaned away
    (["/foo"], "foo", True),
    (["/foo/bar"], "foo/bar", True),
    (["foo/"], "foo/x", True),
    (["foo/"], "foo", True),
    # filepath.Clean: "." , "..", repeated slashes
    (["./foo"], "foo", True),
    (["a/../foo"], "foo", True),
    (["a/../foo"], "a/foo", False),
    (["a//b/./c"], "a/b/c", True),
    (["/../foo"], "foo", True),
    (["../foo"], "foo", False),
    # comments: only a "#" in the first column; blank lines ignored
    (["# foo", "", "   "], "# foo", False),
    (["#foo"], "#foo", False),
    (["  #foo"], "#foo", True),
    ([r"\#foo"], "#foo", True),
    # whitespace around patterns and after "!" is trimmed
    (["  foo  "], "foo", True),
    (["*", "! foo "], "foo", False),
    # *  ?  [...]
    (["*"], "anything", True),
    (["*"], "dir/deep/file", True),  # via the top-level dir
    (["*.md"], "README.md", True),
    (["*.md"], "docs/README.md", False),
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp", True),
    (["*/temp*"], "temp", False),
    (["*/temp*"], "a/b/temp", False),
    (["*/*/temp*"], "a/b/temp.x", True),
    (["temp?"], "tempa", True),
    (["temp?"], "temp", False),
    (["temp?"], "tempab", False),
    (["temp?"], "a/tempa", False),
    (["a?b"], "a/b", False),
    (["a*b"], "a/b", False),
    (["a[b-d]e"], "ace", True),
    (["a[b-d]e"], "aae", False),
    (["a[^b-d]e"], "aze", True),
    (["a[^b-d]e"], "ace", False),
    (["[\\]a]"], "]", True),
    (["[x\\-]"], "-", True),
    (["[a-ζ]*"], "\u03b1", True),  # alpha
    (["a?b"], "a☺b", True),
    # regexp metacharacters are literal
    ([".*"], ".foo", True),
    ([".*"], "foo", False),
    (["abc.def"], "abcZdef", False),
    (["a(b)c/def"], "a(b)c/def", True),
    (["a.|)$(}+{bc"], "a.|)$(}+{bc", True),
    (["a^b"], "a^b", True),  # exact match: no wildcard, so not a regexp
    # ** : any number of directories
    (["**/*.go"], "main.go", True),
    (["**/*.go"], "cmd/app/main.go", True),
    (["**/*.go"], "cmd/app/main.gox", False),
    (["**/node_modules"], "node_modules", True),
    (["**/node_modules"], "a/b/node_modules/x/y", True),
    (["**/.foo"], "bar.foo", False),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x/y/c", False),
    (["abc/**"], "abc", False),
    (["abc/**"], "abc/def/ghi", True),
    (["**"], "anything/at/all", True),
    (["**/**/*.txt"], "file.txt", True),
    (["a**/*.txt"], "a/dir/dir/file.txt", True),
    # Docker's quirks: "**x" is a suffix test, "x**" a prefix test
    (["**foo"], "barfoo", True),
    (["foo**"], "foobar", True),
    # ! exceptions: later patterns win
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["!README.md", "*.md"], "README.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    # ! re-including inside an excluded directory
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["node_modules", "!**/*.go"], "node_modules/x/y.go", False),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    # Docker's matcher skips an exception that cannot change the result at the parent, and the
    # child does not see it: "D/x" stays excluded (docker build behaves the same way).
    (["D/x", "!D"], "D/x", True),
    # escapes
    ([r"\!important"], "!important", True),
    ([r"\!important"], "important", False),
    ([r"a\*b"], "a*b", True),
    ([r"a\*b"], "axb", False),
    ([r"a\\"], "a\\", True),
    ([r"\[x]"], "[x]", True),
    # the context root itself is never excluded
    (["*"], ".", False),
    (["**"], "", False),
]


@pytest.mark.parametrize(("lines", "path", "expected"), CASES)
def test_excluded_table(lines: list[str], path: str, expected: bool) -> None:
    assert DockerIgnore.from_lines(lines).excluded(path) is expected


@pytest.mark.parametrize(
    "pattern", ["[", "a[", "[^", "[^bc", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "\\", "a\\", "!"]
)
def test_malformed_patterns_refused_like_docker(pattern: str) -> None:
    with pytest.raises(DockerIgnoreError, match=r"invalid \.dockerignore pattern"):
        DockerIgnore.from_lines([pattern])


def test_reversed_range_refused() -> None:
    with pytest.raises(DockerIgnoreError):
        DockerIgnore.from_lines(["[z-a]"])


def test_patterns_are_read_like_ignorefile_readall() -> None:
    lines = ["test1", "/test2", "/a/file/here", "", "lastfile", "# comment", "! /inverted/abs/path"]
    assert DockerIgnore.from_lines(lines).patterns == [
        "test1",
        "test2",
        "a/file/here",
        "lastfile",
        "!inverted/abs/path",
    ]


def test_load_reads_file_with_bom_and_crlf(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_bytes(b"\xef\xbb\xbf*.log\r\n# c\r\n!keep.log\r\n")
    ignore = DockerIgnore.load(tmp_path)
    assert ignore.patterns == ["*.log", "!keep.log"]
    assert ignore.excluded("a.log")
    assert not ignore.excluded("keep.log")


def test_load_without_file_ignores_nothing(tmp_path: Path) -> None:
    ignore = DockerIgnore.load(tmp_path)
    assert not ignore
    assert not ignore.excluded("anything")


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("", "."),
        ("a//b", "a/b"),
        ("a/./b/", "a/b"),
        ("a/../..", ".."),
        ("../../a", "../../a"),
        ("/..", "/"),
        ("/a/../../b", "/b"),
        ("//a", "/a"),
    ],
)
def test_go_clean(path: str, clean: str) -> None:
    assert go_clean(path) == clean


def _tree(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(rel)


def _walk(root: Path, lines: list[str], always: tuple[str, ...] = ()) -> list[str]:
    return [rel for rel, _ in DockerIgnore.from_lines(lines).walk(root, always)]


def test_walk_order_is_sorted_and_dirs_first(tmp_path: Path) -> None:
    _tree(tmp_path, ["b/z", "b/a", "a", "c/", "Dockerfile"])
    entries = list(DockerIgnore().walk(tmp_path))
    assert [rel for rel, _ in entries] == ["Dockerfile", "a", "b", "b/a", "b/z", "c"]
    assert all(path == tmp_path / rel for rel, path in entries)


def test_walk_skips_excluded(tmp_path: Path) -> None:
    _tree(tmp_path, ["src/main.go", "src/main_test.go", "build/out", "README.md", "x.log"])
    got = _walk(tmp_path, ["build", "*.log", "**/*_test.go"])
    assert got == ["README.md", "src", "src/main.go"]


def test_walk_reincludes_inside_excluded_dir(tmp_path: Path) -> None:
    _tree(tmp_path, ["docs/README.md", "docs/other.md", "docs/sub/deep.md", "top"])
    got = _walk(tmp_path, ["docs", "!docs/README.md"])
    assert got == ["docs", "docs/README.md", "top"]
    got = _walk(tmp_path, ["docs", "!**/deep.md"])
    assert got == ["docs", "docs/sub", "docs/sub/deep.md", "top"]


def test_walk_excluded_dir_sent_only_if_something_inside_is(tmp_path: Path) -> None:
    _tree(tmp_path, ["docs/other.md", "keep/"])
    assert _walk(tmp_path, ["docs", "!docs/README.md"]) == ["keep"]


def test_walk_does_not_read_excluded_dir_without_exceptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path, ["node_modules/a/b/c", "src/x", "lib/keep.go"])
    seen: list[str] = []
    real = os.scandir

    def spy(path: Path) -> object:
        seen.append(Path(path).relative_to(tmp_path).as_posix())
        return real(path)

    monkeypatch.setattr("matui.engine.build.dockerignore.os.scandir", spy)
    got = _walk(tmp_path, ["node_modules", "lib", "!lib/keep.go"])
    assert got == ["lib", "lib/keep.go", "src", "src/x"]
    assert sorted(seen) == [".", "lib", "src"]
    seen.clear()
    # an exception that could match below node_modules forces the walk
    assert _walk(tmp_path, ["node_modules", "!**/c"]) == [
        "lib",
        "lib/keep.go",
        "node_modules",
        "node_modules/a",
        "node_modules/a/b",
        "node_modules/a/b/c",
        "src",
        "src/x",
    ]
    # an exception that cannot match below it does not
    seen.clear()
    _walk(tmp_path, ["node_modules", "!src/*/x", "!*.go"])
    assert "node_modules" not in seen


def test_walk_always_include(tmp_path: Path) -> None:
    _tree(tmp_path, ["Dockerfile", ".dockerignore", "build/Dockerfile.prod", "build/junk", "x"])
    lines = ["*", "!x"]
    assert _walk(tmp_path, lines) == ["x"]
    got = _walk(tmp_path, lines, ("build/Dockerfile.prod", ".dockerignore", "missing"))
    assert got == [".dockerignore", "build", "build/Dockerfile.prod", "x"]


def test_walk_always_include_outside_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a path inside"):
        _walk(tmp_path, [], ("../Dockerfile",))


def test_walk_does_not_follow_symlinks(tmp_path: Path) -> None:
    _tree(tmp_path, ["real/file"])
    (tmp_path / "link").symlink_to("real")
    (tmp_path / "escape").symlink_to("/etc")
    assert _walk(tmp_path, []) == ["escape", "link", "real", "real/file"]


def test_walk_yields_special_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        assert _walk(tmp_path, []) == ["fifo", "sock"]  # context.py decides what to send
    finally:
        sock.close()
