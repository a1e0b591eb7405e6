"""The engine's policies, each with one owner (issue 28), on real stores in memory and on disk.

Soft failure is `cacher.stores.softfail.SoftFailure` (the only module that reads the setting);
a transfer is a frozen request (`cacher.engine.DownloadRequest`, `UploadRequest`); ``ensure``
and prune's selection live in the engine; outcomes map to exit codes in one table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cacher import engine
from cacher.errors import CacheMiss, ExitCode, StorageError, exit_code
from cacher.registry import Registry
from cacher.stores.base import Store, unavailable_store
from cacher.stores.readonly import ReadOnlyStore
from cacher.stores.softfail import HARD, SoftFailure
from cacher.testing.fixtures import memory_store

ROOT = Path(__file__).resolve().parents[2] / "cacher"
SOFT = SoftFailure(True)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_entry_points()


def _down() -> Store:
    return unavailable_store("bucket", "", "s3", "the store is down")


def _upload(registry: Registry, store: Store, key: str, src: Path, **policy: object) -> engine.Result:
    request = engine.UploadRequest(registry.kind("file"), registry.codec("none"), key, [str(src)], **policy)  # type: ignore[arg-type]
    return engine.upload(store, request)


def _request(registry: Registry, key: str, dest: Path, **policy: object) -> engine.DownloadRequest:
    return engine.DownloadRequest(registry.kind("file"), registry.codec("none"), key, str(dest), **policy)  # type: ignore[arg-type]


def test_the_soft_fail_setting_is_read_by_the_policy_alone() -> None:
    """Like the read-only gate: the setting is declared once and read in one module."""
    readers = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if re.search(r"\bsoft_fail\b(?!ure)", p.read_text())
    )
    assert [r for r in readers if r != "errors.py"] == ["config/declaration.py", "stores/softfail.py"]


def test_the_policy_raises_or_absorbs() -> None:
    error = StorageError("no answer")
    with pytest.raises(StorageError, match="no answer"):
        HARD.absorb(error)
    assert SOFT.absorb(error) == "no answer"
    assert HARD.toward(_down()) == SOFT  # no credentials: always soft
    assert HARD.toward(memory_store()) == HARD
    assert HARD.job_memory("http://s3", {"CI_JOB_ID": "1"}) is None


def test_a_dead_store_is_an_error_unless_soft(registry: Registry, tmp_path: Path) -> None:
    src, dest = tmp_path / "a.bin", tmp_path / "b.bin"
    src.write_bytes(b"data")
    with pytest.raises(StorageError):
        engine.download(_down(), _request(registry, "k", dest))
    with pytest.raises(CacheMiss) as miss:
        engine.download(_down(), _request(registry, "k", dest, soft_failure=SOFT, restore_keys=("k",)))
    assert not miss.value.looked_up
    assert miss.value.notes == ("soft failure, treated as a miss: the store is down",)
    assert not dest.exists()
    failed = _upload(registry, _down(), "k", src, soft_failure=SOFT)
    assert (failed.outcome, failed.reason) == ("failed", "the store is down")
    assert engine.exists(_down(), "k", soft_failure=SOFT) == engine.Presence(False, "the store is down")


def test_a_request_is_frozen_and_its_restore_keys_are_tried(registry: Registry, tmp_path: Path) -> None:
    store = memory_store()
    src, dest = tmp_path / "a.bin", tmp_path / "b.bin"
    src.write_bytes(b"older build")
    assert _upload(registry, store, "deps-1", src).outcome == "uploaded"
    request = _request(registry, "deps-2", dest, restore_keys=("deps-",))
    with pytest.raises(AttributeError):
        request.key = "other"  # type: ignore[misc]
    result = engine.download(store, request)
    assert (result.outcome, result.matched_key, result.match) == ("partial", "deps-1", "partial")
    assert dest.read_bytes() == b"older build"


def _ensure(registry: Registry, store: Store, dest: Path, status: int) -> tuple[engine.Ensured, list[str]]:
    ran: list[str] = []

    def build() -> int:
        ran.append("build")
        dest.write_bytes(b"built")
        return status

    return engine.ensure(store, _request(registry, "k", dest), engine.EnsureSteps(build)), ran


def test_ensure_builds_on_a_miss_then_hits(registry: Registry, tmp_path: Path) -> None:
    store, dest = memory_store(), tmp_path / "out.bin"
    built, ran = _ensure(registry, store, dest, 0)
    assert (built.outcome, built.match, built.build_status, ran) == ("built", "miss", 0, ["build"])
    assert built.uploaded is not None and built.uploaded.outcome == "uploaded"
    dest.unlink()
    hit, ran = _ensure(registry, store, dest, 0)
    assert (hit.outcome, hit.match, hit.failed, ran) == ("hit", "exact", None, [])
    assert dest.read_bytes() == b"built"


def test_ensure_stores_nothing_after_a_failed_build_or_for_a_read_only_job(
    registry: Registry, tmp_path: Path
) -> None:
    store, dest = memory_store(), tmp_path / "out.bin"
    failed, _ = _ensure(registry, store, dest, 7)
    assert (failed.outcome, failed.failed, failed.build_status, failed.uploaded) == ("build-failed", "build", 7, None)
    assert exit_code(failed.outcome, build_status=failed.build_status) == 7
    gated, _ = _ensure(registry, ReadOnlyStore(store), dest, 0)
    assert gated.outcome == "read-only"
    assert not store.exists("k")


def test_prune_keeps_the_newest_and_the_young() -> None:
    items = {"a": 100.0, "b": 200.0, "c": 300.0, "d": None, "e": 950.0}
    newest, doomed = engine.select_old(list(items), items.get, older_than=100, keep_last=1, now=1000)
    assert newest == ["e", "c", "b", "a", "d"]
    assert doomed == ["c", "b", "a"]  # e is young, d has no time
    _newest, kept = engine.select_old(list(items), items.get, older_than=100, keep_last=4, now=1000)
    assert kept == []


def test_a_read_only_prune_is_a_dry_run(registry: Registry, tmp_path: Path) -> None:
    store = memory_store()
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    _upload(registry, store, "old", src)
    plan = engine.plan_prune(ReadOnlyStore(store), "", older_than=-1, keep_last=0, dry_run=False)
    assert (plan.dry_run, plan.writes_refused, [o.key for o in plan.doomed]) == (True, True, ["old"])
    assert [o.key for o in engine.carry_out(ReadOnlyStore(store), plan)] == ["old"]
    assert store.exists("old")


@pytest.mark.parametrize(
    ("outcome", "code"),
    [("uploaded", ExitCode.OK), ("hit", ExitCode.OK), ("failed", ExitCode.OK), ("absent", ExitCode.MISS),
     ("miss", ExitCode.DOWNLOAD_MISS), ("built", ExitCode.OK), ("read-only", ExitCode.OK)],
)
def test_one_table_maps_outcomes_to_exit_codes(outcome: str, code: ExitCode) -> None:
    assert exit_code(outcome) == code


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("stored", ["exact", "restore-key", "fallback-scope", "nowhere", "store-down"])
def test_download_across_soft_failure_scopes_restore_keys_and_the_gate(
    registry: Registry, tmp_path: Path, stored: str, soft: bool, read_only: bool
) -> None:
    """One download per combination, on memory stores: where the object is decides the
    outcome; soft failure only turns a dead store's error into a miss; the gate changes no read."""
    base = memory_store()
    own, other = base.with_prefix("scope-a"), base.with_prefix("scope-b")
    src, dest = tmp_path / "src.bin", tmp_path / "dest.bin"
    src.write_bytes(stored.encode())
    home = {"exact": (own, "deps-2"), "restore-key": (own, "deps-1"), "fallback-scope": (other, "deps-2")}
    if stored in home:
        store, key = home[stored]
        _upload(registry, store, key, src)
    job = _down() if stored == "store-down" else own
    job = ReadOnlyStore(job) if read_only else job
    request = _request(
        registry, "deps-2", dest, restore_keys=("deps-",), fallback_stores=(("b", other),),
        soft_failure=SoftFailure(soft),
    )
    if stored == "store-down" and not soft:
        with pytest.raises(StorageError):
            engine.download(job, request)
    elif stored in ("nowhere", "store-down"):
        with pytest.raises(CacheMiss) as miss:
            engine.download(job, request)
        assert miss.value.looked_up == (stored == "nowhere")
    else:
        result = engine.download(job, request)
        expected = {"exact": ("hit", None), "restore-key": ("partial", None), "fallback-scope": ("partial", "b")}
        assert (result.outcome, result.scope) == expected[stored]
        assert dest.read_bytes() == stored.encode()
        return
    assert not dest.exists()


@pytest.mark.parametrize("soft", [False, True])
def test_ensure_on_a_dead_store(registry: Registry, tmp_path: Path, soft: bool) -> None:
    """Hard: the store's error before any build. Soft: the build runs, nothing is stored, and
    the outcome says cacher's side failed."""
    dest, ran = tmp_path / "out.bin", []

    def build() -> int:
        ran.append("build")
        dest.write_bytes(b"built")
        return 0

    request = _request(registry, "k", dest, soft_failure=SoftFailure(soft))
    if not soft:
        with pytest.raises(StorageError):
            engine.ensure(_down(), request, engine.EnsureSteps(build))
        assert ran == []
        return
    ensured = engine.ensure(_down(), request, engine.EnsureSteps(build))
    assert (ensured.outcome, ensured.failed, ensured.reason, ran) == ("failed", "cacher", "the store is down", ["build"])
    assert exit_code(ensured.outcome) == ExitCode.OK
