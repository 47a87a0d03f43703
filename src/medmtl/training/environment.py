"""What a run ran on, recorded in ``DIR/environment.json`` so that two runs' numbers can be compared.

The same seed gives the same weights bit for bit on one machine, but not on a CPU with other vector
instructions: oneDNN picks its convolution kernels by instruction set, and the weights drift apart
from the first steps (benchmarks/README.md, "Reproducibility"). The file is a list with one entry per
start of training (the first and every resume), since a resumed run may continue on another machine.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from medmtl.io_utils import atomic_write_json

ENVIRONMENT_FILE = "environment.json"
#: distributions whose versions change the numbers a run produces
PACKAGES = ("medmtl", "torch", "torchvision", "lightning", "monai", "numpy")
#: environment variables that change which kernels run
KERNEL_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_environment(device: str, resumed_from: str | None) -> dict[str, Any]:
    """One entry of ``environment.json``: time, host, the device text the console showed
    (``device``), the checkpoint training resumed from (None for a fresh start), CPU model and the
    vector instructions torch dispatches to, thread count, package versions, kernel-selecting
    variables."""
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resumed_from": resumed_from,
        "host": socket.gethostname(),
        "device": device,
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "variables": {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ},
    }


def record_environment(run_dir: Path, device: str, resumed_from: str | None) -> None:
    """Append this start's :func:`describe_environment` to ``run_dir/environment.json`` (atomically;
    an unreadable earlier file is replaced rather than stopping the run)."""
    path = run_dir / ENVIRONMENT_FILE
    entries: list[dict[str, Any]] = []
    if path.is_file():
        try:
            loaded = json.loads(path.read_text())
            entries = loaded if isinstance(loaded, list) else []
        except (OSError, ValueError):
            entries = []
    entries.append(describe_environment(device, resumed_from))
    atomic_write_json(path, entries)
