"""Checkpoint files are read as data: loading one never runs code.

Every checkpoint medmtl reads — ``load_weights`` (evaluate, predict, ``compress --encoder``, the end
of ``train``) and Lightning's resume (``AtomicCheckpointIO.load_checkpoint``) — goes through
:func:`load_checkpoint_file`, i.e. ``torch.load(weights_only=True)``: tensors, containers and plain
Python values only, plus the globals in :data:`SAFE_GLOBALS`.

What a medmtl checkpoint holds (Lightning 2.6 ``dump_checkpoint``): ``epoch``, ``global_step``,
``pytorch-lightning_version`` (ints, str); ``state_dict`` (an ``OrderedDict`` of tensors);
``loops`` (nested dicts of ints and bools); ``callbacks`` — the states of the two
``ModelCheckpoint`` callbacks (paths as str, scores as tensors, ``best_k_models`` str → tensor) and
of ``EarlyStopping`` (ints, a tensor, the stopping reason as its int ``value``, a str or None);
``optimizer_states`` and ``lr_schedulers`` (the torch state dicts: lists, dicts, floats, tensors);
with mixed precision the precision plugin's grad-scaler state (floats, ints). There are no
hyper-parameters (``MultiTaskModule`` does not call ``save_hyperparameters``) and no pickled
objects, so torch's own weights-only allow-list (which covers ``OrderedDict``, ``torch.Size``,
dtypes and devices) is enough and :data:`SAFE_GLOBALS` is empty. A file that needs anything more
is refused with a :class:`DataError` naming the file and the global.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from medmtl.errors import DataError

#: Globals a medmtl checkpoint may need beyond torch's weights-only defaults (none today). Add a
#: class here only if it is plain data and Lightning or medmtl starts writing it into checkpoints.
SAFE_GLOBALS: list[Any] = []

_GLOBAL_IN_MESSAGE = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error:\s*(\S[^\n]*)")


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict in ``path``, unpickled with ``weights_only=True``; a :class:`DataError`
    for a missing or unreadable file and for one that would need an unsafe global to load."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint does not exist")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_global(path, exc)
        if unsafe:
            raise DataError(path, f"is not a plain medmtl checkpoint: it needs {unsafe} to load, which could run "
                                  "code; refusing to load it") from None
        raise DataError(path, f"cannot be read as a plain medmtl checkpoint ({_unpickler_detail(exc)}); "
                              "refusing to load it") from None
    except Exception as exc:
        raise DataError(path, f"cannot be read as a medmtl checkpoint: {_first_line(exc)}") from None
    if not isinstance(checkpoint, dict):
        raise DataError(path, f"is not a medmtl checkpoint (it holds a {type(checkpoint).__name__}, not a dict)")
    return checkpoint


def _unsafe_global(path: Path, error: Exception) -> str | None:
    """The globals that made the weights-only unpickler stop, as far as can be told without running them."""
    try:  # scans the pickle opcodes of a zip checkpoint; executes nothing
        names = sorted(name for name in torch.serialization.get_unsafe_globals_in_checkpoint(path)
                       if name not in _allowed_names())
    except Exception:
        names = []
    if names:
        return ", ".join(names)
    match = _GLOBAL_IN_MESSAGE.search(str(error))
    return match.group(1) if match else None


def _unpickler_detail(error: Exception) -> str:
    match = _UNPICKLER_ERROR.search(str(error))
    return f"the weights-only loader stopped at: {match.group(1).strip()}" if match else _first_line(error)


def _allowed_names() -> set[str]:
    return {f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', g)}" for g in SAFE_GLOBALS}


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
