"""Incremental saves (issue 30): the content-addressed tree format (``cas``) against the plain
tar.zst, on a tree saved once and then changed by a lockfile bump (`changes.bumped`: about 1%
of the files and bytes replaced, some removed and added). ``incremental`` uses the size's
tree, ``incremental-medium`` the medium one. Per tree, made once and reused by every row:
the bumped tree, the previous version stored in cas, a local tier holding that version.

- ``incremental upload`` (interleaved): the bumped tree uploaded in cas against the previous
  version (``--base``), in cas from nothing (the first upload), in tar.zst by cacher, and by
  ``tar | zstd | s5cmd pipe``. Each contender writes under a prefix of its own, set back
  before each run to what it held before the first (untimed), so every run sends what a real
  one would; the bytes it sent are the objects it added there (listed after each run).
  A fifth contender uploads the same change the way a CI job makes it: the previous version
  restored by cacher into a directory (which records its files' stat), then the bump applied
  to it before each run (`changes.bump_again`: the changed files written again), so only the
  changed files are read; the copy above is a tree cacher never saw, every file read.
- ``incremental restore`` (interleaved): the bumped tree restored in cas with a tier that
  holds the previous version (a fresh copy of it before each run), in cas with an empty tier,
  and in tar.zst by cacher (no tier). Then once more each, untimed, through a counting relay:
  the bytes the server sent (HTTP headers included, on both sides of the ratio).
- ``incremental share``: two keys whose trees share 95% of their contents, the second
  uploaded against the first: the prefix's stored size after both against after the first.

Bytes and peak RSS are pass/fail (`bytes_table`, report.rss_table); times are ratios of
medians against the peer of the same loop (`comparisons`, in targets.COMPARISONS).
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cacherbench.bench import BUCKET, Bench, Contender, Measurement, remove
from cacherbench.changes import Bump, bump_again, bumped
from cacherbench.common import ZSTD, check_tree, tar_zstd, untimed
from cacherbench.inputs import Inputs, tree_stats
from cacherbench.proc import measure, shell
from cacherbench.relay import Relay, _pump
from cacherbench.workloads import Tree, main_tree, medium_tree

BUMP, SHARED = 0.01, 0.05  # a lockfile bump; the second key of the share row differs by 5%
INC, FIRST, TAR, S5 = "cacher cas, incremental", "cacher cas, first upload", "cacher tar.zst", "s5cmd"
INC_R = "cacher cas, incremental, the tree restored then changed"
WARM, COLD = "cacher cas, tier holds the previous version", "cacher cas, empty tier"
SHARE_A, SHARE_B = "cacher cas, first key", "cacher cas, second key (95% shared)"
BYTES_TARGET, SHARE_TARGET = 0.05, 1.1


class _Place:
    """A contender's own prefix in the bucket: listed, and set back to what it held at `mark`."""

    def __init__(self, bench: Bench, prefix: str) -> None:
        self.bench, self.prefix = bench, prefix
        self.baseline: dict[str, int] = {}

    def objects(self) -> dict[str, int]:
        pages = self.bench.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=self.prefix + "/"
        )
        return {o["Key"]: int(o["Size"]) for page in pages for o in page.get("Contents", [])}

    def mark(self) -> None:
        self.baseline = self.objects()

    def reset(self) -> None:
        for key in set(self.objects()) - set(self.baseline):
            self.bench.client.delete_object(Bucket=BUCKET, Key=key)

    def added(self) -> int:
        return sum(size for key, size in self.objects().items() if key not in self.baseline)

    def env(self, tree_format: str, tier: Path | None = None) -> dict[str, str]:
        env = {**self.bench.cacher_env(), "CACHER_PREFIX": self.prefix, "CACHER_TREE_FORMAT": tree_format}
        if tier is not None:
            env["CACHER_LOCAL_TIER"] = str(tier)
        return env


class _CountingRelay(Relay):
    """The recording relay, counting the bytes the server sends back (`down`)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.down = 0

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream)
            back = threading.Thread(target=self._back, args=(server, client), daemon=True)
            back.start()
            _pump(client, server)
            back.join()
            server.close()
        except OSError:
            pass
        finally:
            client.close()

    def _back(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(1 << 16):
                with self._lock:  # counted before it is passed on: complete when the command exits
                    self.down += len(data)
                client.sendall(data)
        except OSError:
            pass
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _base_args(bench: Bench, base: str) -> list[str]:
    """How this cacher's upload is told the previous key: ``--base``, else a restore key."""
    shown = subprocess.run(
        bench.cacher("dir", "upload", "--help"), env=bench.cacher_env(), capture_output=True, text=True
    ).stdout
    for flag in ("--base", "--restore-key"):
        if f"{flag} " in shown:
            return [flag, base]
    return []


