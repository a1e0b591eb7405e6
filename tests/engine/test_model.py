"""A model-based test of the cache: a Hypothesis state machine drives the installed ``cacher``
against SeaweedFS, as hostile CI jobs would, and checks the promises after every step.

The jobs use scope names drawn from a pool of case, punctuation and length variants (``main``,
``Main``, ``main.``, ``release/1.0``, ``release-1.0``, two 70-character names sharing 63), some
are read-only, two runners share one local tier and a third has none, a foreign writer replaces
objects behind the tier's back (same size, copied metadata), and every kind (``file``, ``dir``,
``paths``) is restored, sometimes into a destination with a link in a parent, sometimes killed
with SIGKILL mid-command. A mixed fleet: about one job in three stores its trees in the
content-addressed format (``CACHER_TREE_FORMAT=cas``), the others as one tar.zst per key. The model keeps, per (scope, kind), the bytes each could hold. After
every step:

- a restore returns the bytes of the newest object its scope (or its fallback scope) wrote, or
  a miss: never another scope's bytes, never a stale copy;
- a read-only job changes nothing in the bucket (every key, ETag, size and date) or the tier;
- nothing outside the destination changes (a sentinel directory, a link may point at it);
- every command ends within its timeout, with an exit code in {0, 1, 2, 3} and no traceback.

The default profile is bounded for ``.ci/run`` (derandomized, no example database);
``CACHER_SOAK=1`` (``./dev soak``) runs many more and longer sequences. Shrunk failures become
the explicit ``test_found_*`` tests at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from cacher.testing.cli import CACHER, clean_env

pytestmark = pytest.mark.s3

SOAK = os.environ.get("CACHER_SOAK") == "1"
#: Every command ends within this (SeaweedFS on a shared 2-core machine); longer is a hang.
TIMEOUT = 60.0
LONG_A = "feature/" + "x" * 55 + "-alpha-one"  # 70 characters, the first 63 shared with LONG_B
LONG_B = "feature/" + "x" * 55 + "-beta-twoo"
#: Scope names: None (unscoped), case and punctuation variants of one another, a tag-like name.
SCOPES = (None, "main", "Main", "main.", "release/1.0", "release-1.0", "v1.0", LONG_A, LONG_B)
if os.environ.get("CACHER_MODEL_SCOPES"):  # a narrower pool (comma-separated), e.g. to look past one class
    SCOPES = tuple(os.environ["CACHER_MODEL_SCOPES"].split(","))
RUNNERS = ("a", "b", "c")  # a and b share one local tier, c has none
TIERED = ("a", "b")
KINDS = ("file", "dir", "paths")
KEYS = {"file": "f.bin", "dir": "d.tar.zst", "paths": "p.tar.zst"}
SIZE = 64  # every file-kind object has this size, so a replacement always has the same size
PRE_RESTORE = b"pre-restore marker"

PROFILE = settings(
    max_examples=int(os.environ.get("CACHER_MODEL_EXAMPLES", 200 if SOAK else 10)),
    stateful_step_count=int(os.environ.get("CACHER_MODEL_STEPS", 40 if SOAK else 12)),
    deadline=None,
    database=None,
    derandomize=not SOAK,
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True)
class Job:
    """A CI job: its scope name (None: unscoped), fallback scope, read-only flag, runner, and
    how it stores trees (a mixed fleet: some jobs save ``dir`` and ``paths`` content-addressed)."""

    scope: str | None
    fallback: str | None = None
    read_only: bool = False
    runner: str = "a"
    tree_format: str = "tar"


JOBS = st.builds(
    Job,
    scope=st.sampled_from(SCOPES),
    fallback=st.sampled_from((None, None, "main")),
    read_only=st.sampled_from((False, False, False, True)),
    runner=st.sampled_from(RUNNERS),
    tree_format=st.sampled_from(("tar", "tar", "cas")),
)


class Finding(AssertionError):
    """A broken promise; the subclasses name the class of bug, so Hypothesis keeps them apart."""


class AnotherScopesBytes(Finding):
    """A restore or an upload saw an object that another scope wrote (scope collision)."""


class StaleCopy(Finding):
    """A restore returned an older object of its own scope (a stale tier copy)."""


class WroteOutside(Finding):
    """Something outside the destination changed (a write through a link)."""


class ReadOnlyWrote(Finding):
    """A read-only job changed the bucket or the tier."""


class Hung(Finding):
    """A command did not end within its timeout."""


class BadOutcome(Finding):
    """An exit code outside {0, 1, 2, 3}, a traceback, or an unexpected error or miss."""


@dataclass
class Run:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def tree_snapshot(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: links by target, files by size and sha256 (not by dates)."""
    out: dict[str, Any] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                data = p.read_bytes()
                out[rel] = ("file", len(data), hashlib.sha256(data).hexdigest())
            elif p.is_dir():
                out[rel] = ("dir",)
    return out


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class CacheModel(RuleBasedStateMachine):
    """The cache as a set of (scope, kind) slots, each with the bytes it may hold (None: absent)."""

    #: Set by the test before it runs: the SeaweedFS part and a work directory.
    server: Any = None
    workdir: Path = Path("/nonexistent")

    def __init__(self) -> None:
        super().__init__()
        self.root = self.workdir / uuid.uuid4().hex[:10]
        self.bucket = f"m-{uuid.uuid4().hex[:16]}"
        self.server.make_bucket(self.bucket)
        self.client = self.server.client(retries=2)
        self.tier = self.root / "tier"
        self.outside = self.root / "outside"
        self.outside.mkdir(parents=True)
        (self.outside / "keep.txt").write_bytes(b"sentinel")
        self.outside_before = tree_snapshot(self.outside)
        for r in RUNNERS:
            (self.root / r / "home" / ".config").mkdir(parents=True)
            (self.root / r / "home" / ".cache").mkdir()
            (self.root / r / "work" / "sub").mkdir(parents=True)
            (self.root / r / "elsewhere").mkdir()
            (self.root / r / "work" / "lnk").symlink_to(self.root / r / "elsewhere")
        self.possible: dict[tuple[str | None, str], set[bytes | None]] = {}
        self.writes: dict[bytes, tuple[str | None, str]] = {}  # content -> (scope, kind) that wrote it
        self.location: dict[tuple[str | None, str], str] = {}  # S3 key of a file-kind object
        self.tampered: dict[tuple[str | None, str], bytes] = {}  # replaced with copied metadata
        self.counter = 0

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- running cacher -------------------------------------------------------------------

    def env(self, job: Job) -> dict[str, str]:
        env = clean_env(self.root / job.runner / "home")
        env.update(
            CACHER_ENDPOINT=self.server.endpoint,
            CACHER_BUCKET=self.bucket,
            CACHER_S3_KEY_ID=self.server.key_id,
            CACHER_S3_SECRET=self.server.secret,
            CACHER_PREFIX="proj",
            CACHER_CONNECT_TIMEOUT="5",
        )
        if job.runner in TIERED:
            env["CACHER_LOCAL_TIER"] = str(self.tier)
        if job.scope is not None:
            env["CACHER_SCOPE"] = job.scope
            if job.fallback is not None and job.fallback != job.scope:
                env["CACHER_FALLBACK_SCOPES"] = job.fallback
        if job.read_only:
            env["CACHER_READ_ONLY"] = "1"
        env["CACHER_TREE_FORMAT"] = job.tree_format
        return env

    def cacher(self, job: Job, *args: str, cwd: Path | None = None) -> Run:
        try:
            proc = subprocess.run(
                [CACHER, *args],
                env=self.env(job),
                cwd=cwd or self.root / job.runner / "work",
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise Hung(f"cacher {' '.join(args)} ({job}) did not end within {TIMEOUT} s") from exc
        run = Run(proc.returncode, proc.stdout, proc.stderr)
        if run.code not in (0, 1, 2, 3) or "Traceback" in run.err:
            raise BadOutcome(f"cacher {' '.join(args)} ({job}):\n{run}")
        return run

    def listing(self) -> dict[str, tuple[str, int, str]]:
        """Every object in the bucket: key -> (ETag, size, date)."""
        out: dict[str, tuple[str, int, str]] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for o in page.get("Contents", []):
                out[o["Key"]] = (o["ETag"], o["Size"], str(o["LastModified"]))
        return out

    def fresh(self, job: Job, kind: str) -> bytes:
        """New content no other write had, of one size for the file kind."""
        self.counter += 1
        text = f"w{self.counter}:{kind}:{job.scope}:{uuid.uuid4().hex}"
        data = text.encode()[:SIZE].ljust(SIZE, b".") if kind == "file" else text.encode()
        self.writes[data] = (job.scope, kind)
        return data

    def slot(self, scope: str | None, kind: str) -> set[bytes | None]:
        return self.possible.setdefault((scope, kind), {None})

    # -- checks -----------------------------------------------------------------------------

    def check_restored(self, job: Job, kind: str, run: Run, got: bytes | None, what: str) -> None:
        """``got`` (the restored bytes, None for a miss) is what the job's scope or its fallback
        may hold; on a hit the slot collapses to what was seen."""
        own = self.slot(job.scope, kind)
        if run.code == 2 and self.tampered.get((job.scope, kind)) in own:
            return  # the replaced object is refused (its sha256 is the old one's): not stale
        fallback = None if job.scope is None or job.fallback in (None, job.scope) else job.fallback
        allowed: set[bytes | None] = {b for b in own if b is not None}
        miss_ok = None in own
        if None in own and fallback is not None:
            other = self.slot(fallback, kind)
            allowed |= {b for b in other if b is not None}
            miss_ok = None in other
        if run.code == 3 or got is None:
            if run.code != 3:
                raise BadOutcome(f"{what}: nothing restored but not a miss:\n{run}")
            if not miss_ok:
                raise BadOutcome(f"{what}: a miss, but the scope holds an object:\n{run}")
            return
        if run.code != 0:
            raise BadOutcome(f"{what}:\n{run}")
        if got in allowed:
            if got in own:
                own.intersection_update({got})
                if self.tampered.get((job.scope, kind)) not in own:
                    self.tampered.pop((job.scope, kind), None)
            return
        writer = self.writes.get(got)
        if writer is not None and writer[0] != job.scope and writer[0] != fallback:
            raise AnotherScopesBytes(
                f"{what}: restored the bytes scope {writer[0]!r} wrote into scope {job.scope!r} "
                f"(expected one of {sorted(map(repr, allowed))} or a miss)\n{run}"
            )
        if writer is not None:
            raise StaleCopy(f"{what}: restored an older object of scope {writer[0]!r}, not the newest\n{run}")
        raise BadOutcome(f"{what}: restored bytes no job wrote: {got!r}\n{run}")

    @invariant()
    def nothing_outside_changed(self) -> None:
        now = tree_snapshot(self.outside)
        if now != self.outside_before:
            raise WroteOutside(f"the directory outside every destination changed: {self.outside_before} -> {now}")

    def guarded(self, job: Job) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return (self.listing(), tree_snapshot(self.tier)) if job.read_only else None

    def check_guarded(self, job: Job, before: tuple[dict[str, Any], dict[str, Any]] | None, what: str) -> None:
        if before is None:
            return
        if self.listing() != before[0]:
            raise ReadOnlyWrote(f"{what}: a read-only job changed the bucket: {before[0]} -> {self.listing()}")
        if tree_snapshot(self.tier) != before[1]:
            raise ReadOnlyWrote(f"{what}: a read-only job changed the local tier")

    # -- steps ------------------------------------------------------------------------------

    def _upload_args(self, job: Job, kind: str, data: bytes) -> list[str]:
        n = self.counter
        if kind == "file":
            src = self.root / job.runner / f"src-{n}.bin"
            src.write_bytes(data)
            return ["upload", KEYS[kind], str(src)]
        if kind == "dir":
            src = self.root / job.runner / f"src-{n}"
            (src / "sub").mkdir(parents=True)
            (src / "sub" / "f.txt").write_bytes(data)
            return ["dir", "upload", KEYS[kind], str(src)]
        sub = self.root / job.runner / "work" / "sub"
        if sub.is_symlink():
            sub.unlink()
        sub.mkdir(exist_ok=True)
        (sub / "f.txt").write_bytes(data)
        return ["paths", "upload", KEYS[kind], "sub/f.txt"]

    @rule(job=JOBS, kind=st.sampled_from(KINDS), force=st.booleans())
    def upload(self, job: Job, kind: str, force: bool) -> None:
        data = self.fresh(job, kind)
        args = self._upload_args(job, kind, data)
        before = self.listing()
        tier_before = tree_snapshot(self.tier) if job.read_only else None
        run = self.cacher(job, *args, "--json", *(["--force"] if force else []))
        what = f"{' '.join(args[:-1])} ({job})"
        if run.code != 0:
            raise BadOutcome(f"{what}:\n{run}")
        outcome = json.loads(run.out)["outcome"]
        if job.read_only:
            if outcome != "read-only":
                raise ReadOnlyWrote(f"{what}: outcome {outcome!r}, not read-only\n{run}")
            self.check_guarded(job, (before, tier_before or {}), what)
            return
        slot = self.slot(job.scope, kind)
        if outcome == "skipped":
            if slot == {None}:
                owners = sorted({repr(s) for s, k in self.possible if k == kind and s != job.scope})
                raise AnotherScopesBytes(
                    f"{what}: skipped as existing, but scope {job.scope!r} never wrote {KEYS[kind]} "
                    f"(other scopes that did: {', '.join(owners)})\n{run}"
                )
            slot.discard(None)
            return
        if outcome != "uploaded":
            raise BadOutcome(f"{what}: outcome {outcome!r}\n{run}")
        slot.clear()
        slot.add(data)
        self.tampered.pop((job.scope, kind), None)
        self._locate(job, kind, before)

    def _locate(self, job: Job, kind: str, before: Mapping[str, Any]) -> None:
        """Where a file-kind object went: the one key the write changed (no layout assumed)."""
        if kind != "file":
            return
        after = self.listing()
        changed = [k for k, v in after.items() if before.get(k) != v]
        if len(changed) == 1:
            self.location[(job.scope, kind)] = changed[0]

    @rule(job=JOBS, kind=st.sampled_from(KINDS), linked=st.booleans())
    def restore(self, job: Job, kind: str, linked: bool) -> None:
        self.counter += 1
        n = self.counter
        work = self.root / job.runner / "work"
        guard = self.guarded(job)
        what = f"{kind} download ({job}, linked={linked})"
        if kind == "paths":
            sub = work / "sub"
            if linked:  # item 7: the parent of the pattern's file is now a link out of the workspace
                if not sub.is_symlink():
                    shutil.rmtree(sub)
                    sub.symlink_to(self.outside)
            else:
                if sub.is_symlink():
                    sub.unlink()
                sub.mkdir(exist_ok=True)
                (sub / "f.txt").write_bytes(PRE_RESTORE)
            run = self.cacher(job, "paths", "download", KEYS[kind], "sub/f.txt")
            self.check_guarded(job, guard, what)
            if linked:
                if run.code == 2:  # refused: the link stays, nothing written
                    return
                if run.code == 0 and sub.is_symlink():
                    self.nothing_outside_changed()
                    raise BadOutcome(f"{what}: exit 0 with sub still a link\n{run}")
            got = (sub / "f.txt").read_bytes() if run.code == 0 else None
            if run.code == 3 and not linked and (sub / "f.txt").read_bytes() != PRE_RESTORE:
                raise BadOutcome(f"{what}: a miss changed the workspace\n{run}")
            self.check_restored(job, kind, run, got, what)
            return
        base = (work / "lnk") if linked else (self.root / job.runner / "dest")
        base.mkdir(exist_ok=True)
        if kind == "file":
            dest = base / f"out-{n}.bin"
            run = self.cacher(job, "download", KEYS[kind], str(dest))
            self.check_guarded(job, guard, what)
            if linked and run.code == 2:
                return
            got = dest.read_bytes() if run.code == 0 and dest.is_file() else None
        else:
            dest = base / f"out-{n}"
            run = self.cacher(job, "dir", "download", KEYS[kind], str(dest))
            self.check_guarded(job, guard, what)
            if linked and run.code == 2:
                return
            got = None
            if run.code == 0:
                tree = files_of(dest)
                if set(tree) != {"sub/f.txt"}:
                    raise BadOutcome(f"{what}: restored tree {sorted(tree)}\n{run}")
                got = tree["sub/f.txt"]
        self.check_restored(job, kind, run, got, what)

    @precondition(lambda self: any(len(self.possible.get(k, ())) == 1 for k in self.location))
    @rule(data=st.data())
    def replace_behind_the_tier(self, data: st.DataObject) -> None:
        """Another writer replaces a file-kind object (see `replace`)."""
        slots = sorted((k for k in self.location if len(self.possible.get(k, ())) == 1), key=repr)
        self.replace(*data.draw(st.sampled_from(slots), label="slot"))

    def replace(self, scope: str | None, kind: str = "file") -> None:
        """Another writer (a sync tool, a hostile job) puts new bytes of the same size over the
        object with its metadata copied as it is, write id and sha256 included: no longer a
        valid object of that scope, it may be refused (exit 2), never served as the old bytes."""
        key = self.location[(scope, kind)]
        meta = self.client.head_object(Bucket=self.bucket, Key=key)["Metadata"]
        new = self.fresh(Job(scope), kind)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=new, Metadata=meta)
        self.possible[(scope, kind)] = {new}
        self.tampered[(scope, kind)] = new

    @rule(
        job=JOBS,
        kind=st.sampled_from(("file", "dir")),
        upload=st.booleans(),
        delay=st.sampled_from((0.05, 0.2, 0.4, 0.8)),
    )
    def killed(self, job: Job, kind: str, upload: bool, delay: float) -> None:
        """SIGKILL mid-command: an upload may or may not have landed; nothing else changes."""
        if upload:
            data = self.fresh(job, kind)
            args = [*self._upload_args(job, kind, data), "--force"]
        else:
            self.counter += 1
            dest = self.root / job.runner / "dest" / f"killed-{self.counter}"
            dest.parent.mkdir(exist_ok=True)
            args = (["download"] if kind == "file" else ["dir", "download"]) + [KEYS[kind], str(dest)]
        guard = self.guarded(job)
        before = self.listing()
        proc = subprocess.Popen(
            [CACHER, *args], env=self.env(job), cwd=self.root / job.runner / "work",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
        self.check_guarded(job, guard, f"killed {' '.join(args[:2])}")
        if upload and not job.read_only:
            self.slot(job.scope, kind).add(data)
            self.settle()  # a PUT whose body was sent may still be committed after the kill
            self._locate(job, kind, before)

    def settle(self, quiet: float = 0.5, bound: float = 10.0) -> None:
        """Wait until the bucket listing stops changing (for ``quiet`` seconds, ``bound`` at most)."""
        last, deadline = self.listing(), time.monotonic() + bound
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.listing()
            if now == last:
                return
            last = now


def run_model(seaweed_s3: Any, tmp_path: Path, profile: settings = PROFILE) -> None:
    CacheModel.server = seaweed_s3
    CacheModel.workdir = tmp_path
    run_state_machine_as_test(CacheModel, settings=profile)


@pytest.mark.timeout(0 if SOAK else 600)
def test_the_cache_keeps_its_promises_under_random_jobs(seaweed_s3, tmp_path: Path) -> None:
    started = time.monotonic()
    run_model(seaweed_s3, tmp_path)
    print(f"model: {PROFILE.max_examples} examples of up to {PROFILE.stateful_step_count} steps "
          f"in {time.monotonic() - started:.1f} s")


# -- shrunk failures, as regular tests -------------------------------------------------------
# Each is a sequence the model found on e5cac03 (issue 25), reduced to its steps: they fail
# there (items 1, 7 and 8: AnotherScopesBytes, WroteOutside, StaleCopy) and pass since the fixes.

A, B, C = "a", "b", "c"


@pytest.fixture
def model(seaweed_s3: Any, tmp_path: Path) -> Any:
    CacheModel.server = seaweed_s3
    CacheModel.workdir = tmp_path
    state = CacheModel()
    yield state
    state.teardown()


def test_found_scope_collision_main_and_Main(model: CacheModel) -> None:
    model.upload(job=Job("Main", runner=C), kind="file", force=True)
    model.restore(job=Job("main", runner=C), kind="file", linked=False)  # a miss, not Main's bytes


def test_found_scope_collision_main_dot_skips_its_upload(model: CacheModel) -> None:
    model.upload(job=Job("Main", runner=A), kind="dir", force=True)
    model.upload(job=Job("main.", runner=A), kind="dir", force=False)  # uploaded, not "skipped"


@pytest.mark.parametrize(("writer", "reader"), [("release/1.0", "release-1.0"), (LONG_A, LONG_B)])
def test_found_scope_collision_of_punctuation_and_long_names(model: CacheModel, writer: str, reader: str) -> None:
    model.upload(job=Job(writer, runner=C), kind="file", force=True)
    model.restore(job=Job(reader, runner=C), kind="file", linked=False)


def test_found_paths_restore_through_a_linked_parent(model: CacheModel) -> None:
    model.upload(job=Job("v1.0", runner=C), kind="paths", force=False)
    model.restore(job=Job("v1.0", runner=B), kind="paths", linked=True)
    model.nothing_outside_changed()


def test_found_stale_tier_copy_after_a_same_size_replacement(model: CacheModel) -> None:
    model.upload(job=Job("main", runner=A), kind="file", force=False)
    model.replace("main", "file")
    model.restore(job=Job("main", runner=B), kind="file", linked=False)
