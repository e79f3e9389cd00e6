"""Confinement of artifact paths to the local artifact root (DESIGN decision 5).

Every bad payload must be refused with InvalidParameterValue by every
operation, and nothing outside the root may be created, changed or deleted:
a sentinel folder beside the root is snapshotted (names, contents, link
targets) before and after each attempt.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

try:
    import labtrack  # noqa: F401
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from labtrack.artifacts import LocalArtifactRoot, mlflow_artifacts_rel
from labtrack.artifacts.local import TEMP_PREFIX
from labtrack.entities import FileInfo
from labtrack.errors import InvalidParameterValue, LabtrackError, ResourceDoesNotExist

# {OUT} is replaced by the absolute path of the sentinel folder beside the root,
# so that a payload which escaped would land somewhere the snapshot sees.
TRAVERSAL_PAYLOADS = [
    "..",
    "../",
    "../outside/secret.txt",
    "../outside/new.txt",
    "../outside",
    "a/../../outside/new.txt",
    "a/b/../../../outside/new.txt",
    "./../outside/new.txt",
    "a/./../../outside/new.txt",
    "a/..",  # stays inside, but '..' is refused in any position
    "....//../outside/new.txt",
    "{OUT}/new.txt",
    "{OUT}/secret.txt",
    "/etc/passwd",
    "//etc/passwd",
    "..\\outside\\new.txt",
    "a\\..\\..\\outside\\new.txt",
    "a\\b.txt",
    "%2e%2e/outside/new.txt",
    "%2e%2e%2foutside%2fnew.txt",
    "%2E%2E%2Foutside%2Fnew.txt",
    "..%2foutside%2fnew.txt",
    "..%5coutside%5cnew.txt",
    "%2e%2e%5coutside%5cnew.txt",
    ".%2e/outside/new.txt",
    "%2e./outside/new.txt",
    "a/%2e%2e/%2e%2e/outside/new.txt",
    "%252e%252e%252foutside%252fnew.txt",
    "%25252e%25252e%25252foutside%25252fnew.txt",
    "%%32%65%%32%65/outside/new.txt",  # '%%32%65' decodes to '%2e', then to '.'
    "%2fetc%2fpasswd",
    "%252fetc%252fpasswd",
    "%2F{OUT}/new.txt",
    "\x00",
    "a/\x00b",
    "new.txt\x00.png",
    "%00",
    "a/%00b",
    "new.txt%00.png",
    "%2500",
    "C:\\x",
    "C:/x",
    "c:x",
    "%43%3a%5cx",
    "~/x",
    "~root/x",
    "%7e/x",
    "\uff0e\uff0e/outside/new.txt",  # fullwidth full stops
    "%ef%bc%8e%ef%bc%8e/outside/new.txt",  # the same, encoded
    "\u2025/outside/new.txt",  # two dot leader, NFKC '..'
    "..\uff0foutside\uff0fnew.txt",  # fullwidth solidus
    "%" + "25" * 20 + "2e",  # one more layer per round: more layers than any name has
]

# Symlinks that the fixture puts inside the root, all leading out of it.
SYMLINK_PAYLOADS = [
    "out_dir",
    "out_dir/",
    "out_dir/secret.txt",
    "out_dir/new.txt",
    "out_dir/sub/new.txt",
    "out_file",
    "parent_link/outside/secret.txt",
    "parent_link/outside/new.txt",
    "parent_link/new.txt",
    "dangling_out",
    "a/deep_out/new.txt",
    "a/deep_out/secret.txt",
    "tmp_link/labtrack-artifact-canary.txt",
]

ALL_PAYLOADS = TRAVERSAL_PAYLOADS + SYMLINK_PAYLOADS
OPERATIONS = ["resolve", "resolve_for_write", "write", "read", "list", "delete", "size"]


def _snapshot(folder: Path, skip: Path) -> dict[str, object]:
    """Every entry under ``folder`` except ``skip``: link targets, file bytes, folders."""
    state: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != skip]
        for name in dirnames + filenames:
            path = here / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                state[key] = ("link", os.readlink(path))
            elif path.is_dir():
                state[key] = ("dir",)
            else:
                state[key] = ("file", path.read_bytes(), path.stat().st_mode)
    return state


@pytest.fixture
def env(tmp_path: Path) -> tuple[LocalArtifactRoot, Path]:
    """A root with links out of it, and the sentinel folder ``outside`` beside it."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"secret")
    (outside / "sub" / "keep.txt").write_bytes(b"keep")
    root = LocalArtifactRoot(tmp_path / "root")
    r = root.root
    (r / "a").mkdir()
    (r / "out_dir").symlink_to(outside)
    (r / "out_file").symlink_to(outside / "secret.txt")
    (r / "parent_link").symlink_to("..")
    (r / "dangling_out").symlink_to(outside / "not_yet.txt")
    (r / "a" / "deep_out").symlink_to(Path("..") / ".." / "outside")
    (r / "tmp_link").symlink_to(tempfile.gettempdir())
    return root, outside


