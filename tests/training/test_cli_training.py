"""The command line as a user runs it: train, kill, resume, DDP, evaluate, predict."""

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from PIL import Image

from helpers import run_cli

pytestmark = pytest.mark.slow

BATCHES_PER_EPOCH = 3  # 48 phantom training images, batch size 16


def test_killed_run_resumes_from_last_checkpoint(tiny_config_file, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "medmtl.cli", "train", str(tiny_config_file), "--out", str(out),
            "trainer.max_epochs=6", "--no-report"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.exists(), "no checkpoint was written before the kill"
    finished_steps = torch.load(last, weights_only=False)["global_step"]
    assert finished_steps < 6 * BATCHES_PER_EPOCH, "the run finished before it could be killed"

    result = run_cli("train", str(tiny_config_file), "--out", str(out), "trainer.max_epochs=6", "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Restored all states from the checkpoint" in result.stdout + result.stderr
    assert torch.load(last, weights_only=False)["global_step"] == 6 * BATCHES_PER_EPOCH
    assert json.loads((out / "metrics.json").read_text())["classification"]["n"] == 24


def test_ddp_two_cpu_processes(tiny_config_file, tmp_path):
    """23 validation images on 2 ranks: the sampler repeats one to give both ranks 12; the per-epoch
    validation metrics (logged under DDP) must still see every image once, so they equal the final
    one-process evaluation of the same (only) checkpoint."""
    out = tmp_path / "ddp"
    result = run_cli("train", str(tiny_config_file), "--out", str(out), "trainer.strategy=ddp",
                     "trainer.devices=2", "trainer.max_epochs=1", "data.phantom.n_val=23", "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classification"]["n"] == 23  # final evaluation on one process sees every sample once
    log = pd.read_csv(out / "logs" / "csv" / "metrics.csv")
    epoch = log.dropna(subset=["val/classification/auc"]).iloc[-1]
    for task, metric in [("classification", "auc"), ("classification", "accuracy"), ("segmentation", "dice")]:
        assert epoch[f"val/{task}/{metric}"] == pytest.approx(metrics[task][metric], abs=1e-6), (task, metric)


def test_train_evaluate_predict_and_report(tiny_config_file, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", str(tiny_config_file), "--out", str(out), "trainer.max_epochs=1")
    assert result.returncode == 0, result.stdout + result.stderr
    console = result.stdout + result.stderr
    assert "training on cpu" in console and "validation metrics" in console  # the device used, the results
    for noise in ("Tip:", "GPU available", "was configured so", "Warning", "deprecated", "v_num"):
        assert noise not in console, noise  # Lightning's advertising and the dependencies' warnings
    report = out / "report" / "report.md"
    assert report.exists()
    text = report.read_text()
    assert "auc" in text and "overlays.png" in text and "loss_curves.png" in text
    assert (out / "report" / "roc_classification.png").exists()

    result = run_cli("--quiet", "evaluate", str(out), "--split", "val")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((out / "metrics_val.json").read_text())["segmentation"]["n"] == 24
    quiet = result.stdout + result.stderr
    assert "metrics_val.json" in quiet and "auc" not in quiet  # what was written, no table
    assert "checkpoint:" not in quiet
    result = run_cli("evaluate", str(out), "--split", "test")
    assert result.returncode == 2 and "--split" in result.stderr
    result = run_cli("evaluate", str(out), "--out", str(tmp_path / "other.json"), "data.phantom.n_val=12", "--report")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "other.json").read_text())["segmentation"]["n"] == 12
    assert "| segmentation | n | 12 |" in (out / "report" / "report.md").read_text()  # the report was rewritten
    result = run_cli("evaluate", str(out), "model.tasks.0.kind=regression")
    assert result.returncode == 2 and "only data.*" in result.stderr and "Traceback" not in result.stderr

    images = []
    for i in range(2):
        path = tmp_path / f"img{i}.png"
        Image.fromarray((torch.rand(40, 50) * 255).byte().numpy()).save(path)
        images.append(str(path))
    result = run_cli("predict", str(out), *images, "--out", str(tmp_path / "pred"))
    assert result.returncode == 0, result.stdout + result.stderr
    predictions = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(predictions[images[0]]["classification"]) == 2
    mask = Image.open(tmp_path / "pred" / "masks" / "img0_segmentation.png")
    assert mask.size == (50, 40)
    assert "annotations" in json.loads((tmp_path / "pred" / "boxes.json").read_text())


def test_cli_errors_are_clear(tmp_path):
    result = run_cli("train", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("evaluate", str(tmp_path))
    assert result.returncode == 2 and "config.yaml" in result.stderr
    result = run_cli("predict", str(tmp_path), str(tmp_path / "none.png"), "--out", str(tmp_path / "p"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"], ["demo"], ["presets"]])
def test_help_everywhere(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_version_and_preset_descriptions():
    from medmtl import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"medmtl {__version__}"
    result = run_cli("presets")
    lines = result.stdout.splitlines()
    assert any(line.startswith("four-task") for line in lines)
    # whole first sentences, not the first line of a comment cut mid-sentence
    assert all(line.rstrip().endswith(".") for line in lines), lines


def test_compare_only_trains_the_named_variants_and_compares_nothing(tiny_config_file, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", str(tiny_config_file), "--out", str(out), "--no-report", "trainer.max_epochs=1"]
    result = run_cli(*args, "--only", "single-segmentation")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "single-segmentation" / "split1" / "metrics.json").is_file()
    assert not (out / "multi-task").exists() and not (out / "single-classification").exists()
    assert not (out / "comparison.json").exists()
    result = run_cli(*args, "--only", "single-segmentaton")
    assert result.returncode != 0
    assert "--only" in result.stderr and "single-segmentaton" in result.stderr and "multi-task" in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_trains_every_variant_with_reports_and_skips_finished_runs(tiny_config_file, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", str(tiny_config_file), "--out", str(out), "--splits", "1,2", "trainer.max_epochs=1"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    comparison = json.loads((out / "comparison.json").read_text())
    summary = comparison["variants"]
    assert set(summary) == {"single-classification", "single-segmentation", "multi-task"}
    assert len(summary["multi-task"]["classification"]["auc"]["values"]) == 2
    for variant in summary:
        assert (out / variant / "split2" / "report" / "report.md").exists()
    assert (out / "single-classification" / "split1" / "report" / "roc_classification.csv").exists()
    # paired differences on the same validation images, per split and over splits
    paired = comparison["paired"]["multi-task"]
    auc = paired["splits"]["1"]["tasks"]["classification"]["auc"]
    assert set(auc) == {"multi", "single", "delta", "delta_ci95", "verdict"}
    assert auc["delta"] == pytest.approx(summary["multi-task"]["classification"]["auc"]["values"][0]
                                         - summary["single-classification"]["classification"]["auc"]["values"][0])
    assert paired["splits"]["1"]["n"]["segmentation"] == 24  # every validation image, paired
    assert paired["tasks"]["segmentation"]["dice"]["verdict"] in ("helped", "hurt", "no evidence", "mixed")
    text = (out / "comparison.md").read_text()
    assert "multi-task" in text and "Did multi-task help?" in text and "Δm%" in text
    assert (out / "paired_differences.png").is_file()

    before = (out / "multi-task" / "split1" / "metrics.json").stat().st_mtime_ns
    result = run_cli(*args)  # everything finished: nothing is trained again
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "multi-task" / "split1" / "metrics.json").stat().st_mtime_ns == before
