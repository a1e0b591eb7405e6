"""Content-addressed uploads (issue 30, docs/format.md) through the installed `cacher`, on the
file store and SeaweedFS: what is stored, what a changed tree sends, what a failed or killed
upload leaves, and where a scoped job writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cacher.cas import names
from cacher.cas.root import load
from cacher.stores.base import Store
from cacher.testing import file_store, s3_store
from tests.conftest import CACHER, Run, assert_one_error_line, s3_store_env
from tests.trees import make_tree, snapshot

CAS = {"CACHER_TREE_FORMAT": "cas"}


@pytest.fixture(params=["file", "s3"])
def where(request: pytest.FixtureRequest, local_root: Path) -> tuple[dict[str, str], Callable[[], Store]]:
    """The variables of a store and a way to open it in this process: the default file
    store, then a fresh SeaweedFS bucket."""
    if request.param == "file":
        return {}, lambda: file_store(local_root)
    server, bucket = request.getfixturevalue("seaweed_s3"), request.getfixturevalue("s3_bucket")
    return s3_store_env(server, bucket), lambda: s3_store(server, bucket)


def venv(root: Path) -> Path:
    """A virtual environment made by the real tool: symlinks, scripts, pip's tree."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    return root


def upload(cacher: Callable[..., Run], env: dict[str, str], key: str, tree: Path, *extra: str) -> dict[str, Any]:
    run = cacher("--json", "dir", "upload", key, str(tree), *extra, extra_env={**env, **CAS})
    assert run.code == 0, run
    doc: dict[str, Any] = json.loads(run.out)
    return doc


def names_under(store: Store, prefix: str = "") -> list[str]:
    return sorted(o.key for o in store.list(prefix))


