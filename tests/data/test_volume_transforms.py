import pytest
import torch

from medmtl.data.config import AugmentConfig
from medmtl.data.volume_transforms import (
    RandomAffine3d,
    RandomFlip3d,
    RandomIntensity,
    RandomRot90,
    affine3d,
    build_volume_transforms,
    flip3d,
    rot90_3d,
)
from medmtl.errors import ConfigError

SHAPE = (12, 16, 16)  # (D, H, W)


def volume(shape=SHAPE, seed=0):
    """A sample whose image (2 channels) encodes its mask: channel 0 == mask, channel 1 random."""
    generator = torch.Generator().manual_seed(seed)
    depth, height, width = shape
    mask = torch.zeros(shape, dtype=torch.long)
    # An asymmetric blob well inside the volume (so that no transform moves it across the border).
    mask[depth // 2 - 2: depth // 2 + 2, height // 2 - 3: height // 2 + 1, width // 2 - 1: width // 2 + 3] = 1
    mask[depth // 2, height // 2 + 1, width // 2 - 3] = 1
    image = torch.stack([mask.float(), torch.rand(shape, generator=generator)])
    return {"image": image, "mask": mask, "name": "v", "label": torch.tensor(1), "value": torch.tensor(0.3),
            "survival": torch.tensor([12.0, 1.0])}


def centroid(x):
    return torch.nonzero(x > 0.5).float().mean(0)


def clone(sample):
    return {k: v.clone() if torch.is_tensor(v) else v for k, v in sample.items()}


TRANSFORMS = {
    "flip_x": lambda: RandomFlip3d("x", p=1.0),
    "flip_y": lambda: RandomFlip3d("y", p=1.0),
    "flip_z": lambda: RandomFlip3d("z", p=1.0),
    "rot90": RandomRot90,
    "affine": lambda: RandomAffine3d(degrees=30, scale=0.2),
    "intensity": lambda: RandomIntensity(0.2),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@pytest.mark.parametrize("shape", [SHAPE, (12, 16, 20)])
def test_shapes_dtypes_targets_and_inputs_unchanged(name, shape):
    sample = volume(shape)
    before = clone(sample)
    out = TRANSFORMS[name]()(sample, torch.Generator().manual_seed(1))
    assert out["image"].shape == sample["image"].shape and out["image"].dtype == torch.float32
    assert out["mask"].shape == shape and out["mask"].dtype == torch.long
    assert 0 <= out["image"].min() and out["image"].max() <= 1
    assert set(out["mask"].unique().tolist()) <= {0, 1}
    for key in ("label", "value", "survival", "name"):
        assert out[key] is sample[key]
    for key, value in before.items():
        assert torch.equal(sample[key], value) if torch.is_tensor(value) else sample[key] == value


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_same_generator_seed_same_result(name):
    transform = TRANSFORMS[name]()
    if isinstance(transform, RandomFlip3d):
        transform.p = 0.5
    runs = [transform(volume(), torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(runs[0]["image"], runs[1]["image"]) and torch.equal(runs[0]["mask"], runs[1]["mask"])
    outcomes = {tuple(transform(volume(), torch.Generator().manual_seed(s))["image"].flatten().tolist())
                for s in range(8)}
    assert len(outcomes) > 1  # the seed matters


@pytest.mark.parametrize("name", ["flip_x", "flip_y", "flip_z", "rot90"])
@pytest.mark.parametrize("seed", range(4))
def test_exact_transforms_keep_image_and_mask_identical(name, seed):
    out = TRANSFORMS[name]()(volume((12, 16, 20) if seed % 2 else SHAPE), torch.Generator().manual_seed(seed))
    assert torch.equal(out["image"][0], out["mask"].float())


@pytest.mark.parametrize("seed", range(6))
def test_affine_keeps_image_and_mask_aligned(seed):
    sample = volume()
    out = RandomAffine3d(degrees=40, scale=0.25)(sample, torch.Generator().manual_seed(seed))
    image_fg, mask_fg = out["image"][0] > 0.5, out["mask"] > 0
    iou = (image_fg & mask_fg).sum() / (image_fg | mask_fg).sum()
    assert iou > 0.75
    assert torch.allclose(centroid(out["image"][0]), centroid(out["mask"].float()), atol=0.5)


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_flips_are_involutions_and_flip_the_right_axis(axis):
    sample = volume()
    twice = flip3d(flip3d(sample, axis), axis)
    assert torch.equal(twice["image"], sample["image"]) and torch.equal(twice["mask"], sample["mask"])
    dim = {"x": 2, "y": 1, "z": 0}[axis]  # of the mask [D, H, W]
    assert torch.equal(flip3d(sample, axis)["mask"], sample["mask"].flip(dim))


@pytest.mark.parametrize("shape,ks", [(SHAPE, [1, 2, 3]), ((12, 16, 20), [2])])
def test_rot90_composes_to_identity(shape, ks):
    sample = volume(shape)
    for k in ks:
        back = rot90_3d(rot90_3d(sample, k), 4 - k)
        assert torch.equal(back["image"], sample["image"]) and torch.equal(back["mask"], sample["mask"])
    assert torch.equal(rot90_3d(rot90_3d(sample, 2), 2)["mask"], sample["mask"])


def test_rot90_direction_matches_the_affine_and_needs_square_planes():
    point = torch.zeros(1, 9, 9, dtype=torch.long)
    point[0, 4, 7] = 1  # +x of the centre
    turned = rot90_3d({"image": point[None].float(), "mask": point}, 1)["mask"]
    assert torch.nonzero(turned[0]).tolist() == [[7, 4]]  # now +y of the centre
    sample = volume()
    for k in range(4):  # voxel centres map onto voxel centres: the affine is exact too
        assert torch.equal(affine3d(sample, 90 * k)["mask"], rot90_3d(sample, k)["mask"])
    with pytest.raises(ValueError, match="H == W"):
        rot90_3d(volume((12, 16, 20)), 1)
    rot90s = {int(torch.equal(RandomRot90()(volume((12, 16, 20)), torch.Generator().manual_seed(s))["mask"],
                               volume((12, 16, 20))["mask"])) for s in range(12)}
    assert rot90s == {0, 1}  # 0° and 180° both drawn


def test_affine_zoom_scales_the_object_about_the_centre():
    sample = volume((16, 16, 16))
    volume_before = sample["mask"].sum().item()
    larger = affine3d(sample, zoom=1.25)["mask"].sum().item()
    smaller = affine3d(sample, zoom=0.8)["mask"].sum().item()
    assert larger / volume_before == pytest.approx(1.25**3, rel=0.3)
    assert smaller / volume_before == pytest.approx(0.8**3, rel=0.3)
    assert affine3d(sample) is sample  # identity is a no-op


def test_geometric_transforms_reject_boxes_and_wrong_shapes():
    sample = volume()
    with pytest.raises(ValueError, match="boxes"):
        flip3d({**sample, "boxes": torch.zeros(0, 4)}, "x")
    with pytest.raises(ValueError, match=r"\[C, D, H, W\]"):
        affine3d({"image": torch.zeros(1, 8, 8)}, 10)
    with pytest.raises(ValueError, match="axis"):
        RandomFlip3d("w")


def test_build_volume_transforms_enables_only_what_is_asked():
    assert len(build_volume_transforms(None, train=True)) == 0
    assert len(build_volume_transforms(AugmentConfig(), train=True)) == 0
    full = AugmentConfig(hflip=True, vflip=True, zflip=True, rot90=True, rotate_degrees=10, scale=0.1, intensity=0.1)
    names = [type(t).__name__ for t in build_volume_transforms(full, train=True).transforms]
    assert names == ["RandomFlip3d"] * 3 + ["RandomRot90", "RandomAffine3d", "RandomIntensity"]
    assert len(build_volume_transforms(full, train=False)) == 0
    assert [type(t).__name__ for t in build_volume_transforms({"scale": 0.1}, train=True).transforms] == [
        "RandomAffine3d"]
    out = build_volume_transforms(full, train=True)(volume(), torch.Generator().manual_seed(0))
    assert out["image"].shape == (2, *SHAPE)


@pytest.mark.parametrize("option,key", [({"hed": 0.05}, "data.augment.hed"), ({"elastic": True}, "data.augment.elastic")])
@pytest.mark.parametrize("train", [True, False])
def test_2d_only_options_are_config_errors(option, key, train):
    with pytest.raises(ConfigError) as error:
        build_volume_transforms(AugmentConfig(**option), train=train)
    assert error.value.key == key and error.value.problem == "is 2D only"
