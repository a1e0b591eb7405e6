"""The read-only gate: every command that can write, with each way of setting ``read_only``.

docs/security.md: "Read-only jobs ... nothing is written". Each command that may write (to the
store or to the local tier) runs with the flag, the variable and the config file in turn,
through the installed cacher and a recording proxy in front of SeaweedFS: no PUT, POST or
DELETE reaches the store, the tier's files are untouched, and each command exits as documented.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.realparts.recording_proxy import RecordingProxy

pytestmark = pytest.mark.s3

WRITES = {"PUT", "POST", "DELETE"}
WAYS = ["flag", "variable", "config"]


def _env(server: Any, bucket: str, endpoint: str, tier: Path) -> dict[str, str]:
    return {
        "CACHER_ENDPOINT": endpoint,
        "CACHER_BUCKET": bucket,
        "CACHER_S3_KEY_ID": server.key_id,
        "CACHER_S3_SECRET": server.secret,
        "CACHER_PREFIX": "proj",
        "CACHER_LOCAL_TIER": str(tier),
    }


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its bytes' digest and its mtime (a touch is a write)."""
    return {
        str(p.relative_to(root)): f"{hashlib.sha256(p.read_bytes()).hexdigest()}:{p.stat().st_mtime_ns}"
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("way", WAYS)
def test_no_command_writes_through_the_gate(
    cacher, seaweed_s3, s3_bucket, tmp_path: Path, http, way: str
) -> None:
    tier = tmp_path / "tier"
    rw = _env(seaweed_s3, s3_bucket, seaweed_s3.endpoint, tier)
    tree = tmp_path / "t" / "sub"
    tree.mkdir(parents=True)
    (tree / "f.txt").write_text("v1")
    f = tmp_path / "f.bin"
    f.write_bytes(b"data")
    assert cacher("dir", "upload", "deps.tar.zst", str(tmp_path / "t"), extra_env=rw).code == 0
    assert cacher("upload", "old.bin", str(f), extra_env=rw).code == 0
    # A restore fills the tier, so the read-only job has copies it could (but must not) touch.
    assert cacher("download", "old.bin", str(tmp_path / "warm"), extra_env=rw).code == 0
    tier_before = _snapshot(tier)
    assert tier_before
    url = http.put("tool", b"tool bytes")
    with RecordingProxy(seaweed_s3.endpoint) as proxy:
        ro = _env(seaweed_s3, s3_bucket, proxy.endpoint, tier)
        flag: tuple[str, ...] = ()
        init_config = tmp_path / "written.toml"
        if way == "flag":
            flag = ("--read-only",)
        elif way == "variable":
            ro["CACHER_READ_ONLY"] = "1"
        else:
            config = tmp_path / "config.toml"
            config.write_text("read_only = true\n")
            config.chmod(0o600)
            ro["CACHER_CONFIG"] = str(config)
            init_config = config  # init keeps what the file says, read_only included
        runs = {
            "upload": cacher("upload", "new.bin", str(f), "--json", *flag, extra_env=ro),
            "dir upload": cacher("dir", "upload", "x.tar.zst", str(tmp_path / "t"), *flag, extra_env=ro),
            "paths upload": cacher(
                "paths", "upload", "p.tar.zst", "sub", *flag, extra_env=ro, cwd=tmp_path / "t"
            ),
            "delete": cacher("delete", "old.bin", *flag, extra_env=ro),
            "prune": cacher("prune", "--older-than", "0s", *flag, extra_env=ro),
            "prune --local": cacher("prune", "--local", "--older-than", "0s", *flag, extra_env=ro),
            "fetch": cacher("download", "k.bin", str(tmp_path / "tool"), "--url", url, "--json", *flag, extra_env=ro),
            "ensure": cacher(
                "dir", "ensure", "built.tar.zst", str(tmp_path / "built"), *flag, "--",
                "sh", "-c", f"mkdir -p {tmp_path}/built && echo b > {tmp_path}/built/b", extra_env=ro,
            ),
            "doctor": cacher("doctor", *flag, extra_env=ro),
            "restore": cacher("dir", "download", "deps.tar.zst", str(tmp_path / "restored"), *flag, extra_env=ro),
            "init": cacher(
                "init", "--config", str(init_config), "--endpoint", proxy.endpoint,
                "--bucket", s3_bucket, *flag,
                extra_env={**ro, "CACHER_S3_KEY_ID": seaweed_s3.key_id, "CACHER_S3_SECRET": seaweed_s3.secret},
            ),
        }
        methods = {r.method for r in proxy.requests}
    for name, run in runs.items():
        assert run.code == 0, f"{name}: {run}"
    assert not methods & WRITES, f"write requests reached the store: {methods}"
    assert json.loads(runs["upload"].out)["outcome"] == "read-only"
    assert "read-only: old.bin not deleted" in runs["delete"].err
    assert "read-only: nothing deleted" in runs["prune"].err
    assert "read-only: nothing removed from the local tier" in runs["prune --local"].err
    assert json.loads(runs["fetch"].out)["outcome"] == "fetched-not-stored"
    assert "no canary written" in runs["doctor"].err
    assert "no canary written" in runs["init"].err, runs["init"]
    assert (tmp_path / "restored" / "sub" / "f.txt").read_text() == "v1"
    assert _snapshot(tier) == tier_before, "a read-only job changed the local tier"
    listed = cacher("list", extra_env=rw)
    assert listed.code == 0 and sorted(listed.out.split()) == ["deps.tar.zst", "old.bin"], listed


def test_read_only_lives_in_the_gate_alone() -> None:
    """Only configuration, the flag declarations and the gate name the setting: a command
    cannot forget it, because no command checks it (issue 25 item 2: `init` once did)."""
    root = Path(__file__).resolve().parents[2] / "cacher"
    users = sorted(
        str(p.relative_to(root)) for p in root.rglob("*.py") if "read_only" in p.read_text()
    )
    # The flag and the fast path's switch are generated from the declaration (issue 28).
    assert users == ["config/declaration.py", "stores/readonly.py"]
