"""Heat maps of slide-level models (``medmtl show-grid --explain``): a model trained on grids whose
targets come from one known block of cells must point at that block, not at an equally strong
block that carries no information."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import tiny_config, write_run
from typer.testing import CliRunner

from medmtl import grid_store
from medmtl.builders import build_model
from medmtl.cli import app
from medmtl.config import config_from_dict
from medmtl.data.build import build_datasets, inference_dataset
from medmtl.data.collate import collate_samples
from medmtl.data.grid import centre_window
from medmtl.encoders import create_encoder
from medmtl.errors import ConfigError, DataError
from medmtl.model import MultiTaskModel
from medmtl.tasks import ReconstructionTask, SegmentationTask
from medmtl.wsi.explain import (
    check_grid_model,
    check_method,
    explain_store,
    explained_outputs,
    to_store_grid,
)
from medmtl.wsi.visualize import render_attributions

pytest.importorskip("zarr")
pytest.importorskip("matplotlib")

CHANNELS, SIZE = 8, 12
#: the cells whose embeddings set every target
REGION = (slice(2, 6), slice(6, 10))
#: as strong a signal (another direction of the embedding space), unrelated to the targets
DISTRACTOR = (slice(7, 11), slice(1, 5))
HEADS = ("classification", "regression", "survival")


def _mask(region: tuple[slice, slice]) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[region] = True
    return mask


def write_store(folder, name, grid, tissue, **attrs):
    """A finished store of ``grid [C, H, W]`` (zeros off ``tissue``)."""
    height, width = tissue.shape
    store = grid_store.create_or_resume(folder, name, grid.shape[0], tissue, np.zeros((height, width, 2), np.int64),
                                        {"encoder": "synthetic", **attrs})
    for row in range(height):
        store.write_row(row, np.where(tissue[row], grid[:, row], 0.0))
    return grid_store.finish(store)


def region_grid(rng, signal, distractor, directions):
    """``[C, 12, 12]`` noise, plus ``signal`` along one direction in REGION and ``distractor`` along an
    orthogonal one in DISTRACTOR; the last column and three corner cells are background."""
    grid = rng.normal(0, 0.5, size=(CHANNELS, SIZE, SIZE)).astype(np.float32)
    grid[:, REGION[0], REGION[1]] += (2 * signal * directions[0])[:, None, None]
    grid[:, DISTRACTOR[0], DISTRACTOR[1]] += (2 * distractor * directions[1])[:, None, None]
    tissue = np.ones((SIZE, SIZE), dtype=bool)
    tissue[:, -1] = False
    tissue[0, :3] = False
    return grid, tissue


@pytest.fixture(scope="module")
def region_data(tmp_path_factory):
    """48 stores: class 1 when the REGION signal a ~ U(0, 3) exceeds 1.5, value a, survival time
    falling with a; and a probe slide with a strong signal and an as strong distractor."""
    folder = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(2, CHANNELS))
    first /= np.linalg.norm(first)
    second -= (second @ first) * first
    directions = (first, second / np.linalg.norm(second))
    lines = ["grid,label,value,time,event"]
    for i in range(48):
        signal = float(rng.uniform(0, 3))
        write_store(folder, f"g{i}", *region_grid(rng, signal, float(rng.uniform(0, 3)), directions))
        time = 300 * np.exp(-signal + rng.normal(0, 0.2)) + 1
        lines.append(f"g{i}.zarr,{int(signal > 1.5)},{signal:.3f},{time:.1f},{int(rng.random() < 0.9)}")
    (folder / "grids.csv").write_text("\n".join(lines) + "\n")
    probe = write_store(folder, "probe", *region_grid(rng, 2.5, 2.5, directions))
    return SimpleNamespace(folder=folder, manifest=folder / "grids.csv", probe=probe)


def grid_config(manifest, channels=CHANNELS, tasks=None, **data):
    return config_from_dict({
        "seed": 0,
        "data": {"kind": "grid", "manifest": str(manifest), "channels": channels, "grid_size": SIZE, "batch_size": 8,
                 "label_col": "label", "classes": ["0", "1"], "value_cols": ["value"], "time_col": "time",
                 "event_col": "event", "val_fraction": 0.25, "grid_augment": False, **data},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 8, "stages": 1, "norm": "batch"}},
                  "tasks": tasks or [{"kind": kind} for kind in HEADS]},
    })


@pytest.fixture(scope="module")
def trained(region_data):
    """The run's model trained on the train split with the tasks' own losses (300 Adam steps of 8
    slides: about a second on one thread; Lightning's per-epoch overhead would dominate)."""
    config = grid_config(region_data.manifest)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model(config)
        data = build_datasets(config.data)["train"]
        samples = [data[i] for i in range(len(data))]
        optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
        model.train()
        for _ in range(300):
            batch = collate_samples([samples[i] for i in torch.randperm(len(samples))[:8]])
            loss = sum(model.losses(model(batch["image"]), batch).values())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return config, model.eval()


@pytest.fixture(scope="module")
def trained_run(trained, tmp_path_factory):
    """The trained model as a run directory (config.yaml and a checkpoint, as training leaves them)."""
    config, model = trained
    return write_run(tmp_path_factory.mktemp("run"), config, model, global_step=300)


@pytest.mark.parametrize("method, size", [("gradient", 1), ("occlusion", 1), ("occlusion", 2)])
@pytest.mark.parametrize("head", HEADS)
def test_the_map_points_at_the_region_that_sets_the_target(trained, region_data, head, method, size):
    config, model = trained
    explanation = explain_store(config, model, grid_store.open_grid(region_data.probe), method, size)
    signed = explanation.maps[head]
    values = np.abs(signed)
    region, distractor = _mask(REGION), _mask(DISTRACTOR)
    inside = np.nanmean(values[region])
    # an untrained model scores the two blocks alike (ratio ~1-2): the map follows what the model learnt
    assert inside > 3 * np.nanmean(values[distractor])
    assert inside > 3 * np.nanmean(values[~region])
    assert region[np.unravel_index(np.nanargmax(values), values.shape)]
    assert np.nanmean(signed[region]) > 0  # the signal raises P(class 1), the value and the risk


def test_only_tissue_cells_in_the_models_window_get_values(trained, tmp_path):
    config, model = trained
    rng = np.random.default_rng(1)
    grid = rng.normal(size=(CHANNELS, 15, 10)).astype(np.float32)  # taller than grid_size, narrower
    tissue = np.ones((15, 10), dtype=bool)
    tissue[7, 4] = False
    store = grid_store.open_grid(write_store(tmp_path, "big", grid, tissue))
    top, left = centre_window(15, 10, SIZE)
    assert (top, left) == (1, -1)
    image = inference_dataset(config.data, [store.path])[0]["image"].numpy()
    assert np.array_equal(to_store_grid(image[0], (15, 10), top, left)[1:13], store.embeddings()[0, 1:13])

    for method in ("gradient", "occlusion"):
        explanation = explain_store(config, model, store, method)
        assert explanation.window == (1, -1, SIZE)
        for values in explanation.maps.values():
            assert values.shape == (15, 10)
            seen = np.zeros((15, 10), dtype=bool)
            seen[1:13] = True
            assert np.isfinite(values[seen & tissue]).all()
            assert np.isnan(values[~(seen & tissue)]).all()


def test_drawing_over_the_slide_thumbnail(trained, region_data, tmp_path):
    from medmtl.wsi.synthetic import make_synthetic_slide

    config, model = trained
    slide = make_synthetic_slide(tmp_path / "slide.tif", 768, 768, label=1, seed=0, tile=256)
    probe = grid_store.open_grid(region_data.probe)
    store = grid_store.open_grid(write_store(tmp_path, "with_slide", probe.embeddings(), probe.tissue(),
                                             slide=str(slide.path), stride=64, level_downsample=1.0))
    explanation = explain_store(config, model, store, "occlusion", 2)
    assert explanation.method_title() == "occlusion (2 × 2 cells)"
    out = render_attributions(store, explanation, tmp_path / "map.png")
    assert out.stat().st_size > 10_000


def test_the_command_writes_the_png_and_the_values(trained_run, region_data, tmp_path):
    out = tmp_path / "figures" / "probe.png"
    result = CliRunner().invoke(app, ["show-grid", str(region_data.probe), "--out", str(out),
                                      "--explain", str(trained_run)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 5_000
    tissue = grid_store.open_grid(region_data.probe).tissue()
    for head in HEADS:
        values = np.load(tmp_path / "figures" / f"probe_{head}.npy")
        assert values.shape == (SIZE, SIZE) and values.dtype == np.float32
        assert np.isnan(values[~tissue]).all() and np.isfinite(values[tissue]).all()


@pytest.mark.parametrize("options, message", [
    (["--method", "saliency"], "--method.*unknown method 'saliency'.*gradient, occlusion"),
    (["--method", "occlusion", "--occlusion-size", "0"], "--occlusion-size.*≥ 1, not 0"),
    (["--occlusion-size", "2"], "--occlusion-size.*occlusion only"),
])
def test_bad_options_are_one_error_line(trained_run, region_data, tmp_path, options, message):
    result = CliRunner().invoke(app, ["show-grid", str(region_data.probe), "--out", str(tmp_path / "x.png"),
                                      "--explain", str(trained_run), *options])
    assert result.exit_code == 2
    assert "error:" in result.output and re.search(message, result.output), result.output
    assert "Traceback" not in result.output


def test_explain_options_need_a_run_and_a_finished_store(region_data, trained_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["show-grid", str(region_data.probe), "--out", str(tmp_path / "x.png"),
                                 "--method", "occlusion"])
    assert result.exit_code == 2 and "--method" in result.output and "--explain" in result.output
    grid, tissue = np.zeros((CHANNELS, 3, 3), np.float32), np.ones((3, 3), bool)
    partial = grid_store.create_or_resume(tmp_path, "torn", CHANNELS, tissue, np.zeros((3, 3, 2), np.int64), {})
    partial.write_row(0, grid[:, 0])
    result = runner.invoke(app, ["show-grid", str(partial.path), "--out", str(tmp_path / "x.png"),
                                 "--explain", str(trained_run)])
    assert result.exit_code == 2 and "not a finished medmtl grid store" in result.output


def test_a_run_that_is_not_a_grid_model(region_data):
    image_config = config_from_dict(tiny_config())
    with pytest.raises(ConfigError, match=r"--explain.*runs/x is not a slide-level model.*data.kind is 'phantom'"):
        check_grid_model(image_config, build_model(image_config), CHANNELS, "runs/x", region_data.probe)
    narrow = grid_config(region_data.manifest, channels=4)
    with pytest.raises(DataError, match=r"probe.zarr: has 8-channel embeddings, but the model of runs/x takes 4 "
                                        r"input channels"):
        check_grid_model(narrow, build_model(narrow), CHANNELS, "runs/x", region_data.probe)


@pytest.mark.parametrize("tasks", [[SegmentationTask], [ReconstructionTask], [SegmentationTask, ReconstructionTask]])
def test_a_model_without_a_slide_level_head(tasks):
    model = MultiTaskModel(create_encoder("small_cnn", in_channels=CHANNELS, width=4, stages=2),
                           [task() for task in tasks], image_channels=CHANNELS).eval()
    with pytest.raises(ConfigError, match=r"--explain.*runs/x has no head that predicts a number per slide.*its heads: "
                                          + tasks[0].kind):
        explained_outputs(model, torch.zeros(CHANNELS, SIZE, SIZE), "runs/x")


@pytest.mark.parametrize("method, size", [("grad", 1), ("occlusion", 0), ("occlusion", 1.5), ("occlusion", True)])
def test_check_method(method, size):
    with pytest.raises(ConfigError):
        check_method(method, size)


def test_which_numbers_are_explained():
    from medmtl.tasks import ClassificationTask, RegressionTask

    model = MultiTaskModel(create_encoder("small_cnn", in_channels=CHANNELS, width=4, stages=2),
                           [ClassificationTask(num_classes=3), RegressionTask(num_outputs=2), SegmentationTask()],
                           image_channels=CHANNELS).eval()
    image = torch.randn(CHANNELS, SIZE, SIZE)
    outputs = explained_outputs(model, image)
    predicted = int(model.predict(image[None])["classification"][0].argmax())
    assert [(o.label, o.column, o.quantity) for o in outputs] == [
        ("classification", predicted, f"P(class {predicted})"), ("regression_0", 0, "predicted value"),
        ("regression_1", 1, "predicted value")]
