"""A full or read-only disk, or an --out that is a file, is one clear line for train, predict and
compress, and the files finished before the failure are kept."""

from __future__ import annotations

import errno
import os

import pytest
import yaml
from typer.testing import CliRunner

import medmtl.io_utils
from medmtl.cli import app


def _config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "seed": 0,
        "data": {"kind": "phantom", "image_size": 32, "batch_size": 8,
                 "phantom": {"n_train": 8, "n_val": 8, "image_size": 32}},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 4, "stages": 2}},
                  "tasks": [{"kind": "classification"}, {"kind": "segmentation"}]},
        "trainer": {"max_epochs": 1, "progress_bar": False, "n_bootstrap": 10, "log_every_n_steps": 1},
    }))
    return path


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _fail_writing(monkeypatch, name: str, code: int) -> None:
    """Writing the file ``name`` (through medmtl.io_utils) fails with ``OSError(code)``."""
    real = medmtl.io_utils.atomic_write_bytes

    def failing(path, data):
        if os.path.basename(path) == name:
            raise OSError(code, os.strerror(code), str(path))
        real(path, data)

    monkeypatch.setattr(medmtl.io_utils, "atomic_write_bytes", failing)


def test_out_that_is_a_file_stops_every_command_before_any_work(tmp_path, synthetic_slide_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    runner = CliRunner()
    for args in (["train", "nonexistent.yaml", "--out", str(taken)],
                 ["predict", str(tmp_path / "no-run"), "x.png", "--out", str(taken)],
                 ["compress", str(synthetic_slide_path), "--encoder", str(tmp_path / "no-run"), "--out", str(taken)],
                 ["train", "nonexistent.yaml", "--out", str(taken / "run")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = _error_lines(result)
        assert len(lines) == 1 and "--out" in lines[0] and "taken.txt" in lines[0] and "is an existing file" in lines[0]
    assert taken.read_text() == "not a folder"


@pytest.fixture
def synthetic_slide_path(tmp_path):
    return tmp_path / "slide.tif"  # never opened: the --out check comes first


def test_full_or_read_only_disk_is_one_line_and_keeps_finished_files(tmp_path, monkeypatch):
    runner = CliRunner()
    config, run = _config(tmp_path), tmp_path / "run"
    _fail_writing(monkeypatch, "metrics.json", errno.ENOSPC)  # after training: the checkpoints are finished
    result = runner.invoke(app, ["train", str(config), "--out", str(run), "--no-report"])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and "Traceback" not in result.output
    assert f"{run / 'metrics.json'}: cannot be written (No space left on device)" in lines[0]
    assert "--out" in lines[0]
    assert (run / "checkpoints" / "best.ckpt").exists() and (run / "config.yaml").exists()

    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("L", (40, 30), 128).save(image)
    _fail_writing(monkeypatch, "predictions.json", errno.EROFS)
    result = runner.invoke(app, ["predict", str(run), str(image), "--out", str(tmp_path / "pred")])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and "predictions.json: cannot be written (Read-only file system)" in lines[0]
    assert (tmp_path / "pred" / "masks" / "image_segmentation.png").exists()  # written before, kept
