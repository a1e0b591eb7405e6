"""The benchmark session: the S3 server, clean environments, and timed comparisons.

Every tool of a workload runs in the same loop, interleaved: a warm-up round (kept apart),
then ``runs`` timed rounds. Set-up and checks between runs are not timed.
"""

from __future__ import annotations

import shlex
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cacherbench.load import LoadMeter
from cacherbench.peers import Peers
from cacherbench.proc import Sample, measure

BUCKET = "bench"
REGION = "us-east-1"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class Skipped(Exception):
    """A workload that cannot run here; its message says why (it goes into "Not measured")."""


def _nothing(label: str) -> None:
    """No set-up or check."""


@dataclass
class Contender:
    """One tool in a workload: how to run it for a run label, and what to do around it."""

    tool: str
    display: str
    env: dict[str, str]
    argv: Callable[[str], list[str]]
    setup: Callable[[str], None] = _nothing
    check: Callable[[str], None] = _nothing


@dataclass
class Measurement:
    workload: str
    tool: str
    command: str
    samples: list[Sample] = field(default_factory=list)
    warmup: Sample | None = None
    load: dict[str, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def max_rss_mib(self) -> float:
        return max(s.max_rss_kib for s in self.samples) / 1024

    def to_json(self) -> dict[str, Any]:
        times = [s.seconds for s in self.samples]
        return {
            "workload": self.workload,
            "tool": self.tool,
            "command": self.command,
            "median_s": self.median,
            "min_s": min(times),
            "max_s": max(times),
            "median_cpu_s": statistics.median(s.cpu_seconds for s in self.samples),
            "max_rss_mib": self.max_rss_mib,
            "runs": [asdict(s) for s in self.samples],
            "warmup": None if self.warmup is None else asdict(self.warmup),
            "load": self.load,
        }


@dataclass
class Bench:
    work: Path
    peers: Peers
    endpoint: str
    key_id: str
    secret: str
    runs: int
    client: Any
    server_pid: int
    warmup_parts: bool = True
    build_bundle: bool = True
    scratch_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cacher-bench-")))
    parts_runs: int = 3
    cacher_python: Path = field(default_factory=lambda: Path(sys.executable))
    facts: dict[str, Any] = field(default_factory=dict)

    # -- environments -------------------------------------------------------------------------

    def _base_env(self, who: str, path: str) -> dict[str, str]:
        home = self.work / "home" / who
        for sub in (".config", ".cache", ".local/share"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        tmp = self.scratch_root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": path,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
        }

    def cacher_env(self) -> dict[str, str]:
        env = self._base_env("cacher", SYSTEM_PATH)
        env.update(
            {
                "CACHER_ENDPOINT": self.endpoint,
                "CACHER_BUCKET": BUCKET,
                "CACHER_S3_KEY_ID": self.key_id,
                "CACHER_S3_SECRET": self.secret,
            }
        )
        return env

    def peer_env(self) -> dict[str, str]:
        env = self._base_env("peers", f"{self.peers.bin}:{SYSTEM_PATH}")
        home = Path(env["HOME"])
        env.update(
            {
                "AWS_ACCESS_KEY_ID": self.key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
            }
        )
        return env

    # -- command lines ------------------------------------------------------------------------

    @property
    def cacher_bin(self) -> Path:
        return self.cacher_python.parent / "cacher"

    def cacher(self, *args: str) -> list[str]:
        return [str(self.cacher_bin), *args]

    def stage(self, *args: str) -> list[str]:
        """A piece of cacher's pipeline run alone (see stages.py), in cacher's interpreter."""
        return [str(self.cacher_python), str(Path(__file__).with_name("stages.py")), *args]

    def s5(self, *args: str) -> list[str]:
        return [str(self.peers.s5cmd), "--log", "error", "--endpoint-url", self.endpoint, *args]

    def aws(self, *args: str) -> list[str]:
        return [str(self.peers.aws), *args, "--endpoint-url", self.endpoint]

    @staticmethod
    def url(key: str) -> str:
        return f"s3://{BUCKET}/{key}"

    @staticmethod
    def q(argv: list[str] | str | Path) -> str:
        return shlex.join(argv) if isinstance(argv, list) else shlex.quote(str(argv))

    # -- paths --------------------------------------------------------------------------------

    def log(self, workload: str) -> Path:
        path = self.work / "logs" / f"{workload.replace(' ', '-')}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def out(self, workload: str, tool: str) -> Path:
        slug = "".join(c if c.isalnum() else "-" for c in f"{workload}-{tool}")
        return self.work / "out" / f"{slug}.txt"

    def scratch(self, name: str) -> Path:
        path = self.scratch_root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def object_size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=BUCKET, Key=key)["ContentLength"])

    # -- the loop -----------------------------------------------------------------------------

    def compare(
        self, workload: str, contenders: list[Contender], *, warmup: bool = True, runs: int | None = None
    ) -> list[Measurement]:
        """Warm-up round, then timed rounds; the contenders take turns within each round."""
        runs = self.runs if runs is None else runs
        results = {c.tool: Measurement(workload, c.tool, c.display) for c in contenders}
        meter = LoadMeter(self.server_pid)
        labels = [str(i) for i in range(1, runs + 1)]
        for label in ["warmup", *labels] if warmup else labels:
            for c in contenders:
                c.setup(label)
                out = self.out(workload, c.tool)
                out.parent.mkdir(parents=True, exist_ok=True)
                sample = measure(c.argv(label), c.env, log=self.log(workload), stdout=out)
                c.check(label)
                m = results[c.tool]
                if label == "warmup":
                    m.warmup = sample
                else:
                    m.samples.append(sample)
            line = ", ".join(
                f"{m.tool} {(m.samples[-1] if m.samples else m.warmup).seconds:.2f}s"  # type: ignore[union-attr]
                for m in results.values()
            )
            print(f"bench: {workload} [{label}] {line}", flush=True)
        load = meter.others()
        print(f"bench: {workload}: other processes used {load['other_cpus']} CPUs on average", flush=True)
        for m in results.values():
            m.load = load
        return list(results.values())


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
