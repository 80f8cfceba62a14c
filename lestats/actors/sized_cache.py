"""A cache bounded in bytes, for the three places that keep results in memory.

The ResultStorage's read cache, each Worker's memo and the event loop's copy of finished jobs
all keep values up to a byte budget and forget the least recently used first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterator

K = TypeVar("K", bound="Hashable")
V = TypeVar("V")


class SizedCache(Generic[K, V]):
    """At most `limit` bytes of values (as `size` counts them); least recently used go first.

    A value over an eighth of the limit is not kept, so one big value cannot empty the cache.
    Not thread-safe: its owner (an actor, or the event loop) alone uses it.
    """

    def __init__(self, limit: int, size: Callable[[V], int] = len) -> None:  # type: ignore[assignment]
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._limit = limit
        self.bytes = 0
        """The bytes held now."""

    def get(self, key: K) -> V | None:
        """The value of `key`, now the most recently used; None if not kept."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Keep `value` for `key` (replacing any), then forget the oldest beyond the limit."""
        size = self._size(value)
        if size > self._limit // 8:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.bytes -= self._size(previous)
        self._entries[key] = value
        self.bytes += size
        while self.bytes > self._limit:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= self._size(evicted)

    def pop(self, key: K) -> None:
        """Forget `key`, if kept."""
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.bytes -= self._size(previous)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """The keys, least recently used first."""
        return iter(self._entries)

    def values(self) -> list[V]:
        """The values, least recently used first."""
        return list(self._entries.values())
