"""Detection through the command line: the four-task preset on phantom data, then predict."""

import json

import pandas as pd
import pytest
import torch
from PIL import Image

from helpers import run_cli

pytestmark = pytest.mark.slow

PHANTOM = ("data={kind: phantom, image_size: 48, batch_size: 16, "
           "phantom: {n_train: 32, n_val: 16, normal_fraction: 0.25, seed: 3}}")
SMALL_ENCODER = "model.encoder={name: small_cnn, options: {width: 8, stages: 4}}"


def test_four_task_preset_trains_with_a_switched_off_task_and_predicts(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "four-task", "--out", str(out), PHANTOM, SMALL_ENCODER, "model.tasks.0.num_classes=3",
                     "loss.weights.reconstruction=0", "trainer.max_epochs=1", "trainer.n_bootstrap=20",
                     "trainer.progress_bar=false")
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"classification", "segmentation", "reconstruction", "detection"}
    assert {"ap50", "tpr_fpi_0.5", "tpr_fpi_4", "froc_score", "dice"} <= set(metrics["detection"])
    assert metrics["detection"]["n"] == 16
    log = (out / "logs" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "val/detection/rpn_objectness" in log and "val/detection/mask" in log  # the parts are logged
    assert (out / "report" / "froc_detection.png").exists()
    froc = pd.read_csv(out / "report" / "froc_detection.csv")  # the plotted points, for cross-run figures
    assert froc["tpr"][froc["fpi"] <= 4].max() == pytest.approx(metrics["detection"]["tpr_fpi_4"])
    roc = pd.read_csv(out / "report" / "roc_classification.csv")
    assert set(roc["class"]) <= {0, 1, 2} and roc["fpr"].between(0, 1).all()

    image = tmp_path / "scan.png"
    Image.fromarray((torch.rand(60, 80) * 255).byte().numpy()).save(image)
    result = run_cli("predict", str(out), str(image), "--out", str(tmp_path / "pred"))
    assert result.returncode == 0, result.stdout + result.stderr
    prediction = json.loads((tmp_path / "pred" / "predictions.json").read_text())[str(image)]
    assert 0.0 <= prediction["detection"]["image_probability"] <= 1.0
    assert isinstance(prediction["detection"]["detections"], list)
    assert Image.open(tmp_path / "pred" / "masks" / "scan_detection.png").size == (80, 60)
    assert (tmp_path / "pred" / "overlays" / "scan.png").exists()
    coco = json.loads((tmp_path / "pred" / "boxes.json").read_text())
    assert all("score" in a for a in coco["annotations"] if a["source_task"] == "detection")


def test_ft_mtl_net_preset_with_stages(tmp_path):
    out = tmp_path / "ftmtl"
    stages = ("trainer.stages=[{epochs: 1, train: [encoder, tasks.detection.head.pyramid, "
              "tasks.detection.head.rpn]}]")
    result = run_cli("train", "ft-mtl-net", "--out", str(out), PHANTOM, SMALL_ENCODER, stages,
                     "trainer.max_epochs=2", "trainer.n_bootstrap=20", "trainer.progress_bar=false", "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())["detection"]
    assert "auc" in metrics  # malignant-veto image score: benign and malignant images in the val split

    result = run_cli("train", "ft-mtl-net", "--out", str(tmp_path / "bad"), PHANTOM, SMALL_ENCODER,
                     "trainer.stages=[{epochs: 1, train: [tasks.detection.head.rpm]}]")
    assert result.returncode == 2 and "rpm" in result.stderr and "Traceback" not in result.stderr


def test_detection_trains_under_ddp_and_its_epoch_metrics_see_each_image_once(tmp_path):
    """Two gloo ranks, 15 validation images (one repeated by the sampler): the detection metrics
    logged per epoch equal the one-process final evaluation of the same checkpoint."""
    out = tmp_path / "ddp"
    phantom = PHANTOM.replace("n_val: 16", "n_val: 15")
    result = run_cli("train", "four-task", "--out", str(out), phantom, SMALL_ENCODER, "model.tasks.0.num_classes=3",
                     "trainer.strategy=ddp", "trainer.devices=2", "trainer.max_epochs=1", "trainer.n_bootstrap=20",
                     "trainer.progress_bar=false", "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["detection"]["n"] == 15
    epoch = pd.read_csv(out / "logs" / "csv" / "metrics.csv").dropna(subset=["val/detection/froc_score"]).iloc[-1]
    for metric in ("froc_score", "ap50", "tpr_fpi_4"):
        assert epoch[f"val/detection/{metric}"] == pytest.approx(metrics["detection"][metric], abs=1e-6), metric
