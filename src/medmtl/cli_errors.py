"""How the command line reports user errors: one red line and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from medmtl.errors import MedMTLError

console = Console(stderr=True)


def fail(error: MedMTLError) -> None:
    """Print ``error`` as one red line on stderr and exit with code 2."""
    from rich.markup import escape

    # one line of plain text: not wrapped, and brackets in it ("medmtl[wsi]", paths) are not markup
    console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
    raise typer.Exit(code=2)


#: errors of a disk that is full or read-only, or of a folder without write permission
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})


def writes_to(option: str = "out") -> Callable[[Callable[..., None]], Callable[..., None]]:
    """For commands that write into the folder ``option`` (``--out``): a path there that is an
    existing file is a :class:`ConfigError` before any work, and a write that fails because the disk
    is full or read-only is one ``error: <path>: cannot be written (…)`` line (exit code 2); nothing
    finished before it is removed."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command)

        @functools.wraps(command)
        def checked(*args: Any, **kwargs: Any) -> None:
            from medmtl.errors import ConfigError

            out = signature.bind_partial(*args, **kwargs).arguments.get(option)
            out = None if out is None else Path(out)
            try:
                if out is not None:
                    _check_out_folder(out)
                command(*args, **kwargs)
            except ConfigError as error:
                fail(error)
            except OSError as error:
                if error.errno not in _WRITE_ERRNOS:
                    raise
                fail(_disk_error(error, out))

        return checked

    return decorate


def _disk_error(error: OSError, out: Path | None) -> MedMTLError:
    from medmtl.errors import DataError

    path = Path(error.filename) if error.filename else out
    reason = error.strerror or str(error)
    if error.errno == errno.EACCES and path is not None and out is not None \
            and out.absolute() not in (path.absolute(), *path.absolute().parents):
        return DataError(path, f"cannot be read ({reason})")  # permission denied on an input
    fix = "free some space" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
    return DataError(path, f"cannot be written ({reason}); the files finished before it are kept — {fix} or "
                           "choose another --out, then run the command again")


def _check_out_folder(out: Path) -> None:
    from medmtl.errors import ConfigError

    for folder in (out, *out.parents):  # the nearest existing one must be a folder
        if folder.exists():
            if not folder.is_dir():
                inside = "" if folder == out else f" (above {out})"
                raise ConfigError("--out", f"{folder}{inside} is an existing file, not a folder; choose a folder "
                                           "(it is created when missing)")
            return
