"""`medmtl compress` and `medmtl show-grid` as a user runs them, on synthetic and real slides."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from helpers import run_cli, tiny_config, write_run
from PIL import Image

from medmtl import grid_store
from medmtl.builders import build_model
from medmtl.config import config_from_dict
from medmtl.paths import data_root

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory):
    """A patch encoder trained for one epoch on RGB phantom images (any medmtl run on RGB images works)."""
    folder = tmp_path_factory.mktemp("encoder")
    config = folder / "config.yaml"
    raw = tiny_config(max_epochs=1)
    raw["data"]["channels"] = 3
    config.write_text(yaml.safe_dump(raw))
    result = run_cli("train", str(config), "--out", str(folder / "run"), "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    return folder / "run"


def test_compress_then_show_grid(encoder_run, synthetic_slide, white_slide, tmp_path):
    result = run_cli("compress", str(synthetic_slide.path), str(white_slide.path), "--encoder", str(encoder_run),
                     "--out", str(tmp_path / "grids"), "--mpp", "1.0", "--patch-size", "64")
    assert result.returncode == 0, result.stdout + result.stderr
    store = grid_store.open_grid(tmp_path / "grids" / "tumour.zarr")
    assert store.shape[1:] == (12, 16) and store.tissue().any()
    assert "already done" not in result.stdout + result.stderr
    again = run_cli("compress", str(synthetic_slide.path), "--encoder", str(encoder_run), "--out",
                    str(tmp_path / "grids"), "--mpp", "1.0", "--patch-size", "64")
    assert "already done" in again.stdout + again.stderr
    shown = run_cli("show-grid", str(tmp_path / "grids" / "tumour.zarr"), "--out", str(tmp_path / "grid.png"))
    assert shown.returncode == 0 and (tmp_path / "grid.png").stat().st_size > 0


def test_clear_errors(encoder_run, tmp_path):
    text = tmp_path / "slide.txt"
    text.write_text("no")
    result = run_cli("compress", str(text), "--encoder", str(encoder_run), "--out", str(tmp_path / "g"))
    assert result.returncode == 2 and "slide.txt" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("show-grid", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2 and "none.zarr" in result.stderr
    photo = tmp_path / "field.png"  # an ordinary image: no µm/px in the file
    Image.fromarray(np.full((64, 96, 3), 180, np.uint8)).save(photo)
    result = run_cli("compress", str(photo), "--encoder", str(encoder_run), "--out", str(tmp_path / "g"))
    assert result.returncode == 2 and "field.png" in result.stderr and "--slide-mpp" in result.stderr
    assert "Traceback" not in result.stderr


def test_ordinary_images_compress_with_a_csv_mpp_column(encoder_run, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        pixels = np.full((160, 224, 3), 235, np.uint8)
        pixels[32:128, 48:176] = np.array([200, 110, 170]) + rng.integers(-30, 30, (96, 128, 3))  # H&E-pink tissue
        Image.fromarray(pixels).save(tmp_path / f"{name}.jpg", quality=95)
    (tmp_path / "images.csv").write_text("image,mpp,label\na.jpg,0.5,1\nb.jpg,1.0,0\n")
    result = run_cli("compress", str(tmp_path / "images.csv"), "--encoder", str(encoder_run), "--out",
                     str(tmp_path / "grids"), "--mpp", "1.0", "--patch-size", "32", "--min-tissue", "0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    # a.jpg at 0.5 µm/px is read at half size (224 px → 112 px at 1 µm/px), b.jpg at its own size
    assert grid_store.open_grid(tmp_path / "grids" / "a.zarr").shape[1:] == (3, 4)
    assert grid_store.open_grid(tmp_path / "grids" / "b.zarr").shape[1:] == (5, 7)
    assert grid_store.open_grid(tmp_path / "grids" / "b.zarr").tissue().sum() >= 6


def test_a_grey_encoder_is_refused_before_any_tile_is_read(synthetic_slide, tmp_path):
    config = config_from_dict(tiny_config())  # data.channels: 1
    run = write_run(tmp_path / "grey", config, build_model(config))
    result = run_cli("compress", str(synthetic_slide.path), "--encoder", str(run), "--out",
                     str(tmp_path / "g"), "--mpp", "1.0")
    assert result.returncode == 2 and "1-channel (grey)" in result.stderr and "data.channels: 3" in result.stderr
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").iterdir())


@pytest.mark.realdata
def test_real_tcga_slide_needs_its_mpp_and_then_compresses(encoder_run, tmp_path):
    root = data_root()
    slide = None if root is None else root / "wsi" / "tcga-cr-7395-01a-01-ts1.svs"
    if slide is None or not slide.exists():
        pytest.skip("the shared TCGA slide (../shared/data/wsi) is not available; set MEDMTL_DATA")
    result = run_cli("compress", str(slide), "--encoder", str(encoder_run), "--out", str(tmp_path / "g"))
    assert result.returncode == 2 and "mpp" in result.stderr.lower() and "Traceback" not in result.stderr
    result = run_cli("compress", str(slide), "--encoder", str(encoder_run), "--out", str(tmp_path / "g"),
                     "--slide-mpp", "0.5", "--mpp", "2.0", "--patch-size", "64")
    assert result.returncode == 0, result.stdout + result.stderr
    store = grid_store.open_grid(tmp_path / "g" / "tcga-cr-7395-01a-01-ts1.zarr")
    assert store.tissue().sum() > 10
