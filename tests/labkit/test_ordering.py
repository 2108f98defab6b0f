"""labkit.ordering: counting order breaks and routing keys to partitions."""

import pytest

from labkit.ordering import breaks_per_key, order_breaks, partition


def test_order_breaks_counts_items_behind_a_higher_one():
    assert order_breaks([]) == 0
    assert order_breaks([0, 1, 2, 3]) == 0
    assert order_breaks([1, 2, 4, 3, 5]) == 1
    assert order_breaks([3, 0, 1, 2]) == 3  # everything after 3 is late


def test_breaks_per_key_only_compares_within_a_key():
    pairs = [("a", 1), ("b", 0), ("a", 2), ("b", 1), ("a", 0)]
    assert breaks_per_key(pairs) == {"a": 1, "b": 0}


def test_partition_is_stable_and_in_range():
    keys = [f"customer-{i}" for i in range(100)]
    parts = [partition(k, 4) for k in keys]
    assert set(parts) == {0, 1, 2, 3}
    assert parts == [partition(k, 4) for k in keys]
    assert partition("customer-1", 1) == 0


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="partitions"):
        partition("k", 0)
    with pytest.raises(ValueError, match="key"):
        partition(7, 2)
    with pytest.raises(ValueError, match=r"sequence\[1\]"):
        order_breaks([1, "x"])
    with pytest.raises(ValueError, match=r"pairs\[0\]"):
        breaks_per_key([1])