def _restored(bench: Bench, slug: str, place: _Place) -> Path:
    """A directory the previous version was restored into by cacher in cas (which records its
    files' stat, as on a CI runner that restored its cache before the lockfile bump)."""
    path = bench.scratch(f"{slug}-restored")
    remove(path)
    untimed(bench, bench.cacher("dir", "download", "v1", str(path)), place.env("cas"))
    return path


@dataclass(frozen=True)
class _Changed:
    """The changed tree as a fresh copy (``v2``), the bump that made it, and the previous
    version restored by cacher into a directory the bump is applied to before each run."""

    v2: Path
    bump: Bump
    restored: Path


def _upload(bench: Bench, w: str, changed: _Changed, places: dict[str, _Place], base: list[str], runs: int,
            s5key: str) -> tuple[list[Measurement], dict[str, list[int]]]:
    v2, restored = changed.v2, changed.restored
    sent: dict[str, list[int]] = {INC: [], INC_R: [], FIRST: [], TAR: []}
    where = {INC_R: INC}  # the restored tree's upload goes where the copy's does: v1 is there

    def setup(tool: str) -> Callable[[str], None]:
        def run(label: str) -> None:
            places[where.get(tool, tool)].reset()
            if tool == INC_R:  # the bump applied to the restored tree (again: new inodes, ctimes)
                bump_again(restored, v2, changed.bump)

        return run

    def count(tool: str) -> Callable[[str], None]:
        return lambda label: sent[tool].append(places[where.get(tool, tool)].added())

    def upload(key: str, *more: str) -> list[str]:
        return bench.cacher("dir", "upload", key, str(v2), *more)

    flag = f" {base[0]} PREVIOUS" if base else ""
    s5url = bench.url(s5key)
    contenders = [
        Contender(INC, f"cacher dir upload KEY DIR --tree-format cas{flag}", places[INC].env("cas"),
                  lambda label: upload("v2", *base), setup=setup(INC), check=count(INC)),
        Contender(INC_R, f"cacher dir upload KEY RESTORED-THEN-CHANGED --tree-format cas{flag}",
                  places[INC].env("cas"),
                  lambda label: bench.cacher("dir", "upload", "v2", str(restored), *base),
                  setup=setup(INC_R), check=count(INC_R)),
        Contender(FIRST, "cacher dir upload KEY DIR --tree-format cas", places[FIRST].env("cas"),
                  lambda label: upload("v2"), setup=setup(FIRST), check=count(FIRST)),
        Contender(TAR, "cacher dir upload KEY.tar.zst DIR", places[TAR].env("tar"),
                  lambda label: upload("v2.tar.zst"), setup=setup(TAR), check=count(TAR)),
        Contender(S5, f"tar -C DIR -cf - . | {ZSTD} | s5cmd pipe s3://B/KEY", bench.peer_env(),
                  lambda label: shell(f"{tar_zstd(bench, v2)} | {bench.q(bench.s5('pipe', s5url))}")),
    ]
    return bench.compare(w, contenders, runs=runs), sent


