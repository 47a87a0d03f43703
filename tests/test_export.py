"""`medmtl export` (ONNX, TorchScript) and `medmtl predict --backend onnxruntime`: the exported networks
give PyTorch's outputs within 1e-4 on phantom images, for every batch size and (where dynamic) another
image size, and predict writes the same files through them; bad inputs are one clear error each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("onnxruntime", reason="the 'export' extra (onnx, onnxscript, onnxruntime) is not installed")
pytest.importorskip("onnxscript", reason="the 'export' extra (onnx, onnxscript, onnxruntime) is not installed")
import onnx  # noqa: E402

from medmtl.builders import build_model  # noqa: E402
from medmtl.cli import app  # noqa: E402
from medmtl.config import config_from_dict, save_config  # noqa: E402
from medmtl.data.phantom import make_phantom_records  # noqa: E402
from medmtl.data.phantom3d import make_phantom3d_records  # noqa: E402
from medmtl.errors import DataError, ExportError, MissingExtraError  # noqa: E402
from medmtl.export import export_model, export_run  # noqa: E402
from medmtl.exported import REQUIRED_KEYS, OnnxRuntimeModel, TorchScriptModel  # noqa: E402
from medmtl.predict import predict_files  # noqa: E402
from medmtl.training.run import load_run_checkpoint  # noqa: E402

TOLERANCE = 1e-4
TASKS_2D = ["classification", "regression", "survival", "segmentation", "reconstruction"]
ENCODER = {"name": "small_cnn", "options": {"width": 8, "stages": 3}}


def _config_2d() -> dict:
    return {"seed": 0, "data": {"kind": "phantom", "image_size": 32},
            "model": {"encoder": ENCODER, "tasks": [{"kind": kind} for kind in TASKS_2D]}}


def _config_3d(folder: Path) -> dict:
    (folder / "data.csv").write_text("image,label\n")
    return {"seed": 0, "data": {"kind": "manifest", "manifest": str(folder / "data.csv"), "image_size": [16, 16, 16],
                                "volume": {"spacing": [1.5, 1.5, 2.0], "intensity": "window", "window": [-100, 400],
                                           "crop": "none"}},
            "model": {"encoder": ENCODER, "tasks": [{"kind": "classification"}, {"kind": "segmentation"}]}}


def _phantoms_2d(n: int, size: int = 32, seed: int = 3, masks: bool = False):
    records = make_phantom_records(n, size, seed)
    images = torch.stack([torch.from_numpy(r.image_array).float()[None] for r in records])
    return (images, torch.stack([torch.from_numpy(r.mask_array).long() for r in records])) if masks else images


def _phantoms_3d(n: int, side: int = 16, seed: int = 3, masks: bool = False):
    records = make_phantom3d_records(n, (side, side, side), seed)
    images = torch.stack([torch.from_numpy(r.image_array).float()[None] for r in records])
    return (images, torch.stack([torch.from_numpy(r.mask_array).long() for r in records])) if masks else images


def _make_run(folder: Path, raw: dict, phantoms: tuple[torch.Tensor, torch.Tensor]) -> Path:
    """A run directory as `medmtl train` leaves it (config.yaml, checkpoints/best.ckpt), without the
    trainer: a few optimiser steps of the segmentation loss on phantom images (so that the predicted
    masks are not all one class, and BatchNorm's statistics are not the identity's)."""
    config = config_from_dict(raw)
    torch.manual_seed(0)
    model = build_model(config).train()
    images, masks = phantoms
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    weights = torch.tensor([1.0, 4.0])  # lesions are small: without weights the first steps predict none
    for _ in range(12):
        optimiser.zero_grad()
        logits = model(images, tasks=["segmentation"])["segmentation"]
        torch.nn.functional.cross_entropy(logits, masks, weight=weights).backward()
        optimiser.step()
    run = folder / "run"
    save_config(config, run / "config.yaml")
    (run / "checkpoints").mkdir(parents=True)
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0, "global_step": 1}, run / "checkpoints" / "best.ckpt")
    return run


def _invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _max_diff(expected: dict, actual: dict) -> dict[str, float]:
    assert list(actual) == list(expected)
    diffs = {}
    for name, want in expected.items():
        got = actual[name]
        assert tuple(got.shape) == tuple(want.shape), name
        diffs[name] = float((got.float() - want.float()).abs().max())
    return diffs


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread (restored afterwards): tiny models run faster that way on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_2d(tmp_path_factory):
    """A 2D run and its exports through the command line: ONNX and TorchScript."""
    folder = tmp_path_factory.mktemp("export2d")
    run = _make_run(folder, _config_2d(), _phantoms_2d(8, seed=11, masks=True))
    files = {}
    for format, name in (("onnx", "model.onnx"), ("torchscript", "model.pt")):
        result = _invoke("export", run, "--format", format, "--out", folder / name)
        assert result.exit_code == 0, result.output
        assert "wrote" in result.output and "dynamic axes: batch, height, width" in result.output, result.output
        files[format] = folder / name
    return run, files


@pytest.fixture(scope="module")
def run_3d(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export3d")
    run = _make_run(folder, _config_3d(folder), _phantoms_3d(4, seed=11, masks=True))
    results = {format: export_run(run, folder / f"model.{suffix}", format)[0]
               for format, suffix in (("onnx", "onnx"), ("torchscript", "pt"))}
    return run, results


def test_2d_exports_match_pytorch(run_2d):
    run, files = run_2d
    _, model, _ = load_run_checkpoint(run)
    backends = {"onnx": OnnxRuntimeModel(files["onnx"], threads=1), "torchscript": TorchScriptModel(files["torchscript"])}
    inputs = [_phantoms_2d(1), _phantoms_2d(3), _phantoms_2d(2, size=48)]  # one file: any batch, another size
    for backend in backends.values():
        assert list(backend.tasks) == TASKS_2D and backend.output_names == TASKS_2D
        for images in inputs:
            with torch.no_grad():
                diffs = _max_diff(model(images), backend(images))
            assert max(diffs.values()) <= TOLERANCE, (backend, tuple(images.shape), diffs)
        predicted = backend.predict(inputs[1])
        assert predicted["segmentation"].shape == (3, 32, 32) and predicted["classification"].shape == (3, 2)

    proto = onnx.load(str(files["onnx"]))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert proto.graph.input[0].name == "image" and dims == ["batch", 1, "height", "width"]
    assert [o.name for o in proto.graph.output] == TASKS_2D
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert set(REQUIRED_KEYS) <= set(metadata) and "best.ckpt" in metadata["medmtl.checkpoint"]
    assert config_from_dict(yaml.safe_load(metadata["medmtl.config"])) == load_run_checkpoint(run)[0]


def test_3d_exports_match_pytorch(run_3d):
    run, results = run_3d
    _, model, _ = load_run_checkpoint(run)
    for format, result in results.items():
        assert result.dynamic_axes == {0: "batch", 2: "depth", 3: "height", 4: "width"}, format
        assert result.max_abs_diff <= TOLERANCE
        backend = OnnxRuntimeModel(result.path, threads=1) if format == "onnx" else TorchScriptModel(result.path)
        for images in (_phantoms_3d(1), _phantoms_3d(3), _phantoms_3d(1, side=24)):
            with torch.no_grad():
                diffs = _max_diff(model(images), backend(images))
            assert max(diffs.values()) <= TOLERANCE, (format, tuple(images.shape), diffs)


def test_an_onnx_graph_wrong_at_other_sizes_is_exported_with_the_training_size_fixed(run_2d, tmp_path, monkeypatch):
    import medmtl.export as export_module

    checked = export_module._difference
    monkeypatch.setattr(export_module, "_difference", lambda network, run, image: checked(network, run, image)
                        if tuple(image.shape[2:]) == (32, 32) else None)  # "wrong" at every other size
    config, model, _ = load_run_checkpoint(run_2d[0])
    result = export_model(model, config, tmp_path / "fixed.onnx")
    assert result.dynamic_axes == {0: "batch"} and result.checked_shapes == [(1, 1, 32, 32), (3, 1, 32, 32)]
    backend = OnnxRuntimeModel(result.path, threads=1)
    assert backend.metadata.input_shape == ["batch", 1, 32, 32]
    images = _phantoms_2d(3)
    with torch.no_grad():
        assert max(_max_diff(model(images), backend(images)).values()) <= TOLERANCE
    with pytest.raises(DataError, match=r"takes images \[batch, 1, 32, 32\] .*got \[1, 1, 48, 48\]"):
        backend(_phantoms_2d(1, size=48))


def _assert_same_entries(expected, actual, where="predictions"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), where
        for key in expected:
            _assert_same_entries(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for index, (want, got) in enumerate(zip(expected, actual)):
            _assert_same_entries(want, got, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert abs(actual - expected) <= TOLERANCE, (where, expected, actual)
    else:
        assert actual == expected, where


def _phantom_pngs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (record, size) in enumerate(zip(make_phantom_records(3, 64, seed=5), [(64, 64), (50, 70), (40, 40)])):
        pixels = (np.clip(record.image_array, 0, 1) * 255).astype(np.uint8)
        path = folder / f"phantom{index}.png"
        Image.fromarray(pixels).resize(size[::-1]).save(path)
        paths.append(path)
    return paths


def test_predict_with_onnxruntime_writes_the_same_files(run_2d, tmp_path):
    run, files = run_2d
    config, model, _ = load_run_checkpoint(run)
    images = _phantom_pngs(tmp_path / "images")
    torch_results = predict_files(config, model, images, tmp_path / "torch", overlays=False)
    onnx_results = predict_files(config, OnnxRuntimeModel(files["onnx"], threads=1), images, tmp_path / "onnx", overlays=False)
    _assert_same_entries(torch_results, onnx_results)
    for name in ("predictions.json", "boxes.json"):
        _assert_same_entries(json.loads((tmp_path / "torch" / name).read_text()),
                             json.loads((tmp_path / "onnx" / name).read_text()))
    for entry in torch_results.values():
        mask = entry["segmentation"]["mask"]
        assert np.array_equal(np.array(Image.open(tmp_path / "torch" / mask)), np.array(Image.open(tmp_path / "onnx" / mask)))


def test_predict_volumes_with_onnxruntime_writes_the_same_files(run_3d, tmp_path):
    """Volumes: a whole-volume pass and a sliding window (windows batched by MONAI) through onnxruntime."""
    sitk = pytest.importorskip("SimpleITK", reason="the 'volumes' extra (SimpleITK) is not installed")
    run, results = run_3d
    config, model, _ = load_run_checkpoint(run)
    paths = []
    for index, shape in enumerate([(12, 20, 18), (24, 48, 44)]):  # resampled: smaller than, larger than 16³
        array = _phantoms_3d(1, side=max(shape), seed=index)[0, 0].numpy()[:shape[0], :shape[1], :shape[2]]
        image = sitk.GetImageFromArray((array * 500 - 100).astype(np.float32))
        path = tmp_path / f"volume{index}.nii.gz"
        sitk.WriteImage(image, str(path))
        paths.append(path)
    torch_results = predict_files(config, model, paths, tmp_path / "torch", overlays=False)
    onnx_results = predict_files(config, OnnxRuntimeModel(results["onnx"].path, threads=1), paths, tmp_path / "onnx",
                                 overlays=False)
    _assert_same_entries(torch_results, onnx_results)
    for entry in torch_results.values():
        mask = entry["segmentation"]["mask"]
        want = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "torch" / mask)))
        got = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "onnx" / mask)))
        assert np.array_equal(want, got)


def test_cli_predict_with_onnxruntime(run_2d, tmp_path):
    run, files = run_2d
    images = _phantom_pngs(tmp_path / "images")[:2]
    result = _invoke("predict", "--backend", "onnxruntime", files["onnx"], *images, "--out", tmp_path / "onnx")
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.output and "best.ckpt" in result.output
    result = _invoke("predict", run, *images, "--out", tmp_path / "torch")
    assert result.exit_code == 0, result.output
    _assert_same_entries(json.loads((tmp_path / "torch" / "predictions.json").read_text()),
                         json.loads((tmp_path / "onnx" / "predictions.json").read_text()))
    assert sorted(p.name for p in (tmp_path / "onnx" / "overlays").iterdir()) == ["phantom0.png", "phantom1.png"]


# ------------------------------------------------------------------------------------------ bad input
def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_export_of_a_run_without_checkpoints_is_one_error_naming_it(tmp_path):
    run = tmp_path / "unfinished"
    save_config(config_from_dict(_config_2d()), run / "config.yaml")
    line = _error_line(_invoke("export", run, "--out", tmp_path / "model.onnx"))
    assert line.startswith(f"error: {run}: has no checkpoint to export") and "best.ckpt" in line
    assert not (tmp_path / "model.onnx").exists()


def test_export_to_an_unknown_format_is_one_error(tmp_path):
    line = _error_line(_invoke("export", tmp_path / "run", "--format", "tflite", "--out", tmp_path / "m.tflite"))
    assert line == "error: config key '--format': unknown export format 'tflite'; choose one of onnx, torchscript"


def test_predict_with_an_onnx_file_not_made_by_medmtl_names_the_file_and_the_key(tmp_path):
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["image"], ["out"])], "foreign",
                                   [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 1, 32, 32])],
                                   [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 1, 32, 32])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(foreign))
    with pytest.raises(DataError, match="has no 'medmtl.config'") as info:
        OnnxRuntimeModel(foreign)
    assert info.value.path == str(foreign)
    image = _phantom_pngs(tmp_path / "images")[0]
    line = _error_line(_invoke("predict", "--backend", "onnxruntime", foreign, image, "--out", tmp_path / "out"))
    assert line.startswith(f"error: {foreign}: was not made by `medmtl export`: its metadata has no 'medmtl.config'")

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(DataError, match="cannot be read as an ONNX model"):
        OnnxRuntimeModel(garbage)
    line = _error_line(_invoke("predict", foreign, image, "--out", tmp_path / "out"))  # the torch backend
    assert "--backend onnxruntime" in line
    line = _error_line(_invoke("predict", "--backend", "tensorrt", foreign, image, "--out", tmp_path / "out"))
    assert "unknown backend 'tensorrt'" in line


def test_detection_is_refused_with_the_reason(tmp_path):
    config = config_from_dict({"data": {"kind": "phantom", "image_size": 64},
                               "model": {"encoder": {"name": "small_cnn", "options": {"width": 8, "stages": 4}},
                                         "tasks": [{"kind": "classification"}, {"kind": "detection"}]}})
    with pytest.raises(ExportError, match=r"task 'detection' \(kind: detection\) cannot be exported: torch.export"):
        export_model(build_model(config), config, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_a_missing_export_extra_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"needs the optional extra 'export': pip install 'medmtl\[export\]'"):
        OnnxRuntimeModel(tmp_path / "model.onnx")
