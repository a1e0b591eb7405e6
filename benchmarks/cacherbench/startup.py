"""Start-up: how long cacher takes to do nothing much, next to the AWS CLI and s5cmd.

- ``startup``: whole commands that do little (``--version``, ``key`` of one file, ``exists``);
- ``first-request``: how long after exec a transfer command sends its first request, seen by a
  recording relay (relay.py) between the command and the S3 server.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from cacherbench.bench import Bench, Contender, Measurement, remove
from cacherbench.common import untimed
from cacherbench.inputs import Inputs
from cacherbench.proc import Sample
from cacherbench.relay import Relay

HIT = "startup/hit"


def startup(bench: Bench, inputs: Inputs) -> list[Measurement]:
    hit = HIT
    untimed(bench, bench.cacher("upload", "--force", hit, str(inputs.onefile)), bench.cacher_env())
    one = str(inputs.onefile)
    cold = bench.scratch("cold-cache")

    def fresh_cache(label: str) -> None:
        remove(cold)
        cold.mkdir()

    cacher_env, peer_env = bench.cacher_env(), bench.peer_env()
    contenders = [
        Contender(
            "cacher --version", "cacher --version", cacher_env, lambda label: bench.cacher("--version")
        ),
        Contender(
            "cacher key",
            "cacher key x --hash-from FILE",
            cacher_env,
            lambda label: bench.cacher("key", "x", "--hash-from", one),
        ),
        Contender(
            "cacher key (cold entry-point cache)",
            "XDG_CACHE_HOME=<empty> cacher key x --hash-from FILE",
            cacher_env,
            lambda label: ["env", f"XDG_CACHE_HOME={cold}", *bench.cacher("key", "x", "--hash-from", one)],
            setup=fresh_cache,
        ),
        Contender(
            "cacher exists",
            "cacher exists KEY (a hit)",
            cacher_env,
            lambda label: bench.cacher("exists", hit),
        ),
        Contender("aws --version", "aws --version", peer_env, lambda label: bench.aws("--version")[:2]),
        Contender(
            "aws s3api head-object",
            "aws s3api head-object --bucket B --key KEY",
            peer_env,
            lambda label: bench.aws("s3api", "head-object", "--bucket", "bench", "--key", hit),
        ),
        Contender("s5cmd ls", "s5cmd ls s3://B/KEY", peer_env, lambda label: bench.s5("ls", bench.url(hit))),
    ]
    return bench.compare("startup", contenders)


def first_request(bench: Bench, inputs: Inputs) -> list[Measurement]:
    """Seconds from just before the spawn to the first bytes of the command's first request.

    Each sample's CPU time and peak RSS are the whole command's (it runs to its end through
    the relay); the whole commands' wall times go into the results' facts.
    """
    tree_key = "first-request/tree.tar.zst"
    small = bench.scratch("first-request-tree")
    remove(small)
    small.mkdir()
    shutil.copy(inputs.onefile, small / "one.txt")
    untimed(bench, bench.cacher("upload", "--force", HIT, str(inputs.onefile)), bench.cacher_env())
    untimed(bench, bench.cacher("dir", "upload", "--force", tree_key, str(small)), bench.cacher_env())
    file_dest, dir_dest = bench.scratch("first-request-file"), bench.scratch("first-request-dir")
    spawned: dict[str, float] = {}
    firsts: dict[str, dict[str, float]] = {}

    with Relay(bench.endpoint) as relay:
        via = dataclasses.replace(bench, endpoint=relay.endpoint)

        def before(tool: str, clear: Path | None = None) -> Callable[[str], None]:
            def run(label: str) -> None:
                if clear is not None:
                    remove(clear)
                relay.reset()
                spawned[tool] = time.perf_counter()

            return run

        def after(tool: str) -> Callable[[str], None]:
            def run(label: str) -> None:
                first = relay.first()
                if first is None:
                    raise AssertionError(f"{tool} sent no request through the relay")
                firsts.setdefault(tool, {})[label] = first - spawned[tool]

            return run

        ce, pe = via.cacher_env(), via.peer_env()
        rows = [
            ("cacher exists", "cacher exists KEY (a hit)", ce, via.cacher("exists", HIT), None),
            (
                "cacher download",
                "cacher download KEY DEST",
                ce,
                via.cacher("download", HIT, str(file_dest)),
                file_dest,
            ),
            (
                "cacher dir download",
                "cacher dir download KEY DEST",
                ce,
                via.cacher("dir", "download", tree_key, str(dir_dest)),
                dir_dest,
            ),
            ("s5cmd ls", "s5cmd ls s3://B/KEY", pe, via.s5("ls", via.url(HIT)), None),
            ("s5cmd cat", "s5cmd cat s3://B/KEY", pe, via.s5("cat", via.url(HIT)), None),
        ]
        contenders = [
            Contender(
                tool, shown, env, lambda label, argv=argv: argv, setup=before(tool, clear), check=after(tool)
            )
            for tool, shown, env, argv, clear in rows
        ]
        whole = bench.compare("first request (whole commands, via the relay)", contenders)
    remove(file_dest)
    remove(dir_dest)
    bench.facts["first_request_whole_median_s"] = {m.tool: m.median for m in whole}
    out = []
    for m in whole:
        got = firsts[m.tool]

        def first(label: str, s: Sample, got: dict[str, float] = got) -> Sample:
            return Sample(got[label], s.cpu_seconds, s.max_rss_kib)

        samples = [first(str(i), s) for i, s in enumerate(m.samples, 1)]
        warm = None if m.warmup is None else first("warmup", m.warmup)
        out.append(Measurement("first request", m.tool, m.command, samples, warm, m.load))
        median = statistics.median(s.seconds for s in samples)
        print(f"bench: first request: {m.tool} {median:.3f}s after spawn", flush=True)
    return out
