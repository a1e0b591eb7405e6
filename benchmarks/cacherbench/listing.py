"""A bucket's size: the commands that list, among N objects under a prefix, beside `s5cmd ls`.

For each N (1k, 10k, 50k at ``full``), N empty objects under ``scale/nN/deps-`` (made once per
run by signed PUTs in threads, `cacher.testing.fill`: a listing's cost does not depend on the
objects' sizes), then one real upload, the newest. Timed, interleaved:

- ``cacher download --restore-key``: an exact-key miss that falls back to the newest object
  under the prefix (one listing, one HEAD, one GET);
- ``cacher list``, ``cacher stats``, ``cacher prune --dry-run`` of the prefix;
- ``s5cmd ls`` of the prefix: the peer (every row's target is 1.5x it, peak RSS 100 MiB).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from cacherbench.bench import BUCKET, Bench, Contender, Measurement
from cacherbench.common import untimed
from cacherbench.inputs import Inputs

#: How many objects each size lists.
COUNTS = {"tiny": (1_000,), "small": (1_000, 10_000), "full": (1_000, 10_000, 50_000)}
TOOLS = ("cacher download --restore-key", "cacher list", "cacher stats", "cacher prune --dry-run")
PEER = "s5cmd ls"
RSS_TARGET_MIB = 100


def workload(n: int) -> str:
    return f"listing {n // 1000}k"


def listing_scale(bench: Bench, inputs: Inputs) -> list[Measurement]:
    from cacher.testing.fill import put_empty

    server = SimpleNamespace(endpoint=bench.endpoint, key_id=bench.key_id, secret=bench.secret)
    results: list[Measurement] = []
    artifact = bench.scratch("listing-newest.bin")
    artifact.write_bytes(b"the newest object under the prefix\n" * 6)
    for n in COUNTS.get(inputs.size, COUNTS["full"]):
        prefix = f"scale/n{n}/"
        put_empty(server, BUCKET, [f"{prefix}deps-{i:06d}" for i in range(n)], threads=8)
        env = bench.cacher_env()
        untimed(bench, bench.cacher("upload", "--force", f"{prefix}deps-zzz", str(artifact)), env)
        dest = bench.scratch(f"listing-{n}.bin")
        argv = {
            TOOLS[0]: bench.cacher("download", f"{prefix}miss", str(dest), "--restore-key", f"{prefix}deps-"),
            TOOLS[1]: bench.cacher("list", prefix),
            TOOLS[2]: bench.cacher("stats", prefix),
            TOOLS[3]: bench.cacher("prune", prefix, "--older-than", "30d", "--dry-run"),
        }
        contenders = [
            Contender(tool, " ".join(command[1:]).replace(str(dest), "DEST"), env, _always(command))
            for tool, command in argv.items()
        ]
        peer = bench.s5("ls", bench.url(f"{prefix}*"))
        contenders.append(Contender(PEER, f"s5cmd ls s3://B/{prefix}*", bench.peer_env(), _always(peer)))
        results += bench.compare(workload(n), contenders)
    return results


def _always(argv: list[str]) -> Callable[[str], list[str]]:
    return lambda label: argv


def comparisons() -> list[tuple[str, tuple[str, str], tuple[str, str], float | None]]:
    """The rows for targets.COMPARISONS: each command at each N against `s5cmd ls`, 1.5x."""
    return [
        (f"`{tool.removeprefix('cacher ')}` among {workload(n).split()[1]} objects",
         (workload(n), tool), (workload(n), PEER), 1.5)
        for n in COUNTS["full"] for tool in TOOLS
    ]
