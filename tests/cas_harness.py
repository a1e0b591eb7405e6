"""The harness of the kill-and-race tests of content-addressed trees (tests/engine/test_cas_races.py):
real ``cacher`` processes against SeaweedFS, each through a `FaultProxy` whose holds stop it at
a chosen request, so a test knows where a process is before it kills it or runs another.

Here: the requests worth holding (a pack's PUT, the manifest's PUT, a ranged GET of a pack, a
pack's DELETE), a running process and the checks the tests share (a tree restores exactly, a key
is missing, a prune's document), trees big enough for several packs, and what the bucket holds.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cacher.testing.cli import CliRun
from tests.conftest import CACHER
from tests.fault_proxy import FaultProxy, s3_env
from tests.realparts.recording_proxy import RecordedRequest
from tests.trees import make_tree, snapshot

PACKS = "_cas/packs/"
MANIFESTS = "_cas/manifests/"
#: Packs close at 16 MiB: a tree of ~23 MiB of incompressible data makes two.
BIG_FILES, BIG_SIZE = 5, 4 << 20
SMALL_FILES = 300


def cas_env(server: Any, bucket: str, proxy: FaultProxy | None = None, part_size_mb: int = 32) -> dict[str, str]:
    """The S3 store (through ``proxy`` if given), the cas format, packs sent as one PUT each
    unless ``part_size_mb`` is below a pack's size, and timeouts long enough for a held request."""
    return s3_env(
        server,
        bucket,
        proxy.endpoint if proxy is not None else None,
        CACHER_TREE_FORMAT="cas",
        CACHER_PART_SIZE_MB=str(part_size_mb),
        CACHER_READ_TIMEOUT="120",
        CACHER_METADATA_TIMEOUT="120",
    )


# -- requests --------------------------------------------------------------------------------


def _in(req: RecordedRequest, where: str) -> bool:
    return f"/{where}" in req.path


def is_pack_put(req: RecordedRequest) -> bool:
    """The request that stores a pack: its one PUT, or the completion of its multipart upload."""
    if not _in(req, PACKS):
        return False
    if req.method == "PUT":
        return "uploadId" not in req.query_params
    return req.method == "POST" and "uploadId" in req.query_params


def is_pack_write(req: RecordedRequest) -> bool:
    """Any request that writes a pack or a part of one."""
    return req.method in ("PUT", "POST") and _in(req, PACKS)


def is_manifest_put(req: RecordedRequest) -> bool:
    return req.method == "PUT" and _in(req, MANIFESTS)


def is_pack_read(req: RecordedRequest) -> bool:
    """A ranged GET of a pack (a restore's reads; an index read is one too)."""
    return req.method == "GET" and _in(req, PACKS) and req.header("Range") is not None


def is_pack_delete(req: RecordedRequest) -> bool:
    return req.method == "DELETE" and _in(req, PACKS)


def answered(proxy: FaultProxy, match: Callable[[RecordedRequest], bool]) -> list[RecordedRequest]:
    """The requests matching ``match`` that got a 2xx answer."""
    return [r for r in proxy.requests if match(r) and r.status is not None and 200 <= r.status < 300]


def wait_answered(proxy: FaultProxy, match: Callable[[RecordedRequest], bool], n: int, timeout: float = 60) -> None:
    """Until ``n`` requests matching ``match`` were answered 2xx."""
    deadline = time.monotonic() + timeout
    while len(answered(proxy, match)) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {n} answered: {[(r.method, r.target, r.status) for r in proxy.requests]}")
        time.sleep(0.02)


def wait_stored(req: RecordedRequest, timeout: float = 60) -> None:
    """Until ``req`` (a released hold's) was answered 2xx."""
    deadline = time.monotonic() + timeout
    while req.status is None or not 200 <= req.status < 300:
        if time.monotonic() > deadline or req.error is not None:
            raise AssertionError(f"{req.method} {req.target}: {req.status} {req.error}")
        time.sleep(0.02)


# -- processes -------------------------------------------------------------------------------


class Running:
    """One ``cacher`` process in the background, in ``env``."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [CACHER, *args], env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> CliRun:
        """Send ``sig`` and wait for the end."""
        self.proc.send_signal(sig)
        return self.finish()

    def finish(self, timeout: float = 120) -> CliRun:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return CliRun(self.proc.returncode, out, err)


def run(env: dict[str, str], cwd: Path, *args: str) -> CliRun:
    """One ``cacher`` run to its end."""
    return Running(list(args), env, cwd).finish()


def restores(env: dict[str, str], cwd: Path, key: str, tree: Path) -> None:
    """``key`` restores to a copy of ``tree`` (exit 0)."""
    dest = cwd / f"restored-{key}"
    got = run(env, cwd, "dir", "download", key, str(dest))
    assert got.code == 0, got
    assert snapshot(dest) == snapshot(tree)


def prune(env: dict[str, str], cwd: Path, *extra: str) -> dict[str, Any]:
    """A prune of the whole bucket that deletes no object by age; its JSON document."""
    done = run(env, cwd, "--json", "prune", "--all-projects", "--older-than", "3650d", *extra)
    assert done.code == 0, done
    doc: dict[str, Any] = json.loads(done.out)
    assert doc["deleted"] == [], doc
    return doc


def assert_missing(env: dict[str, str], cwd: Path, key: str) -> None:
    """No tree under ``key``: exists exits 1, a restore misses (3) and writes nothing."""
    assert run(env, cwd, "dir", "exists", key).code == 1
    dest = cwd / f"miss-{key}"
    missed = run(env, cwd, "dir", "download", key, str(dest))
    assert missed.code == 3, missed
    assert not dest.exists()


# -- trees and the bucket --------------------------------------------------------------------


def data_files(seed: str = "", share: float = 1.0, big: int = BIG_FILES) -> dict[str, bytes]:
    """The data files of a tree: ``SMALL_FILES`` small ones and ``big`` of 4 MiB, random.
    Every tree has the same first ``share`` of each group; the rest depends on ``seed``."""
    files: dict[str, bytes] = {}
    for group, count, size in (("small", SMALL_FILES, 3000), ("big", big, BIG_SIZE)):
        shared = round(count * share)
        for i in range(count):
            origin = "common" if i < shared else seed
            files[f"data/{group}/f{i:03}"] = random.Random(f"{origin}/{group}/{i}").randbytes(size)
    return files


def build_tree(root: Path, files: dict[str, bytes]) -> Path:
    """`tests.trees.make_tree` (every entry type) plus ``files``."""
    make_tree(root)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def packs_in(server: Any, bucket: str) -> set[str]:
    return {k for k in server.list_keys(bucket, PACKS) if k.endswith(".pack")}


def manifest_there(server: Any, bucket: str, key: str) -> bool:
    return MANIFESTS + key in server.list_keys(bucket, MANIFESTS)
