"""Helpers shared by tests: tiny synthetic samples, a tiny run configuration, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from medmtl.data.boxes import boxes_from_label_map


def make_samples(n: int = 4, size: int = 32, channels: int = 1, with_label=True, with_mask=True,
                 with_value=False, with_survival=False, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        sample = {"image": torch.rand(channels, size, size, generator=g), "name": f"s{i}"}
        lab = i % 2
        if (with_label is True) or (callable(with_label) and with_label(i)):
            sample["label"] = torch.tensor(lab)
        if (with_mask is True) or (callable(with_mask) and with_mask(i)):
            mask = torch.zeros(size, size, dtype=torch.long)
            mask[4 + i: 12 + i, 6: 14 + 2 * lab] = 1
            sample["mask"] = mask
        if (with_value is True) or (callable(with_value) and with_value(i)):
            sample["value"] = torch.tensor(float(i))
        if (with_survival is True) or (callable(with_survival) and with_survival(i)):
            sample["survival"] = torch.tensor([10.0 + i, float(i % 2)])
        samples.append(sample)
    return samples



def tiny_config(**trainer) -> dict:
    return {
        "seed": 0,
        "data": {"kind": "phantom", "image_size": 32, "batch_size": 16,
                 "phantom": {"n_train": 48, "n_val": 24, "seed": 1}},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 8, "stages": 3}},
                  "tasks": [{"kind": "classification"}, {"kind": "segmentation"},
                            {"kind": "reconstruction"}]},
        "trainer": {"max_epochs": 2, "n_bootstrap": 50, "progress_bar": False, **trainer},
    }



def write_run(folder, config, model, checkpoint: str = "best.ckpt", global_step: int = 1):
    """``folder`` as training leaves a run directory: ``config.yaml`` (a ``RunConfig``) and a checkpoint
    holding ``model``'s weights under ``model.*`` — for tests that need a run, not the training."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    (folder / "checkpoints").mkdir(exist_ok=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 0,
                "global_step": global_step}, folder / "checkpoints" / checkpoint)
    return folder


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``medmtl`` in a fresh process (as a user would), capturing its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "medmtl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def square_sample(index: int, size: int = 64, lesion: bool = True, seed: int = 0) -> dict:
    """A noisy image with one bright square lesion (class ``index % 2``) or none."""
    g = torch.Generator().manual_seed(seed + index)
    image = 0.2 * torch.rand(1, size, size, generator=g)
    mask = torch.zeros(size, size, dtype=torch.long)
    if lesion:
        side = 10 + int(torch.randint(0, 14, (1,), generator=g))
        y, x = (int(v) for v in torch.randint(2, size - side - 2, (2,), generator=g))
        mask[y:y + side, x:x + side] = 1
        image[0][mask > 0] += 0.7
    boxes, labels = boxes_from_label_map(mask.numpy())
    return {"image": image, "name": f"sq{index}", "mask": mask, "boxes": torch.from_numpy(boxes),
            "box_labels": torch.from_numpy(labels), "label": torch.tensor(index % 2)}
