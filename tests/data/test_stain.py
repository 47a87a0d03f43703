import numpy as np
import pytest
import torch
from pydantic import ValidationError
from skimage.color import hed_from_rgb, rgb_from_hed

from medmtl.config import config_from_dict
from medmtl.data.config import AugmentConfig, DataConfig
from medmtl.data.stain import RandomHEDJitter, hed_jitter, hed_to_rgb, rgb_to_hed
from medmtl.data.transforms import build_transforms
from medmtl.errors import ConfigError
from medmtl.wsi.scene import make_scene

ONE, ZERO = torch.ones(3), torch.zeros(3)


def he_image(size=96) -> torch.Tensor:
    """An H&E-like RGB patch of a synthetic slide (tissue, nuclei and some background): ``[3, H, W]``."""
    scene = make_scene(2048, 1536, label=1, seed=3)
    pixels = scene.render(600, 500, size, size)
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255


def grey(image: torch.Tensor) -> np.ndarray:
    return (image * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0).flatten().numpy()


def make_sample(image: torch.Tensor) -> dict:
    mask = torch.zeros(image.shape[-2:], dtype=torch.long)
    mask[5:20, 8:30] = 1
    return {"image": image, "mask": mask, "boxes": torch.tensor([[8.0, 5.0, 30.0, 20.0]]),
            "box_labels": torch.tensor([1]), "name": "patch"}


def test_image_is_h_and_e_like():
    image = he_image()
    assert 0.1 < (image.mean(0) < 0.85).float().mean() < 0.95  # stained pixels and background


def test_round_trip_without_jitter_returns_the_image():
    image = he_image()
    np.testing.assert_allclose(hed_jitter(image, ONE, ZERO).numpy(), image.numpy(), atol=1e-5)
    # any colour, also outside the stain cone (which skimage's clipped rgb2hed/hed2rgb would change)
    colours = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    colours[:, 0, :3] = torch.eye(3)
    np.testing.assert_allclose(hed_to_rgb(rgb_to_hed(colours)).numpy(), colours.numpy(), atol=1e-5)


def test_stain_space_is_the_papers():
    """Tellez et al.'s code: ``-ln(rgb + 2) @ hed_from_rgb``, with scikit-image's H&E matrix."""
    image = he_image()
    pixels = image.permute(1, 2, 0).double().numpy()
    expected = -np.log(pixels + 2) @ hed_from_rgb
    np.testing.assert_allclose(rgb_to_hed(image).permute(1, 2, 0).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(hed_from_rgb @ rgb_from_hed, np.eye(3), atol=1e-12)


def test_haematoxylin_is_scaled_as_intended():
    image = he_image()
    stains = rgb_to_hed(image)
    out = hed_jitter(image, torch.tensor([1.02, 1.0, 1.0]), torch.tensor([0.03, 0.0, 0.0]))
    new = rgb_to_hed(out)
    inside = ((out > 1e-3) & (out < 1 - 1e-3)).all(0)  # not clipped by the jitter: exact relation
    assert inside.float().mean() > 0.9
    np.testing.assert_allclose(new[0][inside].numpy(), (stains[0] * 1.02 + 0.03)[inside].numpy(), atol=1e-4)
    np.testing.assert_allclose(new[1:, inside].numpy(), stains[1:, inside].numpy(), atol=1e-4)
    # adding haematoxylin absorbs red and green (0.65, 0.70) more than blue (0.29): darker, bluer
    drop = (image - out).mean(dim=(1, 2))
    assert (drop > 0).all() and drop[0] > 1.5 * drop[2] and drop[1] > 1.5 * drop[2]


def test_jitter_changes_colour_keeps_range_structure_and_targets():
    image = he_image()
    sample = make_sample(image)
    for seed in range(5):
        out = RandomHEDJitter(0.1, generator=torch.Generator().manual_seed(seed))(sample)
        assert out["image"].shape == image.shape and out["image"].dtype == image.dtype
        assert out["image"].min() >= 0 and out["image"].max() <= 1
        assert (out["image"] - image).abs().mean() > 0.005
        assert np.corrcoef(grey(out["image"]), grey(image))[0, 1] > 0.9
        assert out["mask"] is sample["mask"] and out["boxes"] is sample["boxes"]
        assert out["box_labels"] is sample["box_labels"] and out["name"] == "patch"
    assert sample["image"] is image and torch.equal(image, he_image())  # input untouched


def test_same_seed_same_jitter_and_global_rng_is_used():
    sample = make_sample(he_image())
    torch.manual_seed(3)
    a = RandomHEDJitter(0.05)(sample)["image"]
    torch.manual_seed(3)
    b = RandomHEDJitter(0.05)(sample)["image"]
    c = RandomHEDJitter(0.05)(sample)["image"]
    assert torch.equal(a, b) and not torch.equal(b, c)
    assert RandomHEDJitter(0.05, p=0.0)(sample)["image"] is sample["image"]
    assert RandomHEDJitter(0.0)(sample)["image"] is sample["image"]


def test_one_channel_image_is_a_config_error():
    sample = make_sample(torch.rand(1, 32, 32))
    pipeline = build_transforms({"hed": 0.05}, None, train=True)
    with pytest.raises(ConfigError, match="data.augment.hed.*RGB"):
        pipeline(sample)


def test_build_transforms_adds_hed_only_for_training():
    pipeline = build_transforms(AugmentConfig(hed=0.05, intensity=0.1), 32, train=True)
    names = [type(t).__name__ for t in pipeline.transforms]
    assert names == ["Resize", "RandomHEDJitter", "RandomIntensity"]
    assert len(build_transforms(AugmentConfig(hed=0.05), 32, train=False)) == 1
    assert len(build_transforms(AugmentConfig(), 32, train=True)) == 1
    out = pipeline(make_sample(he_image(32)))
    assert out["image"].shape == (3, 32, 32)


def test_config_field_validates():
    assert AugmentConfig().hed == 0.0 and AugmentConfig(hed=0.1).hed == 0.1
    for bad in (-0.1, 1.5, "strong"):
        with pytest.raises(ValidationError):
            AugmentConfig(hed=bad)
    assert DataConfig(kind="manifest", channels=3, augment={"hed": 0.05}).augment.hed == 0.05
    with pytest.raises(ValidationError, match="augment.hed"):
        DataConfig(kind="phantom", channels=1, augment={"hed": 0.05})
    with pytest.raises(ConfigError, match="augment.hed"):
        config_from_dict({"data": {"kind": "phantom", "augment": {"hed": 0.05}},
                          "model": {"tasks": [{"kind": "classification"}]}})
