"""A grid store is skipped or resumed only when it was made with the same encoder weights and settings."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medmtl import grid_store
from medmtl.cli import app
from medmtl.encoders import create_encoder
from medmtl.errors import DataError
from medmtl.wsi.compress import CompressionSettings, compress_slide, grid_settings
from medmtl.wsi.patch_encoder import PatchEncoder

SETTINGS = CompressionSettings(patch_size=64, target_mpp=1.0, batch_size=32, readers=2, prefetch_tiles=64)


def tiny_encoder(seed: int = 0, source: str = "runs/encoder") -> PatchEncoder:
    torch.manual_seed(seed)
    return PatchEncoder(create_encoder("small_cnn", in_channels=3, width=4, stages=3), in_channels=3, source=source)


def test_weights_hash_is_the_encoders_identity():
    assert tiny_encoder(0).weights_sha256 == tiny_encoder(0, source="elsewhere").weights_sha256
    assert tiny_encoder(0).weights_sha256 != tiny_encoder(1).weights_sha256
    assert len(tiny_encoder(0).weights_sha256) == 64


def test_compress_cli_reuses_only_a_matching_store(synthetic_slide, tmp_path, monkeypatch):
    """What a user meets: a second run with other settings or another encoder is refused with the
    differences named; --overwrite recomputes; the same settings skip."""
    encoders = {"runs/a": tiny_encoder(0, "runs/a"), "runs/b": tiny_encoder(1, "runs/b")}
    monkeypatch.setattr(PatchEncoder, "from_run", classmethod(lambda cls, run_dir, device="cpu": encoders[str(run_dir)]))
    out = tmp_path / "grids"
    store = out / "tumour.zarr"

    def compress(*args: str):
        return CliRunner().invoke(app, ["compress", str(synthetic_slide.path), "--out", str(out), "--mpp", "1.0",
                                        *args])

    first = compress("--encoder", "runs/a", "--patch-size", "64")
    assert first.exit_code == 0, first.output
    assert grid_store.open_grid(store).attrs["settings"]["encoder_sha256"] == encoders["runs/a"].weights_sha256
    assert "already done" in compress("--encoder", "runs/a", "--patch-size", "64").output

    other_size = compress("--encoder", "runs/a", "--patch-size", "128")
    assert other_size.exit_code == 2
    lines = other_size.stderr.strip().splitlines()
    assert len(lines) == 1 and "tumour.zarr" in lines[0] and "patch_size 64, now 128" in lines[0]
    assert "--overwrite" in lines[0] and "Traceback" not in other_size.output
    assert grid_store.open_grid(store).attrs["patch_size"] == 64  # the finished store is untouched

    other_encoder = compress("--encoder", "runs/b", "--patch-size", "64")
    assert other_encoder.exit_code == 2 and "encoder_sha256" in other_encoder.stderr and "runs/a" in other_encoder.stderr

    other_tissue = compress("--encoder", "runs/a", "--patch-size", "64", "--min-tissue", "0.5")
    assert other_tissue.exit_code == 2 and "min_tissue_fraction 0.25, now 0.5" in other_tissue.stderr

    replaced = compress("--encoder", "runs/a", "--patch-size", "128", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert "already done" not in replaced.output
    attrs = grid_store.open_grid(store).attrs
    assert attrs["patch_size"] == 128 and attrs["settings"]["patch_size"] == 128
    assert grid_store.open_grid(store).shape[1:] == (6, 8)
    assert not (out / "tumour.zarr.partial").exists() and not (out / "tumour.zarr.old").exists()
    # --overwrite recomputes only what does not match: rerunning it skips the new store
    assert "already done" in compress("--encoder", "runs/a", "--patch-size", "128", "--overwrite").output


def test_store_from_before_settings_were_recorded_is_not_reused(synthetic_slide, tmp_path):
    encoder = tiny_encoder()
    result = compress_slide(synthetic_slide.path, encoder, tmp_path, SETTINGS)
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(result.store), mode="r+")
    del group.attrs["settings"]
    with pytest.raises(DataError, match=r"tumour\.zarr: was made by an older medmtl.*--overwrite"):
        compress_slide(synthetic_slide.path, encoder, tmp_path, SETTINGS)
    again = compress_slide(synthetic_slide.path, encoder, tmp_path, SETTINGS, overwrite=True)
    assert not again.skipped and grid_store.open_grid(again.store).attrs["settings"] == grid_settings(encoder, SETTINGS)


def test_interrupted_store_resumes_only_with_its_settings(synthetic_slide, tmp_path):
    class Killed(PatchEncoder):
        def encode(self, tiles: np.ndarray) -> np.ndarray:
            raise KeyboardInterrupt("killed")

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        compress_slide(synthetic_slide.path, Killed(create_encoder("small_cnn", in_channels=3, width=4, stages=3), 3),
                       tmp_path, SETTINGS)
    partial = tmp_path / "tumour.zarr.partial"
    assert partial.exists()
    stride = CompressionSettings(**{**SETTINGS.__dict__, "stride": 128})
    with pytest.raises(DataError, match=r"tumour\.zarr\.partial: was made with stride 64, now 128.*--overwrite"):
        compress_slide(synthetic_slide.path, tiny_encoder(), tmp_path, stride)
    assert partial.exists()  # the interrupted work is kept
    result = compress_slide(synthetic_slide.path, tiny_encoder(), tmp_path, stride, overwrite=True)
    assert grid_store.open_grid(result.store).attrs["stride"] == 128 and not partial.exists()


def test_compress_cli_on_a_read_only_disk_is_one_line_and_resumes(synthetic_slide, tmp_path, monkeypatch):
    import os

    encoder = tiny_encoder()
    monkeypatch.setattr(PatchEncoder, "from_run", classmethod(lambda cls, run_dir, device="cpu": encoder))
    real_replace = os.replace

    def read_only(src, dst, *args, **kwargs):
        if str(src).endswith(".zarr.partial"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(grid_store.os, "replace", read_only)
    args = ["compress", str(synthetic_slide.path), "--encoder", "runs/a", "--out", str(tmp_path), "--mpp", "1.0",
            "--patch-size", "64"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "tumour.zarr.partial: cannot be written (Read-only file system)" in lines[0]
    assert (tmp_path / "tumour.zarr.partial").exists()  # the encoded rows are kept
    monkeypatch.setattr(grid_store.os, "replace", real_replace)
    encoded = []
    monkeypatch.setattr(encoder, "encode", lambda tiles: encoded.append(len(tiles)) or PatchEncoder.encode(encoder, tiles))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert grid_store.is_complete(tmp_path / "tumour.zarr") and encoded == []  # resumed: nothing encoded again