def bump(tree: Path) -> None:
    """A lockfile bump's change: a few files replaced, one added, one removed."""
    files = sorted(p for p in tree.rglob("*.py") if p.is_file() and not p.is_symlink())
    for path in files[:: max(1, len(files) // 8)][:8]:
        path.write_bytes(path.read_bytes() + b"\n# bumped\n")
    (tree / "added.txt").write_text("new in this version\n")
    files[-1].unlink()


def test_a_tree_is_stored_as_a_manifest_and_packs_only(cacher, where, tmp_path: Path) -> None:
    env, opened = where
    tree = venv(tmp_path / "venv")
    doc = upload(cacher, env, "deps/v1", tree)
    assert doc["outcome"] == "uploaded" and doc["codec"] == "cas"
    store = opened()
    stored = names_under(store)
    assert "deps/v1" not in stored  # an older reader asked for the key finds nothing: a miss
    assert names.manifest_name("deps/v1") in stored
    packs = [n for n in stored if n.startswith(names.PACKS + "/")]
    assert packs and all(n.endswith(".pack") for n in packs)
    assert set(stored) == {names.manifest_name("deps/v1"), *packs}
    info = store.head(names.manifest_name("deps/v1"))
    assert info is not None
    assert info.metadata["kind"] == names.MANIFEST_KIND and info.metadata["tree-kind"] == "dir"
    with store.open_read(names.manifest_name("deps/v1")) as stream:
        tree_read = load(stream.read(), lambda ref, start, end: store.read_range(ref, start, end))
    assert tree_read.manifest.logical_size == doc["raw_bytes"]
    files = {e.path for e in tree_read.manifest.entries}
    assert "bin/python" in files and "pyvenv.cfg" in files
    # The same key again is skipped, whichever format holds it.
    run = cacher("--json", "dir", "upload", "deps/v1", str(tree), extra_env={**env, **CAS})
    assert run.code == 0 and json.loads(run.out)["outcome"] == "skipped", run
    run = cacher("--json", "dir", "upload", "deps/v1", str(tree), extra_env=env)
    assert run.code == 0 and json.loads(run.out)["outcome"] == "skipped", run


def test_a_changed_tree_sends_only_what_changed(cacher, where, tmp_path: Path) -> None:
    env, opened = where
    tree = venv(tmp_path / "venv")
    first = upload(cacher, env, "deps/v1", tree)
    packs_before = set(names_under(opened(), names.PACKS))
    bump(tree)
    second = upload(cacher, env, "deps/v2", tree, "--restore-key", "deps/")
    assert second["stored_bytes"] < 0.1 * first["stored_bytes"], (first, second)
    new_packs = set(names_under(opened(), names.PACKS)) - packs_before
    assert 1 <= len(new_packs) <= 2  # the changed contents, and the parts that name them
    # The same with --base, and nothing at all for an unchanged tree.
    third = upload(cacher, env, "deps/v3", tree, "--base", "deps/v2")
    assert third["stored_bytes"] < 4096, third
    # A base that is not stored (a typo) costs a whole upload: the result says so.
    bump(tree)
    typo = upload(cacher, env, "deps/v4", tree, "--base", "deps/v9")
    assert typo["notes"] == ["base deps/v9 is not stored as a content-addressed tree: nothing reused from it"]
    assert typo["stored_bytes"] > 0.5 * first["stored_bytes"], typo


def test_a_failed_upload_publishes_no_manifest(cacher, local_root: Path, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    os.mkfifo(tree / "a-fifo")
    run = cacher("dir", "upload", "k", str(tree), extra_env=CAS)
    assert_one_error_line(run, "FIFO")
    store = file_store(local_root)
    assert not [n for n in names_under(store) if not n.startswith(names.PACKS + "/")]


def test_a_killed_upload_leaves_only_unreferenced_packs(cacher, env: dict[str, str], local_root: Path, tmp_path: Path) -> None:
    tree = tmp_path / "big"
    tree.mkdir()
    for i in range(48):  # 48 MiB of incompressible data: several packs, a few seconds
        (tree / f"f{i:02}").write_bytes(os.urandom(1 << 20))
    proc = subprocess.Popen(
        [CACHER, "dir", "upload", "k", str(tree)],
        env={**env, **CAS}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    packs = local_root / names.PACKS
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (packs.exists() and any(packs.rglob("*.pack"))):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = file_store(local_root)
    assert store.head(names.manifest_name("k")) is None
    assert any(n.startswith(names.PACKS + "/") for n in names_under(store))
    # The next upload of the key completes and is whole.
    run = cacher("dir", "upload", "k", str(tree), extra_env=CAS)
    assert run.code == 0, run
    assert store.head(names.manifest_name("k")) is not None


def test_a_scoped_job_writes_packs_in_its_scope_and_reuses_its_fallback(cacher, where, tmp_path: Path) -> None:
    env, opened = where
    tree = venv(tmp_path / "venv")
    main = upload(cacher, {**env, "CACHER_SCOPE": "main"}, "deps/v1", tree)
    before = set(names_under(opened()))
    bump(tree)
    branch_env = {**env, "CACHER_SCOPE": "feature/x", "CACHER_FALLBACK_SCOPES": "main"}
    branch = upload(cacher, branch_env, "deps/v2", tree, "--restore-key", "deps/")
    assert branch["stored_bytes"] < 0.1 * main["stored_bytes"], branch
    written = set(names_under(opened())) - before
    assert written and all(n.startswith("_scopes/feature-x--") for n in written), written
    # A job with no fallback scope may not reuse main's packs: it sends the tree whole.
    alone = upload(cacher, {**env, "CACHER_SCOPE": "other"}, "deps/v2", tree, "--restore-key", "deps/")
    assert alone["stored_bytes"] > 0.5 * main["stored_bytes"], alone


def test_a_read_only_job_stores_nothing(cacher, local_root: Path, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    run = cacher("--json", "dir", "upload", "k", str(tree), extra_env={**CAS, "CACHER_READ_ONLY": "1"})
    assert run.code == 0, run
    assert json.loads(run.out)["outcome"] == "read-only"
    assert not local_root.exists() or not any(p.is_file() for p in local_root.rglob("*"))


@pytest.mark.parametrize("key", ["_cas/manifests/x", "_CAS/x", "_cas"])
def test_keys_in_the_formats_namespace_are_refused(cacher, local_root: Path, tmp_path: Path, key: str) -> None:
    tree = make_tree(tmp_path / "src")
    for extra in ({}, CAS):
        run = cacher("dir", "upload", key, str(tree), extra_env=extra)
        assert_one_error_line(run, "reserved")
    assert not local_root.exists() or not any(p.is_file() for p in local_root.rglob("*"))


def test_an_unknown_tree_format_is_a_usage_error(cacher, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    run = cacher("dir", "upload", "k", str(tree), extra_env={"CACHER_TREE_FORMAT": "zip"})
    assert_one_error_line(run, "tree_format", "zip")


def test_a_tree_copied_elsewhere_stores_the_same_manifest(cacher, local_root: Path, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    upload(cacher, {}, "a", tree)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(tree), str(copy)], check=True)  # links, modes and times kept
    again = upload(cacher, {}, "b", copy)
    assert again["stored_bytes"] < 4096
    manifests = local_root / names.MANIFESTS
    assert (manifests / "a").read_bytes() == (manifests / "b").read_bytes()


def test_the_paths_kind_stores_and_restores_its_tree_content_addressed(cacher, local_root: Path, tmp_path: Path) -> None:
    """The paths kind's archive leaves parents out (``workspace/a`` with no ``workspace``):
    stored as a manifest, restored whole, links kept."""
    work = tmp_path / "work"
    (work / "a" / "b").mkdir(parents=True)
    (work / "c").mkdir()
    (work / "a" / "b" / "f").write_text("one\n")
    (work / "c" / "g").write_text("two\n")
    (work / "a" / "link").symlink_to("../c/g")
    run = cacher("--json", "paths", "upload", "pk", "a", "c", extra_env=CAS, cwd=work)
    assert run.code == 0 and json.loads(run.out)["codec"] == "cas", run
    assert not [p for p in local_root.rglob("pk") if names.MANIFESTS not in str(p)]
    before = {str(p.relative_to(work)): (p.is_symlink(), p.read_text() if p.is_file() else None) for p in work.rglob("*")}
    subprocess.run(["rm", "-rf", str(work / "a"), str(work / "c")], check=True)
    run = cacher("paths", "download", "pk", "a", "c", extra_env=CAS, cwd=work)
    assert run.code == 0, run
    after = {str(p.relative_to(work)): (p.is_symlink(), p.read_text() if p.is_file() else None) for p in work.rglob("*")}
    assert after == before


def test_kinds_that_are_not_trees_keep_one_object(cacher, local_root: Path, tmp_path: Path) -> None:
    """tree_format applies to trees only: a file is stored as itself whatever the setting."""
    (tmp_path / "f.bin").write_bytes(b"payload")
    run = cacher("--json", "upload", "f.bin", str(tmp_path / "f.bin"), extra_env=CAS)
    assert run.code == 0 and json.loads(run.out)["codec"] == "none", run
    assert (local_root / "f.bin").read_bytes() == b"payload"
    assert not (local_root / names.NAMESPACE).exists()


def test_an_old_pack_made_again_is_stored_again(cacher, local_root: Path, tmp_path: Path) -> None:
    """A pack prune may have condemned (unreferenced, old) is refreshed when an upload makes
    it again, so the sweep spares it; a recent one is reused by name."""
    tree = make_tree(tmp_path / "src")
    upload(cacher, {}, "a", tree)
    packs = sorted((local_root / names.PACKS).rglob("*.pack"))
    day_old = time.time() - 86400
    os.utime(packs[0], (day_old, day_old))
    recent = [p.stat().st_mtime for p in packs[1:]]
    upload(cacher, {}, "b", tree)  # no base: the same packs are made again
    assert packs[0].stat().st_mtime > day_old + 3600
    assert [p.stat().st_mtime for p in packs[1:]] == recent


def test_exists_answers_for_a_tree_stored_as_a_manifest(cacher, where, tmp_path: Path) -> None:
    env, _ = where
    upload(cacher, env, "deps/v1", make_tree(tmp_path / "src"))
    for args in (("exists", "deps/v1"), ("dir", "exists", "deps/v1")):
        run = cacher("--json", *args, extra_env=env)
        assert run.code == 0 and json.loads(run.out)["exists"] is True, run
    run = cacher("exists", "deps/v2", extra_env=env)
    assert run.code == 1, run


def test_a_forced_upload_in_one_format_removes_the_other(cacher, local_root: Path, tmp_path: Path) -> None:
    """Every reader restores what was stored last, whatever its own tree_format."""
    one, two = make_tree(tmp_path / "one"), tmp_path / "two"
    two.mkdir()
    (two / "only-in-two").write_text("two\n")
    assert cacher("dir", "upload", "k", str(one)).code == 0  # tar
    assert cacher("dir", "upload", "k", str(two), "--force", extra_env=CAS).code == 0
    assert not (local_root / "k").exists() and (local_root / names.MANIFESTS / "k").exists()
    for reader in ({}, CAS):
        dest = tmp_path / f"dest-{len(reader)}"
        assert cacher("dir", "download", "k", str(dest), extra_env=reader).code == 0
        assert sorted(p.name for p in dest.iterdir()) == ["only-in-two"]
    assert cacher("dir", "upload", "k", str(one), "--force").code == 0  # back to tar
    assert (local_root / "k").exists() and not (local_root / names.MANIFESTS / "k").exists()


def test_offline_a_tree_is_kept_as_one_archive_that_restores_offline(cacher, tmp_path: Path) -> None:
    """The tier keeps whole objects: offline, the content-addressed format would leave packs no
    offline restore can read, so the upload keeps one archive, which restores offline."""
    tree = make_tree(tmp_path / "src")
    tier = tmp_path / "tier"
    offline = {**CAS, "CACHER_LOCAL_TIER": str(tier), "CACHER_OFFLINE": "1"}
    doc = upload(cacher, offline, "k", tree)
    assert (doc["outcome"], doc["codec"]) == ("local", "zstd")
    dest = tmp_path / "dest"
    run = cacher("--json", "dir", "download", "k", str(dest), extra_env=offline)
    assert run.code == 0 and json.loads(run.out)["outcome"] == "local", run
    assert snapshot(dest) == snapshot(tree)


_MAPPED_AFTER_BOUND = """
import ctypes
from cacher.engine.cas_saving import bound_allocator

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
bound_allocator()
first = bytearray(24 << 20)  # freed: glibc's own rule would raise its threshold past 24 MiB
del first
block = bytearray(5 << 20)
print(libc.mallinfo2().hblkhd >= 5 << 20)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""),
    reason="glibc's allocator",
)
def test_an_upload_keeps_large_blocks_mapped_so_freed_ones_leave_memory() -> None:
    """A 5 MiB block made after a 24 MiB one was freed is still mapped on its own (returned to
    the system when freed), not carved from an arena where it would stay resident."""
    out = subprocess.run([sys.executable, "-c", _MAPPED_AFTER_BOUND], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
