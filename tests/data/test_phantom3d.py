import numpy as np
import pytest
from scipy import ndimage

from medmtl.data.phantom3d import make_phantom3d_records

SHAPE = (16, 16, 16)


@pytest.fixture(scope="module")
def records():
    return make_phantom3d_records(40, image_shape=(24, 24, 24), seed=1)


def surface_to_volume(mask: np.ndarray) -> float:
    """Exposed voxel faces / voxels^(2/3): scale-free, about 7.3 for a voxelised ball, more when irregular."""
    padded = np.pad(mask.astype(np.int8), 1)
    faces = sum(np.abs(np.diff(padded, axis=axis)).sum() for axis in range(3))
    return faces / mask.sum() ** (2 / 3)


@pytest.mark.parametrize("shape", [SHAPE, (16, 20, 24)])
def test_shapes_dtypes_ranges_and_targets(shape):
    records = make_phantom3d_records(6, image_shape=shape, seed=0)
    assert [r.name for r in records] == [f"phantom3d_{i:05d}" for i in range(6)]
    for record in records:
        assert record.image_array.shape == shape and record.image_array.dtype == np.float32
        assert record.mask_array.shape == shape and record.mask_array.dtype == np.int64
        assert 0 <= record.image_array.min() and record.image_array.max() <= 1
        assert set(np.unique(record.mask_array)) == {0, 1}
        assert record.expects_lesion
        assert record.available_targets() == {"label", "mask", "value", "survival"}
        time, event = record.targets["survival"]
        assert time > 0 and event in (0, 1)
        diameter = np.cbrt(6 * record.mask_array.sum() / np.pi) / np.cbrt(np.prod(shape))
        assert record.targets["value"] == pytest.approx(diameter)


def test_deterministic_per_seed_and_stream():
    a = make_phantom3d_records(4, image_shape=SHAPE, seed=3)
    b = make_phantom3d_records(4, image_shape=SHAPE, seed=3)
    for x, y in zip(a, b):
        assert np.array_equal(x.image_array, y.image_array) and np.array_equal(x.mask_array, y.mask_array)
        assert x.targets == y.targets
    for other in (make_phantom3d_records(4, image_shape=SHAPE, seed=4),
                  make_phantom3d_records(4, image_shape=SHAPE, seed=3, stream=1)):
        assert not np.array_equal(a[0].image_array, other[0].image_array)
    # A record depends on (seed, stream, index) only, not on how many are drawn.
    longer = make_phantom3d_records(8, image_shape=SHAPE, seed=3)
    assert all(np.array_equal(x.mask_array, y.mask_array) for x, y in zip(a, longer) if x.label == y.label)


@pytest.mark.parametrize("n,fraction,malignant", [(10, 0.5, 5), (7, 0.3, 2), (4, 0.0, 0), (4, 1.0, 4)])
def test_exact_class_counts(n, fraction, malignant):
    records = make_phantom3d_records(n, image_shape=SHAPE, malignant_fraction=fraction)
    assert sum(r.label for r in records) == malignant and len(records) == n


def test_masks_are_one_nonempty_component(records):
    for record in records:
        _, count = ndimage.label(record.mask_array, structure=np.ones((3, 3, 3)))
        assert count == 1 and record.mask_array.sum() >= 8


def test_malignant_lesions_are_less_compact_and_more_heterogeneous(records):
    stats = {0: [], 1: []}
    for record in records:
        mask = record.mask_array > 0
        interior = ndimage.binary_erosion(mask, iterations=1)
        texture = record.image_array[interior].std() if interior.sum() > 4 else np.nan
        stats[record.label].append((surface_to_volume(mask), texture))
    benign, malignant = np.array(stats[0]), np.array(stats[1])
    assert len(benign) == len(malignant) == 20
    assert benign[:, 0].max() < 9 and malignant[:, 0].mean() > benign[:, 0].mean() + 2
    assert np.nanmean(malignant[:, 1]) > np.nanmean(benign[:, 1])


def test_lesions_are_brighter_than_tissue_and_sizes_overlap(records):
    for record in records:
        mask = record.mask_array > 0
        core = ndimage.binary_erosion(mask, iterations=1)
        core = core if core.any() else mask
        assert record.image_array[core].mean() > record.image_array[~ndimage.binary_dilation(mask, iterations=2)].mean()
    values = {k: [r.targets["value"] for r in records if r.label == k] for k in (0, 1)}
    assert min(values[1]) < max(values[0]) and min(values[0]) < max(values[1])


def test_survival_depends_on_malignancy_and_is_censored():
    records = make_phantom3d_records(300, image_shape=SHAPE, seed=2)
    events = np.array([r.targets["survival"][1] for r in records])
    assert 0.55 < events.mean() < 0.85  # about 30 % censored
    times = {k: np.median([r.targets["survival"][0] for r in records if r.label == k]) for k in (0, 1)}
    assert times[1] < times[0]


@pytest.mark.parametrize("kwargs,match", [({"n": -1}, "n must"), ({"image_shape": (8, 16, 16)}, "image_shape"),
                                          ({"image_shape": (16, 16)}, "image_shape"),
                                          ({"malignant_fraction": 1.5}, "malignant_fraction")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_phantom3d_records(**{"n": 2, **kwargs})
