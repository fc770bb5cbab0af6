"""One way to report progress: the `ProgressFn` callback, its `Cancelled` stop, and bars.

Every stage takes ``progress: ProgressFn | None``: it calls ``progress(done, total)`` as
work finishes (``done`` counts up to ``total``; ``total`` may grow when a stage learns
more), and stops with `Cancelled` as soon as a call returns ``False``. The GUI's
background tasks pass a callback that returns False once the user pressed Cancel; the
command line passes `bar_progress`, which draws a tqdm bar on stderr.

Library code never prints; bars go to stderr and only where a caller asks for them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, TypeVar

from labeller.core.errors import Cancelled

__all__ = ["Cancelled", "ProgressFn", "bar", "bar_progress", "check_progress", "iter_bar"]

# progress(done, total) -> False to ask the stage to stop; None or True to go on.
ProgressFn = Callable[[int, int], "bool | None"]

T = TypeVar("T")


def check_progress(progress: ProgressFn | None, done: int, total: int,
                   what: str = "stopped") -> None:
    """Report (done, total) to `progress`; raise `Cancelled(what)` if it returns False."""
    if progress is not None and progress(done, total) is False:
        raise Cancelled(what)


def bar(total: int | None, desc: str, unit: str = "frame", *, initial: int = 0,
        enabled: bool = True, leave: bool = False, position: int | None = None) -> Any:
    """A tqdm bar on stderr (``enabled=False``: a disabled one that draws nothing).

    tqdm is imported here so that importing a stage stays cheap.
    """
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave,
                position=position, file=sys.stderr, dynamic_ncols=True,
                disable=not enabled)


def iter_bar(items: Iterable[T], desc: str, unit: str, *, enabled: bool = True,
             total: int | None = None) -> Iterator[T]:
    """`items`, drawing a bar on stderr while they are consumed (when `enabled`)."""
    if not enabled:
        yield from items
        return
    b = bar(total if total is not None else _len_or_none(items), desc, unit)
    try:
        for x in items:
            yield x
            b.update(1)
    finally:
        b.close()


def _len_or_none(items: Iterable[Any]) -> int | None:
    return len(items) if isinstance(items, Sized) else None


def bar_progress(desc: str, unit: str = "frame") -> tuple[ProgressFn, Callable[[], None]]:
    """A `ProgressFn` that draws a bar on stderr, and the function that closes it.

    The bar appears on the first call (so a stage that finds everything up to date shows
    none) and follows ``done`` (it may start above 0 when a stage resumes).
    """
    state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        b = state.get("bar")
        if b is None:
            b = state["bar"] = bar(total, desc, unit, initial=done)
        else:
            if total != b.total:
                b.total = total
            b.update(done - b.n)

    def close() -> None:
        b = state.pop("bar", None)
        if b is not None:
            b.close()

    return progress, close
