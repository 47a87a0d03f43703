"""Sliding-window inference of multi-task models (medmtl.sliding_window), on tiny 2D and 3D models."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from medmtl.encoders import create_encoder
from medmtl.model import MultiTaskModel
from medmtl.sliding_window import predict_volume, sliding_window_predict
from medmtl.tasks import (
    ClassificationTask,
    RegressionTask,
    SegmentationTask,
    SurvivalTask,
)


@pytest.fixture(autouse=True)
def _no_grad():
    """sliding_window_predict leaves no_grad to its caller."""
    with torch.no_grad():
        yield


class _ConsumingTask(ClassificationTask):
    """A global head reading the segmentation head's output (runs inside each window)."""

    def forward(self, features, image, context, batch=None):
        seg = context["segmentation"].softmax(1)[:, 1:].flatten(1).mean(dim=1)
        return self.head(features) + seg[:, None]


class _ListOutputTask(ClassificationTask):
    """A global head whose raw output is not a tensor (like detection's)."""

    def forward(self, features, image, context, batch=None):
        return [row for row in self.head(features)]


def _model(tasks, spatial_dims: int = 3, stages: int = 3, width: int = 4, seed: int = 0) -> MultiTaskModel:
    torch.manual_seed(seed)
    encoder = create_encoder("small_cnn", 1, spatial_dims=spatial_dims, width=width, stages=stages)
    model = MultiTaskModel(encoder, tasks)
    for module in model.modules():  # non-trivial BatchNorm statistics, so eval mode is not the identity
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _starts(size: int, roi: int, overlap: float) -> list[int]:
    """Window starts along one axis, as MONAI's ``dense_patch_slices`` places them."""
    if size == roi:
        return [0]
    interval = max(1, int(roi * (1 - overlap)))
    count = next(d for d in range(size) if d * interval + roi >= size) + 1
    return [min(i * interval, size - roi) for i in range(count)]


def _exact_axis(size: int, roi: int, overlap: float, radius: int) -> torch.Tensor:
    """BoolTensor ``[size]``: positions whose every covering window sees their whole receptive field
    (``radius`` voxels each side) inside the window, or ends where the image ends (where the whole-image
    pass zero-pads too), so the window outputs there equal the whole-image output exactly."""
    ok = torch.ones(size, dtype=torch.bool)
    x = torch.arange(size)
    for s in _starts(size, roi, overlap):
        covered = (x >= s) & (x < s + roi)
        bad_left = (x - radius < s) if s > 0 else torch.zeros_like(covered)
        bad_right = (x + radius > s + roi - 1) if s + roi < size else torch.zeros_like(covered)
        ok &= ~(covered & (bad_left | bad_right))
    return ok


def _exact_region(shape, roi, overlap, radius) -> torch.Tensor:
    axes = [_exact_axis(n, r, overlap, radius) for n, r in zip(shape, roi)]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(grids).all(dim=0)


def _window_means(model, image, roi, overlap, names):
    """Reference for the global heads: run the model on every window and average its raw outputs."""
    starts = [_starts(n, r, overlap) for n, r in zip(image.shape[2:], roi)]
    per_window = [model(image[(slice(None), slice(None), *(slice(s, s + r) for s, r in zip(corner, roi)))])
                  for corner in itertools.product(*starts)]
    return {name: torch.stack([out[name] for out in per_window]).mean(dim=0) for name in names}


# receptive-field radius (in input voxels) of small_cnn + U-Net decoder: stages=1 — two 3×3 convs (2);
# stages=2 — f1 reads ±5, the linear up-sampling widens that to ±7, the two decoder convs add 2 → 9.
@pytest.mark.parametrize("spatial_dims, stages, size, roi, radius", [(3, 1, 40, 16, 2), (2, 2, 80, 32, 9)])
def test_dense_heads_equal_the_whole_pass_where_the_receptive_field_fits(spatial_dims, stages, size, roi, radius):
    model = _model([SegmentationTask(num_classes=3)], spatial_dims, stages=stages, width=4)
    image = torch.rand(1, 1, *(size,) * spatial_dims)
    rois = (roi,) * spatial_dims
    whole = model(image)["segmentation"]
    windows = sliding_window_predict(model, image, rois, overlap=0.25, mode="gaussian")["segmentation"]
    assert windows.shape == whole.shape
    exact = _exact_region(image.shape[2:], rois, 0.25, radius)
    assert 0.3 < exact.float().mean() < 0.9  # the check covers a real part of the image, not all of it
    # blending identical values: sum(w_i · o) / sum(w_i) = o up to float rounding (a radius one voxel
    # smaller already gives differences of 1e-5 to 1e-2)
    torch.testing.assert_close(windows[..., exact], whole[..., exact], rtol=1e-5, atol=2e-6)
    assert not torch.allclose(windows, whole, rtol=1e-5, atol=2e-6)  # elsewhere the window padding shows


def test_unet_like_3d_model_agrees_with_the_whole_pass():
    model = _model([SegmentationTask(), ClassificationTask()], 3, stages=3, width=4)
    image = torch.rand(1, 1, 48, 48, 48)
    whole = model(image)
    windows = sliding_window_predict(model, image, (24, 24, 24), overlap=0.5)
    assert list(windows) == list(whole) and windows["classification"].shape == (1, 2)
    # the receptive field (±20 voxels and more) is wider than the window, so no voxel is exact and
    # the windows' zero padding shifts the logits (measured: by 10% of their spread on average)
    exact, approx = (out["segmentation"][:, 1] - out["segmentation"][:, 0] for out in (whole, windows))
    assert (approx - exact).abs().mean() < 0.15 * exact.std()
    # an untrained net predicts one class everywhere; threshold at the median instead, the worst
    # case (most voxels near the threshold): 96% of the voxels still agree (98.7% away from the border)
    median = exact.median()
    assert ((approx > median) == (exact > median)).float().mean() > 0.93


