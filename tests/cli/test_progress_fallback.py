"""Progress counts every transfer, fallbacks included: ``download K DEST --url`` shows the
bytes it fetches, not "0 B, 0 B/s" for the whole fetch (issue 27, item 4)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import CACHER
from tests.fault_proxy import FaultProxy

_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_LINE = re.compile(r"^cacher: downloading slow: ([0-9.]+) (B|KiB|MiB|GiB)\b")


def test_a_url_fallback_reports_the_bytes_it_fetches(env: dict[str, str], tmp_path: Path, http: Any) -> None:
    """1 MiB served through a proxy that trickles it at 128 KiB/s: about 8 s, on any machine.
    Every progress line in the log (2 s in, then every 5 s) counts what has come so far."""
    data = os.urandom(1 << 20)
    http.put("slow.bin", data)
    dest = tmp_path / "slow.bin"
    store = tmp_path / "store"
    store.mkdir()
    run_env = {**env, "CACHER_BACKEND": "file", "CACHER_BUCKET": str(store)}
    stamped: list[tuple[float, str]] = []
    with FaultProxy(http.base_url) as proxy:
        proxy.set_extra("trickle", rate=128 << 10, match=lambda req: req.method == "GET")
        started = time.monotonic()
        proc = subprocess.Popen(
            [CACHER, "download", "slow", str(dest), "--url", f"{proxy.endpoint}/slow.bin"],
            env=run_env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            stamped.append((time.monotonic() - started, line.rstrip("\n")))
        assert proc.wait(timeout=60) == 0, stamped
    assert dest.read_bytes() == data
    took = stamped[-1][0]
    assert took > 5.0, f"the proxy did not slow the fetch ({took:.2f} s): nothing was tested"
    counted = [
        (t, float(m.group(1)) * _UNITS[m.group(2)])
        for t, line in stamped
        if (m := _LINE.match(line)) is not None
    ]
    assert len(counted) >= 2, stamped  # 2 s in, then 7 s in
    assert all(n > 0 for _, n in counted), stamped  # was "0 B, 0 B/s" at 2 s and 7 s
    assert counted[-1][1] >= 512 << 10, stamped  # 7 s in: most of the MiB has come
    assert stamped[-1][1].startswith("cacher: file miss, made and stored slow: 1.0 MiB raw"), stamped
    stored = subprocess.run([CACHER, "exists", "slow"], env=run_env, capture_output=True, timeout=60)
    assert stored.returncode == 0, stored  # the fallback's result is stored: the next run hits
