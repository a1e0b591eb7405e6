"""Start-up: how long cacher takes to do nothing much, next to the AWS CLI and s5cmd."""

from __future__ import annotations

from cacherbench.bench import Bench, Contender, Measurement, remove
from cacherbench.common import untimed
from cacherbench.inputs import Inputs


def startup(bench: Bench, inputs: Inputs) -> list[Measurement]:
    hit = "startup/hit"
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
