"""How busy the machine was with work that is not the benchmark's own.

The machine may be shared (other test runs, other servers). Over a workload, the CPU time the
whole system spent busy, less this process, its children and the S3 server, is what everyone
else used: reported as a number of CPUs, so a noisy measurement can be told from a clean one.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


def _system_busy() -> float:
    """CPU seconds all CPUs spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def _process_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _own_cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class LoadMeter:
    """Start it before a workload; `others()` then gives the CPUs others used on average."""

    server_pid: int

    def __post_init__(self) -> None:
        self.start = (time.monotonic(), _system_busy(), _own_cpu(), _process_cpu(self.server_pid))

    def others(self) -> dict[str, float]:
        wall = time.monotonic() - self.start[0]
        busy = _system_busy() - self.start[1]
        own = _own_cpu() - self.start[2]
        server = _process_cpu(self.server_pid) - self.start[3]
        return {
            "wall_s": round(wall, 2),
            "benchmark_cpus": round(own / wall, 2),
            "server_cpus": round(server / wall, 2),
            "other_cpus": round(max(busy - own - server, 0.0) / wall, 2),
        }
