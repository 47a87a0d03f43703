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


def _first_cpu() -> dict[str, str]:
    """The fields of the first processor in ``/proc/cpuinfo`` (Linux; empty elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if not line.strip():
                if fields:
                    break  # the end of the first processor's block
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    return fields


def _vector_flags(cpu: dict[str, str]) -> list[str]:
    """The CPU's vector-instruction flags (AVX*, AMX*, FMA): what oneDNN chooses its kernels by;
    a virtual machine's model name (e.g. ``AMD EPYC``) does not say which a CPU has."""
    return sorted(flag for flag in cpu.get("flags", "").split() if flag.startswith(("avx", "amx", "fma")))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_environment(device: str, resumed_from: str | None) -> dict[str, Any]:
    """One entry of ``environment.json``: time, host, the device text the console showed
    (``device``), the checkpoint training resumed from (None for a fresh start), CPU model, its
    vector-instruction flags and the instruction set torch dispatches to, thread count, package
    versions, kernel-selecting variables."""
    cpu = _first_cpu()
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resumed_from": resumed_from,
        "host": socket.gethostname(),
        "device": device,
        "cpu": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_vector_flags": _vector_flags(cpu),
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