def _attempt(root: LocalArtifactRoot, op: str, rel: str) -> None:
    if op == "resolve":
        root.resolve(rel)
    elif op == "resolve_for_write":
        root.resolve(rel, for_write=True)
    elif op == "write":
        writer = root.write_stream(rel)
        writer.write(b"pwned")
        writer.close()
    elif op == "read":
        root.open_read(rel).close()
    elif op == "list":
        root.list(rel)
    elif op == "delete":
        root.delete(rel)
    elif op == "size":
        root.size(rel)


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("payload", ALL_PAYLOADS)
def test_bad_path_is_refused_and_nothing_outside_changes(env, tmp_path, payload, op):
    root, outside = env
    rel = payload.replace("{OUT}", str(outside))
    canary = Path(tempfile.gettempdir()) / "labtrack-artifact-canary.txt"
    before = _snapshot(tmp_path, skip=root.root)
    canary_before = canary.exists()

    try:
        _attempt(root, op, rel)
    except Exception as exc:  # checked below, after the disk
        error: Exception | None = exc
    else:
        error = None

    # The disk first: an escape is worse than a wrong error.
    assert _snapshot(tmp_path, skip=root.root) == before, "something outside the root changed"
    assert canary.exists() == canary_before, "a file was created in the temp folder"
    assert isinstance(error, InvalidParameterValue), f"not refused: {error!r}"
    assert error.http_status == 400
    assert "Invalid artifact path" in error.message


def test_corpus_is_large_enough():
    assert len(ALL_PAYLOADS) >= 40
    assert len(set(ALL_PAYLOADS)) == len(ALL_PAYLOADS)


def test_symlink_loop_is_a_client_error(env):
    root, _ = env
    (root.root / "loop").symlink_to("loop")
    for op in ("read", "size", "write"):
        with pytest.raises(LabtrackError):
            _attempt(root, op, "loop/x" if op == "write" else "loop")


# -- what is allowed ----------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> LocalArtifactRoot:
    return LocalArtifactRoot(tmp_path / "artifacts")


def _write(root: LocalArtifactRoot, rel: str, data: bytes) -> None:
    with root.write_stream(rel) as writer:
        writer.write(data)


def test_root_is_created_and_absolute(tmp_path):
    target = tmp_path / "does" / "not" / "exist"
    root = LocalArtifactRoot(str(target))
    assert target.is_dir()
    assert root.root.is_absolute()
    assert root.root == target.resolve()
    assert root.resolve("") == root.root
    assert root.resolve("./") == root.root


