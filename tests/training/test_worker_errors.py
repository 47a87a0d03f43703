"""A data error in a loader worker process reaches the user as the same one line as without workers."""

import numpy as np
import pytest
import torch
import yaml
from helpers import run_cli
from PIL import Image
from torch.utils.data import Dataset

from medmtl.errors import DataError
from medmtl.training.loaders import CarriedError, make_loader


class BrokenAt(Dataset):
    """Samples 0..n-1; sample ``bad`` raises a DataError (in a batch, or in the batch's collation)."""

    def __init__(self, n: int = 6, bad: int = 3) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if index == self.bad:
            raise DataError(f"/data/img{index}.png", "cannot be read as an image: truncated file")
        return {"image": torch.full((1, 4, 4), float(index)), "name": f"s{index}"}


@pytest.mark.parametrize("num_workers", [0, 1])
@pytest.mark.parametrize("shuffle", [False, True])
def test_worker_errors_are_raised_as_themselves(num_workers, shuffle):
    loader = make_loader(BrokenAt(), batch_size=2, num_workers=num_workers, shuffle=shuffle)
    with pytest.raises(DataError) as info:
        for _ in loader:
            pass
    error = info.value
    assert type(error) is DataError and error.path == "/data/img3.png" and error.problem.endswith("truncated file")
    assert str(error) == "/data/img3.png: cannot be read as an image: truncated file"


def test_carried_error_keeps_class_message_and_attributes():
    carried = CarriedError(DataError("/x.png", "broken"))
    again = carried.error()
    assert type(again) is DataError and str(again) == "/x.png: broken" and (again.path, again.problem) == ("/x.png", "broken")


@pytest.mark.slow
def test_cli_with_workers_prints_one_line_naming_the_corrupt_file(tmp_path):
    (tmp_path / "img").mkdir()
    rows = ["image,label"]
    for i in range(12):
        path = tmp_path / "img" / f"c{i}.png"
        if i == 5:
            path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
        else:
            Image.fromarray(np.full((16, 16), 20 * i, np.uint8)).save(path)
        rows.append(f"img/c{i}.png,{i % 2}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    config = {"data": {"kind": "manifest", "manifest": str(tmp_path / "m.csv"), "label_col": "label",
                       "mask_col": None, "image_size": 16, "batch_size": 4, "num_workers": 1},
              "model": {"encoder": {"name": "small_cnn", "options": {"width": 4, "stages": 2}},
                        "tasks": [{"kind": "classification"}]},
              "trainer": {"max_epochs": 1, "n_bootstrap": 10, "progress_bar": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--no-report")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "RuntimeError" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "c5.png: cannot be read as an image" in errors[0], result.stderr
