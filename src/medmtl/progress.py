"""Progress bars for long loops (rich), quiet when output is not a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")


def progress_bars() -> Progress:
    """A rich ``Progress`` for several bars at once (use as a context manager; ``add_task``…); drawn only
    on a terminal (in a log file or a pipe, a finished transient bar would leave an empty line)."""
    from rich.console import Console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True, disable=not Console().is_terminal)


def progress(items: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar on the console (none under ``--quiet``)."""
    from medmtl.console import is_quiet

    if is_quiet():
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bars() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
