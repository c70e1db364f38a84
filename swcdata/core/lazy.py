"""`Lazy`: a sequence whose items are made when first read, and kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class Lazy(Sequence[T]):
    """`n` items, item i made by `make(i)` when it is first read (then kept)."""

    def __init__(self, n: int, make: Callable[[int], T]) -> None:
        self._n, self._make = n, make
        self._made: dict[int, T] = {}

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[T]:
        return (self[i] for i in range(self._n))

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        if i not in self._made:
            self._made[i] = self._make(i)
        return self._made[i]
