"""Many empty objects in an S3 bucket, fast: signed PUTs on kept-alive connections, in threads.

A listing's cost shows only with thousands of objects under a prefix. botocore PUTs them at a
few hundred a second on a loaded machine; these go at a few thousand (SeaweedFS on loopback),
so a test or a benchmark can make 20,000 in seconds. Bodies are empty: a listing's cost does
not depend on the objects' sizes.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import threading
from collections.abc import Sequence
from typing import Any

from cacher import config
from cacher.stores.s3 import transport
from cacher.stores.s3.rest import S3Http

__all__ = ["put_empty"]


def put_empty(server: Any, bucket: str, keys: Sequence[str], *, threads: int = 8) -> None:
    """PUT an empty object under each of ``keys`` in ``bucket`` of ``server`` (a SeaweedFS or
    moto part: its ``endpoint``, ``key_id`` and ``secret``). Raises RuntimeError on a refusal."""
    flags = {"backend": "s3", "endpoint": server.endpoint, "bucket": bucket, "region": "us-east-1"}
    settings = config.load({}, flags, config_flag=os.devnull)
    environ = {"CACHER_S3_KEY_ID": server.key_id, "CACHER_S3_SECRET": server.secret}
    client = S3Http(transport.resolve(settings, environ))
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []
    lock = threading.Lock()

    def put(key: str) -> None:
        conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = client.connect()
            with lock:
                opened.append(conn)
        path = client.object_path(bucket, key)
        headers = {**client.sign("PUT", path), "Content-Length": "0"}
        conn.request("PUT", client.target(path), headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"PUT {key} answered HTTP {response.status}")

    try:
        with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="cacher-fill") as pool:
            for _ in pool.map(put, keys):
                pass
    finally:
        for conn in opened:
            conn.close()
