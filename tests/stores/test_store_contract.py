"""The store contract (`cacher.testing.StoreContract`) on the seven stores cacher ships.

Memory, file, S3 on SeaweedFS and on moto (each a real server on loopback), the local tier in
front of the file store, the read-only gate over the file store, and the store that stands in
when the real one cannot be reached. The last two declare their refusals (``writable``,
``reachable``); they run every test of the contract like the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cacher.errors import StorageError
from cacher.stores.base import Store, unavailable_store
from cacher.stores.readonly import ReadOnlyRefused, ReadOnlyStore
from cacher.stores.tier import LocalTier, TieredStore, location_of
from cacher.testing import StoreContract, file_store, memory_store, new_bucket, s3_store

#: The smallest part S3 allows: the contract's large object then takes two parts.
PART_MB = 5


def files_under(root: Path) -> list[str]:
    """Every file (not directory) under ``root``: what a failed write could leave on disk."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


class TestMemoryStore(StoreContract):
    keeps_metadata = False  # fsspec's memory filesystem has no object metadata

    @pytest.fixture
    def store(self) -> Store:
        return memory_store()


class TestFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        self.root = tmp_path / "store"
        return file_store(self.root)

    def residue(self, store: Store) -> list[str]:
        """The directory itself: no temporary sibling may stay."""
        return super().residue(store) + files_under(self.root)


class _S3Contract(StoreContract):
    server: Any
    bucket: str

    def residue(self, store: Store) -> list[str]:
        """The bucket as the server lists it, unfinished multipart uploads included."""
        keys: list[str] = self.server.list_keys(self.bucket)
        uploads = [f"upload:{u['Key']}" for u in self.server.multipart_uploads(self.bucket)]
        return super().residue(store) + keys + uploads


@pytest.mark.s3
class TestSeaweedStore(_S3Contract):
    @pytest.fixture
    def store(self, seaweed_s3: Any, s3_bucket: str) -> Store:
        self.server, self.bucket = seaweed_s3, s3_bucket
        return s3_store(seaweed_s3, s3_bucket, part_size_mb=PART_MB)


class TestMotoStore(_S3Contract):
    @pytest.fixture
    def store(self, moto_s3: Any) -> Store:
        self.server, self.bucket = moto_s3, new_bucket(moto_s3)
        return s3_store(moto_s3, self.bucket, part_size_mb=PART_MB)


class TestTieredStore(StoreContract):
    """The local tier in front of the file store: reads after a write come from its copy."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        inner = file_store(tmp_path / "store")
        self.roots = (tmp_path / "store", tmp_path / "tier")
        self.tier = LocalTier.open(tmp_path / "tier", 1 << 30)
        return TieredStore(inner, self.tier, location_of("file", None, inner.bucket))

    def residue(self, store: Store) -> list[str]:
        """The store's directory, and the tier's copies and temporaries."""
        copies = [f"copy:{e.key}" for e in self.tier.describe()]
        temporaries = files_under(self.tier.tmp) if self.tier.tmp.exists() else []
        return super().residue(store) + files_under(self.roots[0]) + copies + temporaries

    def test_a_written_object_is_read_from_the_local_copy(self, store: Store) -> None:
        """What makes it a tier (the rest of its behaviour is in tests/stores/test_local_tier.py)."""
        self.write(store, "k.bin", b"kept locally")
        assert self.read(store, "k.bin") == b"kept locally"
        assert store.read_locally("k.bin")


class TestReadOnlyStore(StoreContract):
    """The gate over the file store: reads pass, every write is refused before it is sent."""

    writable = False
    refusal = ReadOnlyRefused

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        self.root = tmp_path / "store"
        return ReadOnlyStore(file_store(self.root))

    def put(self, store: Store, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Behind the gate, as another (trusted) job would."""
        assert isinstance(store, ReadOnlyStore)
        with store.inner.writer(key, metadata) as stream:
            stream.write(data)

    def residue(self, store: Store) -> list[str]:
        return super().residue(store) + files_under(self.root)


class TestUnavailableStore(StoreContract):
    """The stand-in for a store a job cannot reach (no credentials): every request fails."""

    reachable = False
    refusal = StorageError

    @pytest.fixture
    def store(self) -> Store:
        return unavailable_store("bucket", "proj", "s3", "no credentials for s3://bucket")

    def test_the_reason_is_the_message(self, store: Store) -> None:
        with pytest.raises(StorageError, match=r"^no credentials for s3://bucket$"):
            store.head("k")
