"""The engine's selections over a listing as it arrives (issue 29): the same answers as sorting
the whole listing, holding only a bounded few (restore keys) or what goes (prune)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cacher.engine.listing import newest_first, recency
from cacher.engine.prune import select_old, select_old_streaming
from cacher.stores.base import ObjectInfo

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: Few distinct times, so ties (the same second) are common, and some objects have none.
TIMES = st.one_of(st.none(), st.integers(0, 5).map(lambda s: EPOCH + timedelta(seconds=s)))
LISTINGS = st.lists(st.tuples(st.text("ab/", min_size=1, max_size=4), TIMES), max_size=40).map(
    lambda pairs: [ObjectInfo(f"p/{k}{i}", i, when) for i, (k, when) in enumerate(pairs)]
)


@given(LISTINGS, st.integers(1, 6))
def test_the_newest_few_and_the_next_few_are_the_whole_order(listed: list[ObjectInfo], bound: int) -> None:
    """Asking for the ``bound`` newest, then the next ``bound`` older than the last, and so on,
    walks exactly the newest-first order of the whole listing (objects without a time left out)."""
    whole = sorted((o for o in listed if o.modified is not None), key=recency, reverse=True)
    walked: list[ObjectInfo] = []
    older_than = None
    while True:
        batch = newest_first(iter(listed), "p/", bound=bound, older_than=older_than)
        walked += batch
        if len(batch) < bound:
            break
        older_than = recency(batch[-1])
    assert walked == whole


def test_reserved_namespaces_and_unfit_keys_are_never_candidates() -> None:
    listed = [ObjectInfo(k, 1, EPOCH) for k in ("deps-a", "_scopes/x/deps-b", "deps-c")]
    assert [o.key for o in newest_first(iter(listed), "deps-")] == ["deps-c", "deps-a"]
    fits = lambda key, prefix: key.endswith("a")  # noqa: E731
    assert [o.key for o in newest_first(iter(listed), "deps-", fits)] == ["deps-a"]


@given(LISTINGS, st.integers(0, 5), st.integers(0, 8))
def test_the_streamed_prune_selects_what_the_sorted_one_does(
    listed: list[ObjectInfo], older_than: int, keep_last: int
) -> None:
    """Same objects selected, in the same order, ties and unknown times included."""
    def when(o: ObjectInfo) -> float | None:
        return o.modified.timestamp() if o.modified else None

    now = (EPOCH + timedelta(seconds=5)).timestamp()
    everything, doomed = select_old(listed, when, older_than, keep_last, now)
    assert select_old_streaming(iter(listed), when, older_than, keep_last, now) == (len(everything), doomed)