def _restore(bench: Bench, w: str, slug: str, v2: Path, places: dict[str, _Place], runs: int
             ) -> tuple[list[Measurement], dict[str, int]]:
    want = tree_stats(v2)
    template = bench.scratch(f"{slug}-tier-previous")  # the tier of a runner that restored v1
    remove(template)
    template.mkdir(mode=0o700)
    previous = bench.scratch(f"{slug}-previous")
    untimed(bench, bench.cacher("dir", "download", "v1", str(previous)), places[INC].env("cas", template))
    remove(previous)
    tier_bytes = sum(p.stat().st_size for p in template.rglob("*") if p.is_file())
    print(f"bench: {w}: the tier holds {tier_bytes} bytes of the previous version", flush=True)
    tiers = {WARM: bench.scratch(f"{slug}-tier-warm"), COLD: bench.scratch(f"{slug}-tier-cold")}
    short = {WARM: "warm", COLD: "cold", TAR: "tar"}

    def dest(tool: str) -> Path:
        return bench.scratch(f"{slug}-restore-{short[tool]}")

    def setup(tool: str) -> Callable[[str], None]:
        def run(label: str) -> None:
            remove(dest(tool))
            if tool in tiers:
                remove(tiers[tool])
                if tool == WARM:
                    shutil.copytree(template, tiers[tool], symlinks=True)
                else:
                    tiers[tool].mkdir(mode=0o700)

        return run

    def check(tool: str) -> Callable[[str], None]:
        def run(label: str) -> None:
            check_tree(dest(tool), want)
            remove(dest(tool))

        return run

    def download(tool: str, key: str) -> Callable[[str], list[str]]:
        return lambda label: bench.cacher("dir", "download", key, str(dest(tool)))

    contenders = [
        Contender(WARM, "cacher dir download KEY DEST --tree-format cas --local-tier TIER",
                  places[INC].env("cas", tiers[WARM]), download(WARM, "v2"), setup(WARM), check(WARM)),
        Contender(COLD, "cacher dir download KEY DEST --tree-format cas --local-tier EMPTY",
                  places[INC].env("cas", tiers[COLD]), download(COLD, "v2"), setup(COLD), check(COLD)),
        Contender(TAR, "cacher dir download KEY.tar.zst DEST", places[TAR].env("tar"),
                  download(TAR, "v2.tar.zst"), setup(TAR), check(TAR)),
    ]
    try:
        measured = bench.compare(w, contenders, runs=runs)
        fetched: dict[str, int] = {}
        relay = _CountingRelay(bench.endpoint)
        with relay:
            for c in contenders:
                c.setup("bytes")
                relay.down = 0
                untimed(bench, c.argv("bytes"), {**c.env, "CACHER_ENDPOINT": relay.endpoint})
                fetched[c.tool] = relay.down
                c.check("bytes")
    finally:
        for path in (template, *tiers.values(), *(dest(t) for t in short)):
            remove(path)
    return measured, fetched


def _share(bench: Bench, w: str, slug: str, v1: Path, v95: Path) -> tuple[list[Measurement], dict[str, int]]:
    place = _Place(bench, f"{slug}/share")
    place.reset()
    runs: list[Measurement] = []
    sizes: dict[str, int] = {}
    second = bench.cacher("dir", "upload", "b", str(v95), *_base_args(bench, "a"))
    flag = f" {second[5]} KEY" if len(second) > 5 else ""
    for tool, argv, shown in (
        (SHARE_A, bench.cacher("dir", "upload", "a", str(v1)), "cacher dir upload KEY DIR --tree-format cas"),
        (SHARE_B, second, f"cacher dir upload KEY2 DIR2 --tree-format cas{flag}"),
    ):
        sample = measure(argv, place.env("cas"), log=bench.log(w))
        runs.append(Measurement(w, tool, shown, [sample]))
        sizes[tool] = place.added()
    print(f"bench: {w}: stored {sizes[SHARE_A]} bytes, then {sizes[SHARE_B]} with the second key", flush=True)
    return runs, sizes


def _incremental(bench: Bench, tree: Tree) -> list[Measurement]:
    started = time.monotonic()
    slug = f"inc-{tree.slug}" if tree.slug else "inc"
    v1 = tree.path
    v2, v95 = v1.with_name(f"{v1.name}-bump1"), v1.with_name(f"{v1.name}-bump5")
    facts: dict[str, Any] = {"tree": str(v1)}
    bench.facts.setdefault("incremental", {})[tree.slug or "main"] = facts
    runs = min(bench.runs, bench.parts_runs)  # keeps the rows to a few minutes at full
    try:
        bump = bumped(v1, v2, BUMP)
        facts["bump"] = bump.to_json()
        facts["shared_bump"] = bumped(v1, v95, SHARED).to_json()
        names = ((INC, "inc"), (FIRST, "first"), (TAR, "tar"))
        places = {tool: _Place(bench, f"{slug}/{name}") for tool, name in names}
        untimed(bench, bench.cacher("dir", "upload", "v1", str(v1)), places[INC].env("cas"))
        places[INC].mark()
        base = _base_args(bench, "v1")
        facts["base"] = base[0] if base else "none: this cacher's upload takes no previous key"
        s5key = f"{slug}/s5cmd/v2.tar.zst"
        restored = _restored(bench, slug, places[INC])
        up, sent = _upload(bench, f"incremental upload{tree.suffix}", _Changed(v2, bump, restored), places,
                           base, runs, s5key)
        remove(restored)
        facts["sent"] = sent
        down, fetched = _restore(bench, f"incremental restore{tree.suffix}", slug, v2, places, runs)
        facts["fetched"] = fetched
        share, stored = _share(bench, f"incremental share{tree.suffix}", slug, v1, v95)
        facts["share"] = stored
    finally:
        for path in (v2, v95):
            shutil.rmtree(path, ignore_errors=True)
    facts["elapsed_s"] = round(time.monotonic() - started, 1)
    print(f"bench: incremental{tree.suffix}: {facts['elapsed_s']} s in all", flush=True)
    return up + down + share


