"""Prediction on volumes: masks written on exactly the input's grid, sliding window beyond the training size."""

import json

import numpy as np
import pytest
import torch

sitk = pytest.importorskip("SimpleITK", reason="the 'volumes' extra (SimpleITK) is not installed")

from medmtl.builders import build_model  # noqa: E402
from medmtl.config import config_from_dict  # noqa: E402
from medmtl.predict import predict_files  # noqa: E402


def _write_volume(path, shape_zyx, spacing, origin, direction, seed=0):
    rng = np.random.default_rng(seed)
    array = rng.normal(0, 50, shape_zyx).astype(np.float32)
    array[tuple(slice(s // 3, 2 * s // 3) for s in shape_zyx)] += 300
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return image


def _config(tmp_path, crop="center"):
    (tmp_path / "data.csv").write_text("image,label\n")
    return config_from_dict({
        "data": {"kind": "manifest", "manifest": str(tmp_path / "data.csv"), "image_size": [8, 16, 16],
                 "volume": {"spacing": [1.5, 1.5, 2.0], "intensity": "window", "window": [-100, 400], "crop": crop}},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 4, "stages": 3}},
                  "tasks": [{"kind": "classification"}, {"kind": "segmentation"}, {"kind": "survival"}]},
    })


@pytest.mark.parametrize("crop", ["center", "none"])
def test_predicted_masks_have_the_input_geometry(tmp_path, crop):
    flipped = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    inputs = [(tmp_path / "a.nii.gz", (10, 30, 26), (0.8, 0.7, 2.5), (-12.5, 30.0, 7.0), flipped),
              (tmp_path / "b.nrrd", (20, 40, 36), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))]
    written = {path: _write_volume(path, *rest, seed=i) for i, (path, *rest) in enumerate(inputs)}
    config = _config(tmp_path, crop)
    torch.manual_seed(0)
    model = build_model(config).eval()
    seen = []
    forward = model.forward
    model.forward = lambda image, *a, **k: seen.append(tuple(image.shape)) or forward(image, *a, **k)  # type: ignore
    results = predict_files(config, model, list(written), tmp_path / "out")

    for path, reference in written.items():
        entry = results[str(path)]
        assert len(entry["classification"]) == 2 and isinstance(entry["survival"], (float, list))
        mask = sitk.ReadImage(str(tmp_path / "out" / entry["segmentation"]["mask"]))
        assert mask.GetSize() == reference.GetSize()
        np.testing.assert_allclose(mask.GetSpacing(), reference.GetSpacing(), rtol=1e-6)
        np.testing.assert_allclose(mask.GetOrigin(), reference.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(mask.GetDirection(), reference.GetDirection(), atol=1e-6)
        assert (tmp_path / "out" / "overlays" / f"{path.name.split('.')[0]}.png").is_file()
    assert all(shape[2:] == (8, 16, 16) for shape in seen), seen  # whole pass, or windows of the training size
    if crop == "none":  # volumes larger than the training size went through a sliding window
        assert len(seen) > len(inputs)
    else:
        assert len(seen) == len(inputs)
    coco = json.loads((tmp_path / "out" / "boxes.json").read_text())
    assert coco["annotations"] == []


def test_window_and_overlap_choose_the_sliding_windows(tmp_path):
    from medmtl.cli import _window
    from medmtl.errors import ConfigError

    path = tmp_path / "big.nii.gz"
    _write_volume(path, (20, 40, 36), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    config = _config(tmp_path, crop="none")
    model = build_model(config).eval()
    counts = {}
    for window, overlap in [((8, 16, 16), 0.25), ((8, 16, 16), 0.5), ((4, 8, 8), 0.25)]:
        seen = []
        forward = model.forward
        model.forward = lambda image, *a, **k: seen.append(tuple(image.shape)) or forward(image, *a, **k)  # type: ignore
        predict_files(config, model, [path], tmp_path / f"out{window[0]}-{overlap}", overlays=False,
                      window=window, overlap=overlap)
        model.forward = forward  # type: ignore
        assert all(shape[2:] == window for shape in seen), seen
        counts[(window, overlap)] = sum(shape[0] for shape in seen)  # windows run (batched by 4)
    assert counts[((8, 16, 16), 0.5)] > counts[((8, 16, 16), 0.25)]  # more overlap: more windows
    assert counts[((4, 8, 8), 0.25)] > counts[((8, 16, 16), 0.25)]  # smaller windows: more of them
    assert _window("6", 0.25) == (6,) and _window("4,8,8", 0.0) == (4, 8, 8) and _window(None, 0.5) is None
    for bad, overlap in [("0,8,8", 0.25), ("4,8", 0.25), ("big", 0.25), (None, 1.0), (None, -0.1)]:
        with pytest.raises(ConfigError):
            _window(bad, overlap)