def test_global_heads_are_the_mean_of_the_windows_and_dense_stitching_is_monais():
    from monai.inferers import sliding_window_inference

    tasks = [SegmentationTask(), ClassificationTask(num_classes=3), RegressionTask(),
             _ConsumingTask("transfer", consumes=("segmentation",)), SurvivalTask()]
    model = _model(tasks, 3, stages=2, width=4)
    image = torch.rand(2, 1, 20, 28, 16)  # 2 images × 2·3·1 windows, in batches of 4 that span both images
    roi, overlap = (12, 12, 16), 0.25
    out = sliding_window_predict(model, image, roi, overlap=overlap, sw_batch_size=4)
    assert list(out) == list(model.tasks)
    expected = _window_means(model, image, roi, overlap, ["classification", "regression", "transfer", "survival"])
    for name, value in expected.items():
        assert out[name].shape == value.shape
        torch.testing.assert_close(out[name], value, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out["classification"][0], out["classification"][1])
    monai_seg = sliding_window_inference(image, roi, 4, lambda x: model(x)["segmentation"], overlap=overlap,
                                         mode="gaussian")
    torch.testing.assert_close(out["segmentation"], monai_seg)


def test_whole_volume_switch_runs_one_pass_for_every_head():
    model = _model([SegmentationTask(), ClassificationTask()], 3, stages=2)
    image = torch.rand(1, 1, 24, 24, 24)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[2:])))
    whole = model(image)
    seen.clear()
    out = sliding_window_predict(model, image, (16, 16, 16), whole_volume_voxels=24**3)
    assert seen == [(24, 24, 24)]
    for name in whole:
        torch.testing.assert_close(out[name], whole[name])
    seen.clear()
    windowed = sliding_window_predict(model, image, (16, 16, 16), whole_volume_voxels=24**3 - 1, sw_batch_size=8)
    assert seen == [(16, 16, 16)]  # 8 windows in one batch
    assert not torch.allclose(windowed["classification"], whole["classification"])


def test_model_with_only_global_heads():
    model = _model([ClassificationTask(), RegressionTask()], 2, stages=2)
    image = torch.rand(3, 1, 40, 56)
    roi = (16, 32)
    out = sliding_window_predict(model, image, roi, overlap=0.5, sw_batch_size=5)
    assert list(out) == ["classification", "regression"]
    expected = _window_means(model, image, roi, 0.5, ["classification", "regression"])
    for name in expected:
        torch.testing.assert_close(out[name], expected[name], rtol=1e-5, atol=1e-6)


def test_image_smaller_than_the_window():
    model = _model([SegmentationTask(), ClassificationTask()], 3, stages=2)
    image = torch.rand(1, 1, 10, 12, 9)
    out = sliding_window_predict(model, image, (16, 16, 16))
    assert out["segmentation"].shape == (1, 2, 10, 12, 9) and out["classification"].shape == (1, 2)
    # one window: the zero-padded image (MONAI pads diff // 2 before, the rest after), cropped back
    padded = F.pad(image, (3, 4, 2, 2, 3, 3))
    reference = model(padded)
    torch.testing.assert_close(out["segmentation"], reference["segmentation"][:, :, 3:13, 2:14, 3:12])
    torch.testing.assert_close(out["classification"], reference["classification"])
    # smaller on one axis only: padded there, windows slide along the others
    image = torch.rand(1, 1, 10, 40, 16)
    out = sliding_window_predict(model, image, (16, 16, 16))
    assert out["segmentation"].shape == (1, 2, 10, 40, 16)
    expected = _window_means(model, F.pad(image, (0, 0, 0, 0, 3, 3)), (16, 16, 16), 0.25, ["classification"])
    torch.testing.assert_close(out["classification"], expected["classification"], rtol=1e-5, atol=1e-6)


def test_predict_volume_applies_postprocess():
    model = _model([SegmentationTask(num_classes=3), ClassificationTask()], 3, stages=2)
    with torch.enable_grad():  # predict_volume needs no caller-side no_grad
        pred = predict_volume(model, torch.rand(2, 1, 20, 20, 20), 12, mode="constant")
    assert pred["segmentation"].shape == (2, 20, 20, 20) and pred["segmentation"].dtype == torch.long
    torch.testing.assert_close(pred["classification"].sum(1), torch.ones(2))


def test_non_tensor_global_outputs_and_bad_roi_are_refused():
    model = _model([SegmentationTask(), _ListOutputTask("boxes")], 2, stages=2)
    image = torch.rand(1, 1, 32, 32)
    with pytest.raises(TypeError, match="'boxes'"):
        sliding_window_predict(model, image, (16, 16))
    assert isinstance(sliding_window_predict(model, image, (16, 16), whole_volume_voxels=math.prod((32, 32)))
                      ["boxes"], list)
    with pytest.raises(ValueError, match="roi"):
        sliding_window_predict(model, image, (16, 16, 16))