def incremental(bench: Bench, inputs: Inputs) -> list[Measurement]:
    return _incremental(bench, main_tree(bench, inputs))


def incremental_medium(bench: Bench, inputs: Inputs) -> list[Measurement]:
    return _incremental(bench, medium_tree(bench, inputs))


# -- the rows ---------------------------------------------------------------------------------

_TREES = (("main", "", ""), ("medium", " medium", ", medium tree"))


def comparisons() -> list[tuple[str, tuple[str, str], tuple[str, str], float | None]]:
    """The time rows for targets.COMPARISONS (issue 30's table)."""
    rows: list[tuple[str, tuple[str, str], tuple[str, str], float | None]] = []
    for _, sfx, label in _TREES:
        up, down = f"incremental upload{sfx}", f"incremental restore{sfx}"
        rows += [
            (f"incremental upload of the changed tree, restored by cacher then changed{label}",
             (up, INC_R), (up, S5), 0.25),
            (f"incremental upload of the changed tree, a copy cacher never saw{label}", (up, INC), (up, S5),
             0.25),
            (f"incremental upload of the changed tree, a copy cacher never saw{label}", (up, INC), (up, TAR),
             None),
            (f"first (full) upload in cas{label}", (up, FIRST), (up, TAR), 1.1),
            (f"restore of the changed tree, tier holds the previous version{label}",
             (down, WARM), (down, TAR), 0.5),
            (f"cold restore in cas (empty tier){label}", (down, COLD), (down, TAR), 1.1),
        ]
    return rows


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.2f} MiB"


def byte_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The pass/fail byte rows of every tree measured: what cacher moved against what, ratio, target."""
    rows = []
    for name, _, label in _TREES:
        f = (results.get("facts") or {}).get("incremental", {}).get(name)
        if not f or "share" not in f:
            continue
        sent = {tool: statistics.median(n) for tool, n in f["sent"].items()}
        fetched, share = f["fetched"], f["share"]
        for row, ours, theirs, what, target in (
            (f"incremental upload, bytes sent{label}", sent[INC], sent[TAR], "a tar.zst upload's",
             BYTES_TARGET),
            (f"incremental upload of the restored tree, bytes sent{label}", sent.get(INC_R, sent[INC]),
             sent[TAR], "a tar.zst upload's", BYTES_TARGET),
            (f"incremental upload, bytes sent{label}", sent[INC], sent[FIRST], "a first cas upload's", None),
            (f"restore, tier holds the previous version: bytes fetched{label}", fetched[WARM], fetched[TAR],
             "a tar.zst restore's", BYTES_TARGET),
            (f"cold restore in cas: bytes fetched{label}", fetched[COLD], fetched[TAR],
             "a tar.zst restore's", None),
            (f"two keys sharing 95%: stored{label}", share[SHARE_B], share[SHARE_A], "one key's",
             SHARE_TARGET),
        ):
            ratio = ours / max(theirs, 1)
            rows.append({"label": row, "cacher": ours, "against": what, "peer": theirs, "ratio": ratio,
                         "target": target, "met": None if target is None else ratio <= target})
    return rows


def bytes_table(results: dict[str, Any]) -> list[str]:
    """Markdown lines of `byte_rows` (none when the rows were not measured)."""
    rows = byte_rows(results)
    if not rows:
        return []
    lines = [
        "Bytes sent: the objects an upload added under its prefix (median of the runs); bytes "
        "fetched: what the server sent through a counting relay, one untimed restore each.",
        "",
        "| row | cacher | against | its bytes | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = "—" if r["target"] is None else f"≤ {r['target']:.2f}"
        met = "—" if r["met"] is None else ("met" if r["met"] else "**missed**")
        lines.append(f"| {r['label']} | {_mib(r['cacher'])} | {r['against']} | {_mib(r['peer'])} "
                     f"| {r['ratio']:.3f} | {target} | {met} |")
    for name, _, label in _TREES:
        f = (results.get("facts") or {}).get("incremental", {}).get(name)
        if f and "bump" in f:
            b = f["bump"]
            lines += ["", f"The changed tree{label}: {b['changed_files']:,} of {b['files']:,} files "
                      f"({b['changed_files_pct']}%) and {b['changed_bytes_pct']}% of the bytes replaced, "
                      f"{b['removed']} removed and {b['added']} added; previous key given by "
                      f"{f.get('base')}; "
                      f"the rows took {f.get('elapsed_s', '?')} s."]
    return lines
