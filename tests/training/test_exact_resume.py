"""A run interrupted at any point and resumed ends with the uninterrupted run's weights, bit for bit (CPU,
``trainer.deterministic``), and keeps the training history of the epochs before the interruption."""

import csv
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from helpers import run_cli, tiny_config
from lightning.pytorch import Callback
from torch.utils.data import Dataset

import medmtl.training.run as run
from medmtl.config import config_from_dict
from medmtl.training.loaders import make_loader
from medmtl.training.resume import HistoryCSVLogger, stretch_cosine


def resume_config(**trainer) -> dict:
    """Small and random everywhere: shuffling, augmentation (flips, rotation) and dropout."""
    config = tiny_config(max_epochs=3, n_bootstrap=10, log_every_n_steps=1, num_threads=1, **trainer)
    config["data"].update({"batch_size": 4, "augment": {"hflip": True, "rotate_degrees": 15},
                           "phantom": {"n_train": 16, "n_val": 8, "seed": 1}})
    config["model"]["tasks"] = [{"kind": "classification", "dropout": 0.3}, {"kind": "segmentation"}]
    return config


def weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def csv_rows(run_dir):
    with open(run_dir / "logs" / "csv" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_run(reference, resumed):
    a, b = weights(reference), weights(resumed)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"])
    assert a["state_dict"].keys() == b["state_dict"].keys()
    different = [key for key in a["state_dict"] if not torch.equal(a["state_dict"][key], b["state_dict"][key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    rows_a, rows_b = csv_rows(reference), csv_rows(resumed)
    assert rows_b == rows_a  # every epoch's rows, the same values
    assert {int(row["epoch"]) for row in rows_b} == set(range(a["epoch"] + 1))


class RandomFlip(Dataset):
    """Draws from torch's global RNG in ``__getitem__``, like the augmentations."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> dict:
        return {"image": torch.full((1, 2, 2), float(index)) + torch.rand(()), "name": str(index)}


def _epoch_batches(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [(batch["name"], batch["image"]) for batch in loader]


def test_order_and_augmentation_are_functions_of_seed_and_epoch():
    in_process = make_loader(RandomFlip(), batch_size=3, num_workers=0, shuffle=True, seed=7)
    torch.manual_seed(0)
    expected_next = torch.rand(3)
    torch.manual_seed(0)
    first = _epoch_batches(in_process, 1)
    assert torch.equal(torch.rand(3), expected_next)  # loading did not shift the main process's RNG
    again = _epoch_batches(make_loader(RandomFlip(), batch_size=3, num_workers=0, shuffle=True, seed=7), 1)
    workers = _epoch_batches(make_loader(RandomFlip(), batch_size=3, num_workers=2, shuffle=True, seed=7), 1)
    for other in (again, workers):
        assert [names for names, _ in other] == [names for names, _ in first]
        assert all(torch.equal(x, y) for (_, x), (_, y) in zip(other, first))
    second = _epoch_batches(in_process, 2)
    assert [names for names, _ in second] != [names for names, _ in first]


def test_csv_history_keeps_finished_epochs_and_appends(tmp_path):
    folder = tmp_path / "logs" / "csv"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("epoch,step,train/loss\n0,0,1.5\n0,1,1.4\n1,2,1.3\n2,3,1.2\n2,4,1.")
    logger = HistoryCSVLogger(tmp_path / "logs", name="", version="csv")
    logger.keep_epochs_before(2)  # resumed at epoch 2: its rows (and a line cut short) are dropped
    logger.log_metrics({"train/loss": 1.1, "val/loss": 2.0, "epoch": 2}, step=3)  # written at once, new column
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    assert [(r["epoch"], r["step"], r["train/loss"], r["val/loss"]) for r in rows] == [
        ("0", "0", "1.5", ""), ("0", "1", "1.4", ""), ("1", "2", "1.3", ""), ("2", "3", "1.1", "2.0")]
    HistoryCSVLogger(tmp_path / "logs", name="", version="csv").keep_epochs_before(0)  # a fresh run
    assert not (folder / "metrics.csv").exists()


def test_more_epochs_stretch_the_cosine_schedule():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # the end of the 2-epoch schedule
    stretch_cosine(scheduler, 4)
    lrs = []
    for _ in range(2):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [(1 + math.cos(math.pi * t / 4)) / 2 for t in (2, 3)]
    assert lrs == pytest.approx(expected) and optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_run_interrupted_mid_epoch_resumes_bit_identically(tmp_path, monkeypatch):
    config = config_from_dict(resume_config())
    run.train(config, tmp_path / "reference")

    class Interrupt(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 2:
                raise _Interrupted

    make_trainer = run._make_trainer

    def interrupted_trainer(*args):
        trainer = make_trainer(*args)
        trainer.callbacks.append(Interrupt())
        return trainer

    monkeypatch.setattr(run, "_make_trainer", interrupted_trainer)
    with pytest.raises(_Interrupted):
        run.train(config, tmp_path / "resumed")
    assert weights(tmp_path / "resumed")["epoch"] == 0
    monkeypatch.setattr(run, "_make_trainer", make_trainer)
    torch.rand(5)  # the process's RNGs are elsewhere now, as in a new process
    run.train(config, tmp_path / "resumed")
    assert_same_run(tmp_path / "reference", tmp_path / "resumed")


def _epoch_of_last_checkpoint(run_dir):
    try:
        return weights(run_dir)["epoch"]
    except (FileNotFoundError, EOFError, RuntimeError):
        return None


def _started_epoch_after(run_dir, epoch) -> bool:
    try:
        return any(int(row["epoch"]) > epoch and row.get("train/loss", "") != "" for row in csv_rows(run_dir))
    except (FileNotFoundError, KeyError, ValueError):
        return False


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_ends_with_the_uninterrupted_weights(tmp_path):
    config_file = tmp_path / "resume.yaml"
    config_file.write_text(yaml.safe_dump(resume_config()))

    def command(out):
        return [sys.executable, "-m", "medmtl.cli", "train", str(config_file), "--out", str(out), "--no-report"]

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "reference.log", "w") as log:
        reference = subprocess.Popen(command(tmp_path / "reference"), stdout=log, stderr=subprocess.STDOUT, env=env)
    out = tmp_path / "run"
    with open(tmp_path / "killed.log", "w") as log:
        victim = subprocess.Popen(command(out), stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and victim.poll() is None:
            epoch = _epoch_of_last_checkpoint(out)
            if epoch is not None and _started_epoch_after(out, epoch):
                break
            time.sleep(0.05)
        assert victim.poll() is None, "the run finished (or failed) before it could be killed:\n" + \
            (tmp_path / "killed.log").read_text()[-3000:]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    finally:
        if victim.poll() is None:
            victim.kill()
    killed_at = weights(out)
    assert killed_at["global_step"] < 3 * 4, "nothing was left to resume"
    assert (out / ".lock").exists()  # killed: nobody released it

    result = run_cli("train", str(config_file), "--out", str(out), "--no-report")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stale lock" in result.stderr and "Restored all states from the checkpoint" in result.stdout + result.stderr
    assert reference.wait(timeout=300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    assert_same_run(tmp_path / "reference", out)
