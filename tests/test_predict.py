"""Prediction sees exactly the tensors that training and evaluation see for the same file."""

import numpy as np
import pytest
import torch
from PIL import Image

from medmtl.builders import build_model
from medmtl.config import config_from_dict
from medmtl.data.build import build_datasets
from medmtl.predict import predict_files


@pytest.mark.parametrize("channels", [1, 3])
def test_predict_input_equals_the_evaluation_sample(tmp_path, channels):
    rng = np.random.default_rng(0)
    files = []
    for i, (height, width) in enumerate([(50, 70), (64, 64)]):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        files.append(path)
    (tmp_path / "data.csv").write_text("image,label\n" + "".join(f"{p.name},{i}\n" for i, p in enumerate(files)))
    config = config_from_dict({
        "data": {"kind": "manifest", "manifest": str(tmp_path / "data.csv"), "label_col": "label",
                 "channels": channels, "image_size": 32, "split_val": str(tmp_path / "val.txt")},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 4, "stages": 3}},
                  "tasks": [{"kind": "classification"}, {"kind": "segmentation"}]},
    })
    (tmp_path / "val.txt").write_text("img1\n")
    evaluation = build_datasets(config.data)
    expected = {"img0": evaluation["train"][0]["image"], "img1": evaluation["val"][0]["image"]}

    model = build_model(config).eval()
    seen = []
    original = model.predict
    model.predict = lambda image: seen.append(image.clone()) or original(image)  # type: ignore[method-assign]
    results = predict_files(config, model, files, tmp_path / "out")

    assert [tuple(s.shape) for s in seen] == [(1, channels, 32, 32)] * 2
    for path, image in zip(files, seen):
        torch.testing.assert_close(image[0], expected[path.stem], rtol=0, atol=0)
    # masks come back at each file's own size
    mask = np.array(Image.open(tmp_path / "out" / results[str(files[0])]["segmentation"]["mask"]))
    assert mask.shape == (50, 70)
    assert (tmp_path / "out" / "overlays" / "img0.png").is_file()
