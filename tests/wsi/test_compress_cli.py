"""`medmtl compress` and `medmtl show-grid` as a user runs them, on synthetic and real slides."""

from __future__ import annotations

import pytest
import yaml

from helpers import run_cli, tiny_config
from medmtl import grid_store
from medmtl.paths import data_root

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory):
    """A patch encoder trained for one epoch on phantom images (any medmtl run works)."""
    folder = tmp_path_factory.mktemp("encoder")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(max_epochs=1)))
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
