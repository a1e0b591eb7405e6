"""The store contract as tests: subclass `StoreContract` and give it a ``store`` fixture.

Every store cacher ships runs it (tests/stores/test_store_contract.py) — memory, file, S3 on two
servers, the local tier, the read-only gate and the stand-in for a store that cannot be
reached — the way fsspec's abstract suites run on every filesystem. The promises are those
of `cacher.stores.base.Store`: what a writer wrote comes back byte for byte, a write is
all-or-nothing, a missing key is an answer (None, False) and never an exception, listings are
sorted and filtered by a plain string prefix, a prefix view sees its own objects alone, and
a bad key is refused before any request. A store that refuses writes (``writable = False``)
or cannot be reached (``reachable = False``) owes the same tests different answers, declared
by those class attributes: its refusals are part of the contract, not a reason to skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from cacher.errors import CacherError, StorageError, UsageError
from cacher.stores.base import ObjectInfo, Store

__all__ = ["StoreContract"]

KEY = "contract/a/b/object.bin"
META = {"kind": "file", "codec": "none", "sha256": "0" * 64}
#: Keys for the listing tests: a plain string prefix ``contract/a/b`` matches the first three.
LISTED = ("contract/a/b/one.bin", "contract/a/b2.bin", "contract/a/b/c/two.bin", "contract/z.bin")
BAD_KEYS = ("../escape", "/absolute", "contract/../../escape", "")


class _Dies(Exception):
    """The producer of a write failed mid-stream."""


class StoreContract:
    """Tests every store must pass; subclass it and provide a ``store`` fixture (an empty store).

    Declare what the store is with the class attributes, which must match the store's own
    ``writable`` and ``reachable``: ``writable = False`` for a store that refuses every write
    (objects are then made behind it by `put`, which the subclass overrides); ``reachable =
    False`` for one whose every request raises `StorageError`; ``refusal``, what either raises
    for a write; ``keeps_metadata = False`` for one whose HEAD returns less than its writer was
    given.
    """

    writable: ClassVar[bool] = True
    reachable: ClassVar[bool] = True
    #: What a write raises when the store is not writable or not reachable.
    refusal: ClassVar[type[Exception]] = StorageError
    keeps_metadata: ClassVar[bool] = True
    #: Bytes of the large object: more than one S3 part at the smallest part size (5 MiB).
    large: ClassVar[int] = 6 << 20

    @pytest.fixture
    def store(self) -> Store:
        """The store under test, empty (a subclass provides it)."""
        raise NotImplementedError

    # -- hooks --------------------------------------------------------------------------------

    def put(self, store: Store, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Make an object the store under test reads: through its own writer. A store that is
        not writable overrides this to write behind it; one that is not reachable has nothing
        behind it, and its `put` does nothing."""
        if not self.reachable:
            return
        with store.writer(key, metadata) as stream:
            stream.write(data)

    def residue(self, store: Store) -> list[str]:
        """What the store holds besides its objects' keys: everything a failed write could have
        left (listed objects, unfinished uploads). Subclasses add what only they can see (the
        file store's directory, the tier's copies)."""
        listed = [o.key for o in store.list()]
        return listed + [f"leftover:{x.key}" for x in store.leftovers(older_than=timedelta(0))]

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def read(store: Store, key: str, piece: int = 1 << 20) -> bytes:
        """The object's bytes, read through `Store.open_read` after a HEAD, in pieces."""
        info = store.head(key)
        assert info is not None, f"{key} is missing"
        out = bytearray()
        with store.open_read(key, info) as stream:
            while chunk := stream.read(piece):
                out += chunk
        return bytes(out)

    @staticmethod
    def fails(*calls: Callable[[], object]) -> None:
        """Each call raises `StorageError`: what a store that cannot be reached answers."""
        for call in calls:
            with pytest.raises(StorageError):
                call()

    def write(self, store: Store, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write through the store under test's own writer."""
        with store.writer(key, metadata) as stream:
            stream.write(data)

    @property
    def writes(self) -> bool:
        """Whether writes reach the store: it is writable and reachable."""
        return self.writable and self.reachable

    def refused(self, store: Store, key: str) -> None:
        """A write to a store that takes none raises `refusal`, before anything is sent."""
        with pytest.raises(self.refusal):
            self.write(store, key, b"refused")

    # -- what the store says of itself ----------------------------------------------------------

    def test_it_says_what_it_can_do(self, store: Store) -> None:
        """Callers decide from ``writable`` and ``reachable`` before any producer runs."""
        assert store.writable is self.writable
        assert store.reachable is self.reachable

    # -- reading what was written ---------------------------------------------------------------

    @pytest.mark.parametrize("size", [0, 1, 100_000, -1], ids=["empty", "one", "small", "large"])
    def test_round_trip(self, store: Store, size: int) -> None:
        data = os.urandom(self.large if size < 0 else size)
        self.put(store, KEY, data)
        if not self.reachable:
            self.fails(lambda: store.head(KEY), lambda: store.open_read(KEY).__enter__())
            return
        assert self.read(store, KEY) == data
        assert self.read(store, KEY, piece=4096) == data
        assert store.exists(KEY)

    def test_head_tells_size_time_and_metadata(self, store: Store) -> None:
        before = datetime.now(UTC) - timedelta(minutes=5)
        self.put(store, KEY, b"x" * 1234, dict(META))
        if not self.reachable:
            self.fails(lambda: store.head(KEY))
            return
        info = store.head(KEY)
        assert isinstance(info, ObjectInfo)
        assert (info.key, info.size) == (KEY, 1234)
        if info.modified is not None:
            assert info.modified.tzinfo is not None
            assert before <= info.modified <= datetime.now(UTC) + timedelta(minutes=5)
        assert info.etag is None or (isinstance(info.etag, str) and info.etag)
        kept = {k: v for k, v in info.metadata.items() if k in META}
        # Everything the writer gave (a store may add its own, as the tier adds a write id),
        # or, where metadata is not kept, some of it and never a changed value.
        assert kept == META if self.keeps_metadata else kept.items() <= META.items()

    def test_reads_end_cleanly(self, store: Store) -> None:
        """Any read size, then empty reads at the end."""
        data = os.urandom(70_000)
        self.put(store, KEY, data)
        if not self.reachable:
            self.fails(lambda: store.open_read(KEY).__enter__())
            return
        with store.open_read(KEY, store.head(KEY)) as stream:
            got = stream.read(1) + stream.read(9_999) + stream.read(-1)
            assert stream.read(10) == b"" and stream.read() == b""
        assert got == data

    def test_open_read_looks_the_object_up_itself(self, store: Store) -> None:
        """``info`` saves a look-up; without it the store makes its own."""
        self.put(store, KEY, b"no info given")
        if not self.reachable:
            self.fails(lambda: store.open_read(KEY).__enter__())
            return
        with store.open_read(KEY) as stream:
            assert stream.read() == b"no info given"

    def test_read_range_gives_exactly_the_range(self, store: Store) -> None:
        """Ranged reads (the content-addressed format's packs): any range, the object's end
        included; a range past the end is a `StorageError`, never a short answer."""
        data = os.urandom(70_000)
        self.put(store, KEY, data)
        if not self.reachable:
            self.fails(lambda: store.read_range(KEY, 0, 10))
            return
        for start, end in ((0, 1), (0, 70_000), (1_000, 65_537), (69_999, 70_000)):
            assert store.read_range(KEY, start, end) == data[start:end]
        with pytest.raises(StorageError):
            store.read_range(KEY, 69_000, 80_000)
        with pytest.raises(StorageError):
            store.read_range("contract/missing", 0, 10)

    # -- a missing key --------------------------------------------------------------------------

    def test_a_missing_key_is_an_answer(self, store: Store) -> None:
        """HEAD answers None, ``exists`` False, the listing nothing: a miss, not an error."""
        if not self.reachable:
            self.fails(lambda: store.head(KEY), lambda: store.exists(KEY), lambda: store.list())
            return
        assert store.head(KEY) is None
        assert store.exists(KEY) is False
        assert store.list() == [] and store.list("contract/") == []

    def test_reading_a_missing_key_is_a_storage_error(self, store: Store) -> None:
        """The engine HEADs first; an object deleted since is a `StorageError`, never a
        foreign exception."""
        with pytest.raises(StorageError), store.open_read(KEY) as stream:
            stream.read()

    def test_a_key_is_a_file_not_a_directory(self, store: Store) -> None:
        """``contract/a`` is a directory of ``contract/a/b/object.bin``, not an object."""
        self.put(store, KEY, b"deep")
        if not self.reachable:
            self.fails(lambda: store.head("contract/a"))
            return
        assert store.head("contract/a") is None and store.head("contract/a/b") is None
        assert store.exists("contract/a/b/object") is False

    # -- writing --------------------------------------------------------------------------------

    def test_a_write_replaces_the_object(self, store: Store) -> None:
        self.put(store, KEY, b"first")
        if not self.writes:
            self.refused(store, KEY)
            if self.reachable:
                assert self.read(store, KEY) == b"first"
            return
        self.write(store, KEY, b"second, longer")
        assert self.read(store, KEY) == b"second, longer"
        assert [o.key for o in store.list()] == [KEY]

    def test_a_failed_write_publishes_nothing(self, store: Store) -> None:
        """A producer that dies after sending more than a part leaves no object, no listing and
        no unfinished upload."""
        if not self.writes:
            self.refused(store, KEY)
        else:
            with pytest.raises(_Dies), store.writer(KEY, dict(META)) as stream:
                stream.write(os.urandom(self.large))
                raise _Dies
            assert store.head(KEY) is None and not store.exists(KEY)
        if self.reachable:
            assert self.residue(store) == []

    def test_a_failed_write_keeps_the_previous_object(self, store: Store) -> None:
        self.put(store, KEY, b"previous", dict(META))
        if not self.writes:
            self.refused(store, KEY)
        else:
            with pytest.raises(_Dies), store.writer(KEY) as stream:
                stream.write(b"replacement" * 1000)
                raise _Dies
        if self.reachable:
            assert self.read(store, KEY) == b"previous"
            assert [o.key for o in store.list()] == [KEY]

    # -- listing --------------------------------------------------------------------------------

    def test_list_is_sorted_and_filtered_by_a_string_prefix(self, store: Store) -> None:
        for n, key in enumerate(LISTED):
            self.put(store, key, b"x" * (n + 1))
        if not self.reachable:
            self.fails(lambda: store.list("contract/a/b"))
            return
        everything = store.list()
        assert [o.key for o in everything] == sorted(LISTED)
        assert {o.key: o.size for o in everything} == {k: n + 1 for n, k in enumerate(LISTED)}
        assert [o.key for o in store.list("contract/a/b")] == sorted(LISTED[:3])
        assert [o.key for o in store.list("contract/a/b/")] == sorted([LISTED[0], LISTED[2]])
        assert [o.key for o in store.list("contract/a/b/o")] == [LISTED[0]]
        assert store.list("contract/nothing") == [] and store.list("elsewhere/") == []

    def test_iter_list_hands_over_what_list_sorts(self, store: Store) -> None:
        """`iter_list` is the listing as it arrives: the objects `list` gives, each once (in
        the store's order, which `list` sorts); a bad prefix is refused when it is called."""
        for n, key in enumerate(LISTED):
            self.put(store, key, b"x" * (n + 1))
        if not self.reachable:
            self.fails(lambda: list(store.iter_list("contract/")))
            return
        for prefix in ("", "contract/a/b", "contract/a/b/", "contract/nothing"):
            assert sorted(store.iter_list(prefix), key=lambda o: o.key) == store.list(prefix), prefix
        with pytest.raises(UsageError):
            store.iter_list("../")

    # -- deleting -------------------------------------------------------------------------------

    def test_delete(self, store: Store) -> None:
        """True when an object went, False when there was none; a store that is not writable
        refuses and keeps the object."""
        self.put(store, KEY, b"to delete")
        if not self.writes:
            with pytest.raises(self.refusal):
                store.delete(KEY)
            if self.reachable:
                assert self.read(store, KEY) == b"to delete"
            return
        assert store.delete(KEY) is True
        assert store.head(KEY) is None and store.list() == []
        assert store.delete(KEY) is False

    # -- prefixes and keys ----------------------------------------------------------------------

    def test_prefix_views_keep_apart(self, store: Store) -> None:
        """`Store.with_prefix` is the same store under another prefix: it sees its objects alone
        and says the same of itself."""
        one, two = store.with_prefix("scope-one"), store.with_prefix("scope-two")
        assert (one.writable, one.reachable) == (self.writable, self.reachable)
        assert (one.prefix, two.prefix) == ("scope-one", "scope-two")
        self.put(one, KEY, b"in scope one")
        if not self.reachable:
            self.fails(lambda: one.head(KEY), lambda: two.list())
            return
        assert self.read(one, KEY) == b"in scope one"
        assert two.head(KEY) is None and two.list() == []
        assert [o.key for o in one.list()] == [KEY]
        assert KEY in one.url(KEY) and "scope-one" in one.url(KEY)

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_a_bad_key_is_refused_before_any_request(self, store: Store, bad: str) -> None:
        """`UsageError` for every key the rules refuse (a store that cannot be reached may fail
        first); nothing is written."""
        expected = UsageError if self.reachable else CacherError
        with pytest.raises(expected):
            store.head(bad)
        with pytest.raises(expected if self.writes else CacherError):
            self.write(store, bad, b"never")
        with pytest.raises(expected):
            store.list("../")
        if self.reachable:
            assert self.residue(store) == []

    def test_url_names_the_key(self, store: Store) -> None:
        url = store.url(KEY)
        assert "://" in url and url.endswith(KEY)
        assert store.path(KEY).endswith(KEY)

    # -- reaching the store ---------------------------------------------------------------------

    def test_the_bucket_is_there_or_the_store_fails(self, store: Store) -> None:
        if self.reachable:
            store.check_bucket()
            return
        self.fails(store.check_bucket)

    def test_an_empty_store_has_no_leftovers(self, store: Store) -> None:
        """Unfinished uploads are a listing like any other: answered, or a `StorageError`."""
        if self.reachable:
            assert list(store.leftovers(older_than=timedelta(0))) == []
            return
        self.fails(lambda: store.leftovers(older_than=timedelta(0)))
