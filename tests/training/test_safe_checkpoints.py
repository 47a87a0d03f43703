"""A checkpoint file cannot run code: every command that reads one loads it weights-only and
refuses, with one error line naming the file, a checkpoint that would need more; and
``--checkpoint best|last|PATH`` picks which one evaluate and predict use."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
import torch
import yaml
from helpers import tiny_config
from PIL import Image
from typer.testing import CliRunner

from medmtl.cli import app
from medmtl.config import config_from_dict
from medmtl.errors import DataError
from medmtl.training.checkpoint_io import AtomicCheckpointIO
from medmtl.training.safe_load import load_checkpoint_file


class _TouchOnLoad:
    """Unpickling this creates ``path``: a stand-in for a checkpoint that runs code."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _poison(checkpoint: pathlib.Path, marker: pathlib.Path, base: dict | None = None) -> None:
    """Rewrite ``checkpoint`` as itself (or ``base``) plus an object whose unpickling creates ``marker``."""
    content = dict(base) if base is not None else torch.load(checkpoint, map_location="cpu", weights_only=True)
    content["callbacks"] = {**content.get("callbacks", {}), "Evil": _TouchOnLoad(marker)}
    torch.save(content, checkpoint)


def _plain_checkpoint() -> dict:
    return {"epoch": 0, "global_step": 3, "state_dict": {"model.w": torch.ones(2)}, "loops": {"fit_loop": {"n": 1}}}


# -- fast: the loader itself --------------------------------------------------------------------

def test_the_payload_really_runs_code_when_unpickled_unsafely(tmp_path):
    """Guards the tests below: without weights_only the poisoned file does create the marker."""
    path, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    _poison(path, marker, base=_plain_checkpoint())
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_checkpoint_file_refuses_code_and_names_the_file_and_global(tmp_path):
    path, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    _poison(path, marker, base=_plain_checkpoint())
    with pytest.raises(DataError, match=r"evil\.ckpt: is not a plain medmtl checkpoint: it needs .*pathlib.* "
                                        r"to load, which could run code; refusing to load it"):
        load_checkpoint_file(path)
    with pytest.raises(DataError, match="could run code"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)  # Lightning's resume path; the flag is ignored
    assert not marker.exists()


def test_load_checkpoint_file_reads_plain_checkpoints_and_explains_bad_files(tmp_path):
    path = tmp_path / "ok.ckpt"
    torch.save(_plain_checkpoint(), path)
    assert load_checkpoint_file(path)["global_step"] == 3
    assert AtomicCheckpointIO().load_checkpoint(path)["state_dict"]["model.w"].sum() == 2
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(DataError, match=r"text\.ckpt: cannot be read as a plain medmtl checkpoint"):
        load_checkpoint_file(tmp_path / "text.ckpt")
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint_file(tmp_path / "missing.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(DataError, match="not a dict"):
        load_checkpoint_file(tmp_path / "list.ckpt")


# -- through the command line, on a real run ----------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from medmtl.training.run import train

    run = tmp_path_factory.mktemp("safe") / "run"
    train(config_from_dict(tiny_config(max_epochs=1)), run)
    return run


@pytest.fixture
def run_copy(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _assert_refused(result, checkpoint: pathlib.Path, marker: pathlib.Path) -> None:
    output = result.output
    assert result.exit_code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert str(checkpoint) in errors[0] and "is not a plain medmtl checkpoint" in errors[0], output
    assert "refusing to load it" in errors[0] and "Traceback" not in output
    assert not marker.exists(), "unpickling the checkpoint ran code"


@pytest.mark.slow
def test_commands_refuse_checkpoints_that_run_code(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    best, last = run_copy / "checkpoints" / "best.ckpt", run_copy / "checkpoints" / "last.ckpt"
    _poison(best, marker)
    _poison(last, marker)
    image = tmp_path / "img.png"
    Image.fromarray((torch.rand(32, 32) * 255).byte().numpy()).save(image)

    _assert_refused(_cli("evaluate", run_copy), best, marker)
    _assert_refused(_cli("evaluate", run_copy, "--checkpoint", "last"), last, marker)
    _assert_refused(_cli("predict", run_copy, image, "--out", tmp_path / "pred"), best, marker)

    from medmtl.wsi import make_synthetic_slide

    slide = make_synthetic_slide(tmp_path / "slide.tif", 512, 384, label=1, seed=3)
    _assert_refused(_cli("compress", slide.path, "--encoder", run_copy, "--out", tmp_path / "grids",
                         "--mpp", "1.0", "--patch-size", "64"), best, marker)

    config = tmp_path / "config.yaml"  # resuming goes through Lightning's checkpoint IO
    config.write_text(yaml.safe_dump(tiny_config(max_epochs=2)))
    _assert_refused(_cli("train", config, "--out", run_copy, "--no-report"), last, marker)


@pytest.mark.slow
def test_checkpoint_option_picks_best_last_or_a_path(run_copy, tmp_path):
    last = run_copy / "checkpoints" / "last.ckpt"
    result = _cli("evaluate", run_copy)
    assert result.exit_code == 0, result.output
    used = json.loads((run_copy / "metrics_val.checkpoint.json").read_text())
    assert used["checkpoint"] == str(run_copy / "checkpoints" / "best.ckpt") and used["split"] == "val"
    assert used["epochs"] == 1 and used["global_step"] == 3
    assert "checkpoint: " in result.output

    copy = tmp_path / "epoch1.ckpt"
    shutil.copy(last, copy)
    for choice, expected in (("last", last), (copy, copy)):
        out = tmp_path / f"metrics_{pathlib.Path(choice).stem}.json"
        result = _cli("evaluate", run_copy, "--checkpoint", choice, "--out", out)
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["classification"]["n"] == 24
        assert json.loads(out.with_name(f"{out.stem}.checkpoint.json").read_text())["checkpoint"] == str(expected)

    image = tmp_path / "img.png"
    Image.fromarray((torch.rand(32, 32) * 255).byte().numpy()).save(image)
    result = _cli("predict", run_copy, image, "--out", tmp_path / "pred", "--checkpoint", "last")
    assert result.exit_code == 0, result.output
    assert str(last) in result.output and (tmp_path / "pred" / "predictions.json").exists()

    result = _cli("evaluate", run_copy, "--checkpoint", tmp_path / "nope.ckpt")
    assert result.exit_code == 2 and "nope.ckpt: checkpoint does not exist" in result.output
    last.unlink()
    result = _cli("predict", run_copy, image, "--out", tmp_path / "pred2", "--checkpoint", "last")
    assert result.exit_code == 2 and "last.ckpt: does not exist" in result.output
