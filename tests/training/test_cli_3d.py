"""3D end to end through the command line: train on phantom volumes, resume, report, predict NIfTI, compare."""

import json

import pytest

from helpers import run_cli

pytestmark = pytest.mark.slow

TINY = ["data.image_size=16", "data.phantom.n_train=16", "data.phantom.n_val=8", "data.batch_size=4",
        "model.encoder.options.channels=[4,8,16,32,64]", "trainer.n_bootstrap=20", "trainer.progress_bar=false"]


def test_mtms_3d_trains_resumes_reports_and_predicts_volumes(tmp_path):
    sitk = pytest.importorskip("SimpleITK", reason="the 'volumes' extra (SimpleITK) is not installed")
    out = tmp_path / "run"
    result = run_cli("train", "mtms-3d", "--out", str(out), *TINY, "trainer.max_epochs=1")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_cli("train", "mtms-3d", "--out", str(out), *TINY, "trainer.max_epochs=2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Restored all states from the checkpoint" in result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"outcome", "survival", "segmentation", "reconstruction"} <= set(metrics)
    assert metrics["outcome"]["n"] == 8 and "c_index" in metrics["survival"] and "dice" in metrics["segmentation"]
    report = (out / "report" / "report.md").read_text()
    assert "overlays.png" in report and (out / "report" / "overlays.png").is_file()

    volume = sitk.GetImageFromArray((sitk.GetArrayFromImage(sitk.Image(20, 24, 18, sitk.sitkFloat32)) + 0.5))
    volume.SetSpacing((0.8, 0.8, 1.5))
    volume.SetOrigin((10.0, -4.0, 3.0))
    sitk.WriteImage(volume, str(tmp_path / "ct.nii.gz"))
    result = run_cli("predict", str(out), str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "pred"))
    assert result.returncode == 0, result.stdout + result.stderr
    entry = json.loads((tmp_path / "pred" / "predictions.json").read_text())[str(tmp_path / "ct.nii.gz")]
    assert len(entry["outcome"]) == 2
    mask = sitk.ReadImage(str(tmp_path / "pred" / entry["segmentation"]["mask"]))
    assert mask.GetSize() == (20, 24, 18) and mask.GetSpacing() == pytest.approx((0.8, 0.8, 1.5))
    assert mask.GetOrigin() == pytest.approx((10.0, -4.0, 3.0))


def test_compare_mtms_3d_single_vs_multi_paired_on_val_then_test(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "mtms-3d", "--out", str(out), "--single", "outcome,segmentation", "--no-report", *TINY,
            "data.phantom.n_test=6", "trainer.max_epochs=1"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    tasks = comparison["paired"]["multi-task"]["tasks"]
    assert set(tasks) == {"outcome", "segmentation"} and "verdict" in tasks["segmentation"]["dice"]
    assert comparison["paired_on"] == "val" and comparison["paired"]["multi-task"]["splits"]["1"]["n"]["outcome"] == 8

    result = run_cli(*args, "--pair-on", "test")  # the finished runs are read, not trained again
    assert result.returncode == 0, result.stdout + result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["paired_on"] == "test" and comparison["paired"]["multi-task"]["splits"]["1"]["n"]["outcome"] == 6
    assert "same test images" in (out / "comparison.md").read_text()
    result = run_cli(*args, "--pair-on", "holdout")
    assert result.returncode == 2 and "--pair-on" in result.stderr and "Traceback" not in result.stderr


def test_detection_in_3d_is_refused_before_any_work(tmp_path):
    result = run_cli("train", "mtms-3d", "--out", str(tmp_path / "det"), "model.tasks.3={kind: detection, name: detection}")
    assert result.returncode == 2
    assert "model.tasks.3.kind" in result.stderr and "2D" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "det").exists()
