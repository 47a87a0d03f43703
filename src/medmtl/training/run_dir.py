"""The guard of a run directory: one writer at a time, and checkpoints that always match ``config.yaml``.

**Lock.** ``DIR/.lock`` holds the PID and host of the process that trains into ``DIR``; it is
created atomically (``os.open`` with ``O_CREAT | O_EXCL``) and removed when training ends, also on
errors. A lock whose process no longer runs on this host (killed, machine restarted) is *stale*
and taken over with a warning; a live one (or one of another host, whose process cannot be
checked) is a clear error naming the PID. Ranks > 0 of a distributed run do not take the lock:
rank 0, which started them or was started with them, holds it.

**Rerun.** Training again into a directory that holds a run (a checkpoint) compares the new
resolved configuration with the stored ``config.yaml`` (both as ``model_dump(mode="json")``; the
stored one read through :func:`medmtl.config.config_from_dict`, so old key names are migrated):

- identical: the run resumes from ``checkpoints/last.ckpt``;
- only :data:`RESUMABLE_KEYS` changed: the run resumes, ``config.yaml`` is rewritten and the change
  is appended to ``DIR/config_changes.yaml`` (and warned about);
- anything else changed: :class:`~medmtl.errors.ConfigError` listing the changed keys; nothing in
  the directory is written.

The resumable keys are those that do not change what the checkpoint's weights, optimizer state or
best-model choice mean, only how long, how verbosely or how fast training goes on:
``trainer.max_epochs`` (the cosine schedule is stretched to the new length, see
:mod:`medmtl.training.resume`), ``trainer.patience`` and ``trainer.min_delta`` (early stopping from
now on), ``trainer.progress_bar``, ``trainer.log_every_n_steps``, ``trainer.num_threads``,
``trainer.n_bootstrap`` (the final CIs), ``data.num_workers`` and ``data.cache_images`` (the
samples are the same). A new configuration is written only once the run can proceed (after the
model and the data were built).

With ``resume=False`` a directory that holds a run is an error (delete it or choose another folder).
At the start of a run, the temporary files of interrupted atomic writes (``.<name>.<random>.tmp``)
are removed from the directory, ``checkpoints/`` and ``report/``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from medmtl.config import RunConfig, config_from_dict, save_config
from medmtl.errors import ConfigError, DataError, MedMTLError
from medmtl.io_utils import atomic_write_text, remove_partial_writes

#: dotted keys whose change a resumed run accepts (see the module docstring)
RESUMABLE_KEYS = frozenset({
    "trainer.max_epochs", "trainer.patience", "trainer.min_delta", "trainer.progress_bar",
    "trainer.log_every_n_steps", "trainer.num_threads", "trainer.n_bootstrap",
    "data.num_workers", "data.cache_images",
})
LOCK_NAME = ".lock"
CHANGES_NAME = "config_changes.yaml"
_ABSENT = "<absent>"


def is_launched_rank() -> bool:
    """Whether this process is a rank > 0 of a distributed run (Lightning's DDP launcher, torchrun, SLURM)."""
    return any(os.environ.get(name, "0") != "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


# ---------------------------------------------------------------------------------------------- lock
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None


class RunLock:
    """``DIR/.lock`` while this process trains into ``DIR`` (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.owner = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held = False

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps({**self.owner, "started": datetime.now(timezone.utc).isoformat()}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.held = True
            return
        raise ConfigError("--out", f"could not lock {self.run_dir}: {self.path} keeps reappearing; "
                                   "another process is starting a run in it")

    def _take_over_if_stale(self) -> None:
        """Remove the existing lock when its process is gone; raise when it (maybe) runs."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return  # released meanwhile: try again
        owner = _read_owner(self.path)
        if owner is None and not text.strip():
            time.sleep(0.2)  # created an instant ago, the owner is writing its PID
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                return
            owner = _read_owner(self.path)
        if owner is not None:
            pid, host = owner["pid"], owner.get("host")
            here = host == self.owner["host"]
            if not here or _alive(pid):
                where = "this process" if here and pid == os.getpid() else f"process {pid} on host {host}"
                raise ConfigError("--out", f"{self.run_dir} is in use: {where} is training into it "
                                           f"(lock file {self.path}); wait until it ends, or delete the lock "
                                           f"file if that process no longer runs")
            reason = f"its process {pid} no longer runs"
        else:
            reason = "it names no process"
        try:
            if self.path.read_text() != text:
                return  # someone else took it over meanwhile: try again
            self.path.unlink()
        except FileNotFoundError:
            return
        warnings.warn(f"{self.path}: taking over a stale lock ({reason})", RuntimeWarning, stacklevel=4)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = _read_owner(self.path)
        if owner is not None and owner.get("pid") == self.owner["pid"] and owner.get("host") == self.owner["host"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------------------------- configuration
def diff(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old, new)}`` where two nested values differ (dicts by key, lists by index:
    ``model.tasks.0.kind``); a key one side lacks has the value ``"<absent>"`` there."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [key for key in new if key not in old]
        pairs = [(key, old.get(key, _ABSENT), new.get(key, _ABSENT)) for key in keys]
    elif isinstance(old, list) and isinstance(new, list):
        pairs = [(index, old[index] if index < len(old) else _ABSENT, new[index] if index < len(new) else _ABSENT)
                 for index in range(max(len(old), len(new)))]
    else:
        return {} if old == new else {prefix: (old, new)}
    changes: dict[str, tuple[Any, Any]] = {}
    for key, before, after in pairs:
        changes.update(diff(before, after, f"{prefix}.{key}" if prefix else str(key)))
    return changes


def config_changes(old: RunConfig, new: RunConfig) -> dict[str, tuple[Any, Any]]:
    """The keys whose resolved values differ (``model_dump(mode="json")`` of both), as :func:`diff` gives them."""
    return diff(old.model_dump(mode="json"), new.model_dump(mode="json"))


def is_resumable(key: str) -> bool:
    return key in RESUMABLE_KEYS


def _describe(changes: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())


def read_run_config(run_dir: Path, missing: str = "is not a medmtl run directory (no config.yaml)",
                    unreadable_hint: str = "") -> RunConfig:
    """The stored ``config.yaml`` of a run (old key names migrated); a :class:`DataError` saying
    ``missing`` when there is none, or naming the file when it cannot be read (``unreadable_hint``
    says what to do then)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise DataError(run_dir, missing)
    try:
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict):
            raise ConfigError(str(path), "must hold a mapping of sections")
        return config_from_dict(raw, source=str(path))
    except (MedMTLError, yaml.YAMLError) as error:
        raise DataError(path, f"cannot be read as a run configuration ({error}){unreadable_hint}") from None


def read_stored_config(run_dir: Path) -> RunConfig:
    """The configuration a rerun is checked against (the directory holds checkpoints)."""
    return read_run_config(run_dir, "holds checkpoints but no config.yaml, so they cannot be checked against the "
                                    "configuration; train into a new --out",
                           "; the run cannot be resumed, train into a new --out")


@dataclass
class RunPlan:
    """What :func:`check_rerun` found: a fresh run, or a resume with (resumable) ``changes``."""

    resume: bool
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def holds_run(run_dir: Path) -> bool:
    checkpoints = run_dir / "checkpoints"
    return (checkpoints / "last.ckpt").exists() or (checkpoints / "best.ckpt").exists()


def check_rerun(config: RunConfig, run_dir: str | Path, resume: bool) -> RunPlan:
    """Decide fresh run / resume, or raise before anything is written (see the module docstring)."""
    run_dir = Path(run_dir)
    if not holds_run(run_dir):
        return RunPlan(resume=False)
    if not resume:
        raise ConfigError("--out", f"{run_dir} already holds a run; pass --resume to continue it, or choose "
                                   "another folder (or delete this one) to start over")
    changes = config_changes(read_stored_config(run_dir), config)
    refused = {key: change for key, change in changes.items() if not is_resumable(key)}
    if refused:
        raise ConfigError("--out", f"{run_dir} holds a run trained with another configuration; changed: "
                                   f"{_describe(refused)}. Its checkpoints belong to the stored "
                                   f"{run_dir / 'config.yaml'}: train the changed configuration into a new --out "
                                   f"(or delete the folder and start over; --no-resume does not overwrite a run). "
                                   f"Only {', '.join(sorted(RESUMABLE_KEYS))} may change when a run is resumed")
    return RunPlan(resume=True, changes=changes)


def commit_config(config: RunConfig, run_dir: str | Path, plan: RunPlan) -> None:
    """Write ``config.yaml`` (fresh run, or resumable changes; an unchanged one is left as it is) and record changes."""
    run_dir = Path(run_dir)
    if plan.resume and not plan.changes:
        return
    if plan.changes:
        path = run_dir / CHANGES_NAME
        history: Any = []
        if path.is_file():
            try:
                history = yaml.safe_load(path.read_text()) or []
            except yaml.YAMLError:
                history = []
        if not isinstance(history, list):
            history = [history]
        history.append({"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "resumed_with": {key: {"from": old, "to": new} for key, (old, new) in plan.changes.items()}})
        atomic_write_text(path, yaml.safe_dump(history, sort_keys=False))
        warnings.warn(f"{run_dir}: resuming with changed settings ({_describe(plan.changes)}); recorded in {path}",
                      UserWarning, stacklevel=3)
    save_config(config, run_dir / "config.yaml")


def clean_partial_writes(run_dir: str | Path) -> list[Path]:
    """Remove leftovers of interrupted atomic writes in the run directory, ``checkpoints/`` and ``report/``."""
    run_dir = Path(run_dir)
    return [path for folder in (run_dir, run_dir / "checkpoints", run_dir / "report")
            for path in remove_partial_writes(folder)]
