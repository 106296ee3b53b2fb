"""Work on the next items in the background while the caller uses the current one, in order, bounded."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item, Result = TypeVar("Item"), TypeVar("Result")


def lookahead(items: Iterable[Item], work: Callable[[Item], Result], depth: int, name: str) -> Iterator[Result]:
    """``work(item)`` for each item, in order, with up to ``depth`` items worked on ahead of the one yielded:
    memory holds ``depth + 1`` results at most, whatever the number of items."""
    with ThreadPoolExecutor(depth, thread_name_prefix=name) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
