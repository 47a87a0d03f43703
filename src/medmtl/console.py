"""What a user sees on the console: medmtl's own lines, not its dependencies' chatter.

:func:`quiet_dependencies` (called once by the command line) drops the messages Lightning prints
on every run that tell a user nothing about it — its advertising tip, the "GPU available" /
"TPU available" inventory (medmtl prints the one device it uses instead), the echo of
``limit_*_batches`` and the "``Trainer.fit`` stopped" line — and the deprecation and future
warnings that torch, Lightning, MONAI… raise about each other's internals. Warnings from medmtl
itself and every error still show. :func:`set_quiet` (``medmtl --quiet``) also hides Lightning's
remaining information lines, progress bars and medmtl's own tables; only warnings, errors and the
paths of what was written remain.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

from rich.console import Console

#: Lightning's information lines that say nothing about the user's run
LIGHTNING_NOISE = re.compile(
    r"💡 Tip:|^GPU available:|^TPU available:|^HPU available:|was configured so|"
    r"^`Trainer.fit` stopped|^LOCAL_RANK: \d+ - CUDA_VISIBLE_DEVICES|^Initializing distributed:|"
    r"^-+\ndistributed_backend=|^All distributed processes registered"
)
#: the loggers Lightning's ``rank_zero_info`` writes to (records are filtered where they are made)
LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                     "lightning.pytorch.accelerators.cuda", "lightning.pytorch.strategies.ddp",
                     "lightning.fabric.utilities.distributed")
#: dependencies whose deprecation/future warnings are theirs to fix, not the user's
DEPENDENCIES = r"(lightning|lightning_fabric|pytorch_lightning|torch|torchvision|torchmetrics|monai|pydantic|" \
               r"zarr|dask|distributed|numcodecs|tifffile|SimpleITK|tensorboard|google|pkg_resources)(\.|$)"
#: Lightning's warnings about settings medmtl chose on purpose
EXPECTED_WARNINGS = (
    r".*does not have many workers.*",  # num_workers follows data.num_workers; 0 is a valid choice
    r".*is smaller than the logging interval.*",  # small data sets: medmtl logs every epoch anyway
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning calling torch's pytree
)

_quiet = False
_installed = False
console = Console(stderr=True)  # beside the error lines of medmtl.cli_errors; stdout stays for data


class _DropLightningNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not LIGHTNING_NOISE.search(record.getMessage())


def quiet_dependencies() -> None:
    """Install the filters described in the module docstring (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(_DropLightningNoise())
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=DEPENDENCIES)
    for message in EXPECTED_WARNINGS:  # (DDP ranks re-run the command line, so they install these too)
        warnings.filterwarnings("ignore", message=message)


def set_quiet(quiet: bool = True) -> None:
    """``medmtl --quiet``: no progress bars, no tables, Lightning's information lines off."""
    global _quiet
    _quiet = quiet
    level = logging.WARNING if quiet else logging.INFO
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(level)
    if quiet:
        os.environ["MEDMTL_QUIET"] = "1"  # DDP ranks re-run the command line; workers inherit it
    else:
        os.environ.pop("MEDMTL_QUIET", None)


def is_quiet() -> bool:
    """Whether ``--quiet`` is on (in this process or the one that started it)."""
    return _quiet or os.environ.get("MEDMTL_QUIET") == "1"


def is_main_process() -> bool:
    """True on the process that talks to the user (global rank 0 under DDP, else always)."""
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"


def say(message: str) -> None:
    """Print one of medmtl's information lines (not under ``--quiet``; rank 0 only)."""
    if not is_quiet() and is_main_process():
        console.print(message, markup=False, soft_wrap=True, highlight=False)
