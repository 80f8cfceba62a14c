"""`SizedCache`: bounded in bytes, least recently used out first, big values not kept."""

from __future__ import annotations

from lestats.actors.sized_cache import SizedCache


def test_the_least_recently_used_go_first_once_over_the_limit():
    cache: SizedCache[int, bytes] = SizedCache(80)
    for key in range(8):
        cache.put(key, b"x" * 10)
    assert cache.bytes == 80
    assert cache.get(0) == b"x" * 10  # 0 is now the most recently used
    cache.put(8, b"y" * 10)
    assert list(cache) == [2, 3, 4, 5, 6, 7, 0, 8]
    assert cache.get(1) is None
    assert cache.bytes == 80


def test_a_value_over_an_eighth_of_the_limit_is_not_kept():
    cache: SizedCache[str, bytes] = SizedCache(80)
    cache.put("edge", b"e" * 10)
    cache.put("big", b"b" * 11)
    assert "edge" in cache
    assert "big" not in cache
    assert cache.bytes == 10


def test_replacing_a_value_counts_only_the_new_one():
    cache: SizedCache[str, bytes] = SizedCache(80)
    cache.put("a", b"1" * 10)
    cache.put("a", b"2" * 4)
    assert cache.get("a") == b"2" * 4
    assert cache.bytes == 4
    assert cache.values() == [b"2" * 4]


def test_a_size_function_counts_other_values_and_a_zero_limit_keeps_nothing():
    cache: SizedCache[int, str] = SizedCache(64, size=lambda text: 2 * len(text))
    cache.put(1, "ab")
    assert cache.bytes == 4
    nothing: SizedCache[int, bytes] = SizedCache(0)
    nothing.put(1, b"x")
    assert 1 not in nothing
