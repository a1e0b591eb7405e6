"""Listing that streams (issue 29): S3's ListObjectsV2 pages, signed by hand and parsed as they
arrive, on a real server; and a listing's memory flat in the number of objects it walks."""

from __future__ import annotations

import calendar
import datetime
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cacher import config
from cacher.stores.s3 import transport
from cacher.stores.s3.listing import PAGE_KEYS
from cacher.stores.s3.rest import S3Http, canonical_query, canonical_request
from cacher.testing.cli import clean_env
from cacher.testing.fill import put_empty
from cacher.testing.fixtures import new_bucket, s3_environ, s3_store

#: What a few MiB means here: the difference between walking 20,000 objects and 1,000.
FLAT = 3 << 20
SMALL, LARGE = 1_000, 20_000


def test_a_listing_page_is_signed_as_botocore_signs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The query (a continuation token with ``/+=``, a prefix with spaces and non-ASCII) is
    part of the signature: botocore's `S3SigV4Auth`, given the URL we send, signs it the same."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    when = datetime.datetime(2026, 11, 30, 12, 34, 56)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
    token = "FwoGZXIvYXdzE//token+with/special=chars=="
    flags = {"backend": "s3", "endpoint": "http://127.0.0.1:8333", "bucket": "b", "region": "eu-west-3"}
    settings = config.load({}, {**flags, "session_token": token}, config_flag=os.devnull)
    client = S3Http(transport.resolve(settings, {"CACHER_S3_KEY_ID": "AKID", "CACHER_S3_SECRET": "s/e+c="}))
    params = {"list-type": "2", "prefix": "proj/ü 空+x/", "continuation-token": "1/a+b=c==", "max-keys": "1000"}
    query = canonical_query(params)
    path = client.object_path("bucket")
    now = datetime.datetime.fromtimestamp(calendar.timegm(when.timetuple()), datetime.UTC).timetuple()
    ours = client.sign("GET", path, now=now, query=query)

    theirs = botocore.awsrequest.AWSRequest(method="GET", url=f"http://127.0.0.1:8333{path}?{query}", headers={})
    signer = botocore.auth.S3SigV4Auth(botocore.credentials.Credentials("AKID", "s/e+c=", token), "s3", "eu-west-3")
    signer.add_auth(theirs)
    authorization = theirs.headers["Authorization"]
    del theirs.headers["Authorization"]  # as it was when botocore signed it
    mine = canonical_request("GET", path, {k: v for k, v in ours.items() if k != "Authorization"}, query)
    assert mine == signer.canonical_request(theirs)
    assert ours["Authorization"] == authorization


@pytest.mark.s3
def test_pages_hand_over_every_key_once_in_order(seaweed_s3: Any) -> None:
    """More than two pages of keys with spaces, ``+``, ``%`` and non-ASCII (sent url-encoded,
    decoded as botocore decodes them) come back exactly, none twice; a sibling prefix and the
    store's own prefix stay out; ``list`` sorts them."""
    bucket = new_bucket(seaweed_s3)
    keys = [f"odd/a b+c%41/ü 空/{i:04d}" for i in range(2 * PAGE_KEYS + 7)]
    put_empty(seaweed_s3, bucket, [f"proj/{k}" for k in keys] + ["proj2/odd/x", "proj/odder", "other"])
    store = s3_store(seaweed_s3, bucket, prefix="proj")
    listed = [o.key for o in store.iter_list("odd/")]
    assert sorted(listed) == sorted(keys) and len(listed) == len(keys)
    assert [o.key for o in store.list("odd")] == sorted([*keys, "odder"])
    assert all(o.size == 0 and o.modified is not None for o in store.iter_list("odd/a b+c%41/ü 空/000"))
    assert list(store.iter_list("nothing/")) == []


# -- memory flat in N ------------------------------------------------------------------------

#: Runs one command in a fresh interpreter and writes its exit code and tracemalloc's peak
#: during it: the imports and the store's set-up come first, outside the measurement.
MEASURE = """
import os, sys, tracemalloc
from cacher.cli import main
out, argv = sys.argv[1], sys.argv[2:]
sys.stdout = open(os.devnull, "w")
main(["list", "warm-up/"])
main(["download", "warm-up/none", os.path.join(os.path.dirname(out), "warm-up.bin")])
tracemalloc.start()
code = main(argv)
peak = tracemalloc.get_traced_memory()[1]
with open(out, "w") as f:
    f.write(f"{code} {peak}")
"""


@pytest.fixture(scope="module")
def crowded(seaweed_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[int, int]]:
    """A bucket with 1,000 objects under ``proj/n1k/deps-`` and 20,000 under ``proj/n20k/deps-``
    (made once for the module), and after them, newest, one real upload under each; returns a
    function that runs a cacher command against it and gives (exit code, peak bytes)."""
    bucket = new_bucket(seaweed_s3)
    names = [f"proj/n1k/deps-{i:05d}" for i in range(SMALL)] + [f"proj/n20k/deps-{i:05d}" for i in range(LARGE)]
    put_empty(seaweed_s3, bucket, names)
    root = tmp_path_factory.mktemp("crowded")
    (root / "home" / ".config").mkdir(parents=True)
    env = {
        **clean_env(root / "home"), **s3_environ(seaweed_s3), "CACHER_BACKEND": "s3",
        "CACHER_ENDPOINT": seaweed_s3.endpoint, "CACHER_BUCKET": bucket, "CACHER_PREFIX": "proj",
    }
    artifact = root / "artifact.bin"
    artifact.write_bytes(b"the newest\n")
    import time

    time.sleep(1.1)  # a later modification time than every empty object's
    for n in ("n1k", "n20k"):
        done = subprocess.run([sys.executable, "-m", "cacher", "upload", f"{n}/deps-zzz-real", str(artifact)],
                              env=env, cwd=root, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done

    def measure(*argv: str) -> tuple[int, int]:
        out = root / "measured"
        done = subprocess.run([sys.executable, "-c", MEASURE, str(out), *argv], env=env, cwd=root,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and out.exists(), done
        code, peak = out.read_text().split()
        return int(code), int(peak)

    return measure


@pytest.mark.s3
@pytest.mark.parametrize("command", ["restore key", "list", "list --json", "stats", "prune --dry-run"])
def test_a_listing_of_20000_peaks_within_a_few_mib_of_one_of_1000(
    crowded: Callable[..., tuple[int, int]], command: str, tmp_path: Path
) -> None:
    """Every command that lists consumes the pages as they arrive: walking 20,000 objects peaks
    within `FLAT` of walking 1,000 (held whole, 19,000 more objects cost ~20 MiB)."""
    peaks = []
    for n in ("n1k", "n20k"):
        argv = {
            "restore key": ["download", f"{n}/exact-miss", str(tmp_path / f"{n}.bin"), "--restore-key", f"{n}/deps-"],
            "list": ["list", f"{n}/", "--long"],
            "list --json": ["list", f"{n}/", "--json"],
            "stats": ["stats", f"{n}/"],
            "prune --dry-run": ["prune", f"{n}/", "--older-than", "1d", "--keep-last", "3", "--dry-run"],
        }[command]
        code, peak = crowded(*argv)
        assert code == 0, (command, n)
        peaks.append(peak)
    if command == "restore key":
        assert (tmp_path / "n20k.bin").read_bytes() == b"the newest\n"  # the newest, not any
    assert peaks[1] - peaks[0] < FLAT, f"{command}: {peaks[0] / 2**20:.1f} MiB for 1,000, {peaks[1] / 2**20:.1f} for 20,000"
