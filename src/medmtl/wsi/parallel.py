"""Many slides in parallel on a Dask cluster: one worker process per device.

A local cluster (``distributed.LocalCluster``) is started for the call, or an existing one is
used through its scheduler address. Each worker loads the patch encoder once and compresses
whole slides; a slide is the unit of work, so an interrupted run resumes slide by slide (and
within a slide from its finished rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from medmtl.extras import require
from medmtl.wsi.compress import CompressionResult, CompressionSettings, check_stores, compress_slide, settings_for
from medmtl.wsi.patch_encoder import PatchEncoder

_ENCODERS: dict[str, PatchEncoder] = {}


def worker_device() -> str:
    """``cuda:<worker index mod GPUs>`` when this worker sees GPUs, else ``cpu``."""
    if not torch.cuda.is_available():
        return "cpu"
    get_worker = require("distributed", feature="compressing slides in parallel").get_worker

    name = str(get_worker().name)
    index = int(name) if name.isdigit() else abs(hash(name))
    return f"cuda:{index % torch.cuda.device_count()}"


def _compress_on_worker(slide: str, encoder: str | PatchEncoder, out_dir: str, settings: CompressionSettings,
                        threads: int, overwrite: bool = False) -> CompressionResult:
    torch.set_num_threads(threads)
    if isinstance(encoder, PatchEncoder):
        patch_encoder = encoder
    else:
        if encoder not in _ENCODERS:
            _ENCODERS[encoder] = PatchEncoder.from_run(encoder, device=worker_device())
        patch_encoder = _ENCODERS[encoder]
    return compress_slide(slide, patch_encoder, out_dir, settings, overwrite=overwrite)


def compress_in_parallel(slides: list[Path], encoder: str | Path | PatchEncoder, out_dir: Path,
                         settings: CompressionSettings = CompressionSettings(), workers: int = 2,
                         threads_per_worker: int = 1, scheduler: str | None = None,
                         overwrite: bool = False, slide_mpps: Mapping[str, float] | None = None
                         ) -> list[CompressionResult]:
    """Compress ``slides`` on ``workers`` Dask worker processes (or the cluster at ``scheduler``).

    ``encoder`` is a run directory (each worker loads it once) or a :class:`PatchEncoder`.
    Results come back in the order of ``slides``; a failing slide raises its error here. Each slide
    gets the same settings as :func:`medmtl.wsi.compress.compress_slide` (a store made with another
    encoder or settings is an error, or with ``overwrite`` recomputed); ``slide_mpps`` gives slides
    their own level-0 µm/px (:func:`medmtl.wsi.compress.settings_for`).
    """
    distributed = require("distributed", feature="compressing slides in parallel (--workers, --scheduler)")
    Client, LocalCluster, dask_progress = distributed.Client, distributed.LocalCluster, distributed.progress

    if isinstance(encoder, PatchEncoder):  # a run directory is loaded on the workers only; they check then
        check_stores(slides, encoder, out_dir, settings, overwrite, slide_mpps)
    encoder_arg = encoder if isinstance(encoder, PatchEncoder) else str(encoder)
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            futures = [client.submit(_compress_on_worker, str(slide), encoder_arg, str(out_dir),
                                     settings_for(settings, slide, slide_mpps),
                                     threads_per_worker, overwrite, key=f"compress-{Path(slide).name}",
                                     pure=False)
                       for slide in slides]
            dask_progress(futures)
            return client.gather(futures)
    finally:
        if cluster is not None:
            cluster.close()