def test_root_given_through_a_symlink_is_resolved(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    root = LocalArtifactRoot(tmp_path / "alias")
    assert root.root == (tmp_path / "real").resolve()
    _write(root, "x.txt", b"x")
    assert (tmp_path / "real" / "x.txt").read_bytes() == b"x"


def test_nested_write_list_read_delete(root):
    _write(root, "0/run1/artifacts/d/f.txt", b"hello")
    _write(root, "0/run1/artifacts/d/e/g.bin", b"\x00\x01\x02")
    _write(root, "0/run1/artifacts/top.txt", b"top!")

    assert root.list("0/run1/artifacts") == [
        FileInfo(path="d", is_dir=True),
        FileInfo(path="top.txt", is_dir=False, file_size=4),
    ]
    assert root.list("0/run1/artifacts/d/") == [
        FileInfo(path="e", is_dir=True),
        FileInfo(path="f.txt", is_dir=False, file_size=5),
    ]
    with root.open_read("0/run1/artifacts/d/f.txt") as f:
        assert f.read() == b"hello"
    assert root.size("0/run1/artifacts/d/e/g.bin") == 3

    root.delete("0/run1/artifacts/d/f.txt")
    assert root.list("0/run1/artifacts/d") == [FileInfo(path="e", is_dir=True)]
    root.delete("0/run1/artifacts/d")
    assert root.list("0/run1/artifacts") == [FileInfo(path="top.txt", is_dir=False, file_size=4)]
    with pytest.raises(ResourceDoesNotExist):
        root.open_read("0/run1/artifacts/d/e/g.bin")


def test_list_is_sorted_and_rendered_like_mlflow(root):
    for name in ("b.txt", "a.txt", "c"):
        _write(root, f"d/{name}", b"12")
    listing = root.list("d")
    assert [i.path for i in listing] == ["a.txt", "b.txt", "c"]
    assert listing[0].to_json() == {"path": "a.txt", "is_dir": False, "file_size": 2}
    (root.root / "d" / "sub").mkdir()
    assert FileInfo(path="sub", is_dir=True) in root.list("d")
    assert {"path": "sub", "is_dir": True} in [i.to_json() for i in root.list("d")]


def test_list_of_missing_path_or_file_is_none(root):
    _write(root, "d/f.txt", b"x")
    assert root.list("missing") is None
    assert root.list("d/missing/deeper") is None
    assert root.list("d/f.txt") is None
    assert root.list("") == [FileInfo(path="d", is_dir=True)]


def test_empty_root_lists_empty(root):
    assert root.list("") == []


def test_sizes(root):
    for n in (0, 1, 4096, 1_000_003):
        _write(root, f"s/{n}.bin", b"z" * n)
        assert root.size(f"s/{n}.bin") == n
    assert {i.path: i.file_size for i in root.list("s")}["1000003.bin"] == 1_000_003


def test_streamed_write_in_chunks(root):
    writer = root.write_stream("big.bin")
    for i in range(100):
        writer.write(bytes([i]) * 1000)
    writer.close()
    writer.close()  # a second close is a no-op
    data = root.open_read("big.bin").read()
    assert len(data) == 100_000 and data[:1000] == b"\x00" * 1000 and data[-1:] == b"\x63"


def test_write_is_invisible_until_close(root):
    writer = root.write_stream("d/f.txt")
    writer.write(b"partial")
    assert not (root.root / "d" / "f.txt").exists()
    assert root.list("d") == []  # the temp file is hidden
    with pytest.raises(ResourceDoesNotExist):
        root.open_read("d/f.txt")
    writer.close()
    assert root.open_read("d/f.txt").read() == b"partial"
    assert os.listdir(root.root / "d") == ["f.txt"]


def test_abort_leaves_nothing(root):
    writer = root.write_stream("d/f.txt")
    writer.write(b"half")
    writer.abort()
    assert os.listdir(root.root / "d") == []
    assert root.list("d/f.txt") is None
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_exception_in_with_block_aborts(root):
    with pytest.raises(RuntimeError):
        with root.write_stream("f.txt") as writer:
            writer.write(b"half")
            raise RuntimeError("client went away")
    assert os.listdir(root.root) == []


def test_overwrite_keeps_old_content_until_close(root):
    _write(root, "f.txt", b"old")
    writer = root.write_stream("f.txt")
    writer.write(b"new content")
    assert root.open_read("f.txt").read() == b"old"
    writer.close()
    assert root.open_read("f.txt").read() == b"new content"
    assert root.size("f.txt") == 11


def test_aborted_overwrite_keeps_old_file(root):
    _write(root, "f.txt", b"old")
    writer = root.write_stream("f.txt")
    writer.write(b"new")
    writer.abort()
    assert root.open_read("f.txt").read() == b"old"
    assert os.listdir(root.root) == ["f.txt"]


def test_written_file_gets_ordinary_permissions_but_never_for_others(root):
    _write(root, "f.txt", b"x")
    umask = os.umask(0)
    os.umask(umask)
    # Issue #19: an artifact is never readable or writable by other users of the host.
    assert (root.root / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask & ~0o007


@pytest.mark.parametrize("rel", ["", ".", "./", "d/", "d/."])
def test_write_needs_a_file_name(root, rel):
    (root.root / "d").mkdir()
    with pytest.raises(InvalidParameterValue):
        root.write_stream(rel)
    with pytest.raises(InvalidParameterValue):
        root.resolve(rel, for_write=True)


def test_write_onto_a_folder_or_under_a_file_is_refused(root):
    _write(root, "d/f.txt", b"x")
    with pytest.raises(InvalidParameterValue):
        root.write_stream("d")
    with pytest.raises(InvalidParameterValue):
        root.write_stream("d/f.txt/g.txt")
    assert root.open_read("d/f.txt").read() == b"x"


def test_too_long_name_is_refused(root):
    with pytest.raises(InvalidParameterValue):
        root.write_stream("d/" + "n" * 300)


def test_read_missing_or_folder(root):
    (root.root / "d").mkdir()
    for rel in ("missing.txt", "d", "", "d/missing/x"):
        with pytest.raises(ResourceDoesNotExist):
            root.open_read(rel)
        with pytest.raises(ResourceDoesNotExist):
            root.size(rel)


def test_delete_missing_and_root(root):
    with pytest.raises(ResourceDoesNotExist) as info:
        root.delete("missing")
    assert info.value.http_status == 404
    for rel in ("", ".", "./"):
        with pytest.raises(InvalidParameterValue):
            root.delete(rel)
    assert root.root.is_dir()


@pytest.mark.parametrize("name", ["....", "...", "..a", "a..", "a..b", ".hidden", "....//x",
                                  "a%20b.txt", "100%.txt", "model:v1", "\u00e9t\u00e9.txt",
                                  "x~", "a/~b", "a b/c d.txt",
                                  # overlong UTF-8 is no traversal: nothing decodes it again
                                  "%c0%ae%c0%ae/x.txt", "%e0%80%ae%e0%80%ae/x.txt", "y%c0%afx",
                                  # mlflow.log_image(key=, step=) names its files like this
                                  "images/loss%step%3%timestamp%1700000000%ab12cd.png"])
def test_odd_but_valid_names_are_literal(root, name):
    _write(root, name, b"ok")
    expected = root.root.joinpath(*[s for s in name.split("/") if s])
    assert expected.read_bytes() == b"ok"  # '%20' is not decoded again: it is the name
    assert root.resolve(name) == expected
    assert root.size(name) == 2
    root.delete(name)
    assert not expected.exists()


def test_symlink_inside_the_root_is_followed(root):
    (root.root / "real").mkdir()
    (root.root / "alias").symlink_to("real")
    _write(root, "alias/f.txt", b"via link")
    assert (root.root / "real" / "f.txt").read_bytes() == b"via link"
    assert root.resolve("alias/f.txt") == root.root / "real" / "f.txt"
    assert root.list("alias") == [FileInfo(path="f.txt", is_dir=False, file_size=8)]
    assert FileInfo(path="alias", is_dir=True) in root.list("")
    # deleting the link removes the link, not the folder it points to
    root.delete("alias")
    assert not (root.root / "alias").exists()
    assert (root.root / "real" / "f.txt").exists()


def test_links_out_are_hidden_from_listings(env):
    root, _ = env
    names = [i.path for i in root.list("")]
    assert "out_dir" not in names and "out_file" not in names and "parent_link" not in names
    assert names == ["a"]
    assert root.list("a") == []


def test_deleting_a_folder_never_follows_links_out(env, tmp_path):
    root, outside = env
    before = _snapshot(tmp_path, skip=root.root)
    root.delete("a")  # holds deep_out -> ../../outside
    assert not (root.root / "a").exists()
    assert _snapshot(tmp_path, skip=root.root) == before
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_writing_under_a_parent_link_out_creates_nothing(env, tmp_path):
    root, outside = env
    before = sorted(p.name for p in outside.rglob("*"))
    with pytest.raises(InvalidParameterValue):
        root.write_stream("out_dir/new/deeper/f.txt")
    assert sorted(p.name for p in outside.rglob("*")) == before


# -- artifact URIs ------------------------------------------------------------


@pytest.mark.parametrize("uri, rel", [
    ("mlflow-artifacts:/0/abc/artifacts", "0/abc/artifacts"),
    ("mlflow-artifacts:/", ""),
    ("mlflow-artifacts:", ""),
    ("mlflow-artifacts://localhost:5000/0/abc/artifacts/model", "0/abc/artifacts/model"),
    ("mlflow-artifacts:///1/r/artifacts", "1/r/artifacts"),
    ("MLFLOW-ARTIFACTS:/2/x", "2/x"),
    ("http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/m", "0/r/artifacts/m"),
    ("https://host/user/me/proxy/labtrack/api/2.0/mlflow-artifacts/artifacts/0/r/a%20b",
     "0/r/a b"),
    ("http://h/ajax-api/2.0/mlflow-artifacts/artifacts/3/r/artifacts", "3/r/artifacts"),
    ("http://h/api/2.0/mlflow-artifacts/artifacts", ""),
    ("http://h/api/2.0/mlflow-artifacts/artifacts/0/f.txt?x=1#frag", "0/f.txt"),
    ("http://h/api/2.0/mlflow-artifacts/artifactsX/0", None),
    ("http://h/api/2.0/mlflow/runs/get", None),
    ("runs:/abc/model", None),
    ("models:/m/1", None),
    ("s3://bucket/0/abc", None),
    ("file:///tmp/mlruns/0", None),
    ("/tmp/mlruns/0", None),
    ("./mlruns", None),
    ("", None),
])
def test_mlflow_artifacts_rel(uri, rel):
    assert mlflow_artifacts_rel(uri) == rel


def test_uri_traversal_is_caught_when_resolved(root):
    rel = mlflow_artifacts_rel("http://h/api/2.0/mlflow-artifacts/artifacts/0/%2e%2e/%2e%2e/etc")
    with pytest.raises(InvalidParameterValue):
        root.resolve(rel)
    rel = mlflow_artifacts_rel("mlflow-artifacts:/../../etc/passwd")
    with pytest.raises(InvalidParameterValue):
        root.resolve(rel)


def test_temp_prefix_is_hidden_name():
    assert TEMP_PREFIX.startswith(".")
