"""Reading and writing volumes (medmtl.data.volume_io): round trips, geometry, every bad input."""

from __future__ import annotations

import gzip
import struct
import sys

import numpy as np
import pytest
from PIL import Image

from medmtl.data.volume_io import (
    VolumeGeometry,
    check_same_grid,
    is_volume_path,
    read_label_volume,
    read_volume,
    read_volume_info,
    resample_to_reference,
    volume_stem,
    write_volume,
)
from medmtl.errors import DataError, MissingExtraError

sitk = pytest.importorskip("SimpleITK", reason="the optional extra 'volumes' (SimpleITK) is not installed")

SHAPE = (12, 16, 16)  # (z, y, x)
OBLIQUE = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # x and y axes swapped (a 90 degree turn)
GEOMETRY = VolumeGeometry(size=(16, 16, 12), spacing=(0.75, 0.8, 2.5), origin=(-10.0, 4.5, 30.0), direction=OBLIQUE)


def volume(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 100, SHAPE).astype(np.float32)


def write_mha_header(path, spacing: str, dims: str = "16 16 12") -> None:
    """A MetaImage with a hand-written header (for spacings SimpleITK refuses to write)."""
    count = int(np.prod([int(v) for v in dims.split()]))
    header = (f"ObjectType = Image\nNDims = {len(dims.split())}\nDimSize = {dims}\nElementSpacing = {spacing}\n"
              "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n")
    path.write_bytes(header.encode() + np.zeros(count, np.float32).tobytes())


# ----------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii", "v.nrrd", "v.mha", "v.mhd"])
def test_write_read_round_trip_keeps_values_and_geometry(tmp_path, name):
    array = volume()
    write_volume(array, GEOMETRY, tmp_path / name)
    back, geometry = read_volume(tmp_path / name)
    assert back.dtype == np.float32 and back.shape == SHAPE
    np.testing.assert_array_equal(back, array)
    assert geometry.mismatch(GEOMETRY, tolerance=1e-5) is None
    assert geometry.shape == SHAPE and read_volume_info(tmp_path / name) == geometry
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the atomic write left nothing behind


def test_labels_keep_their_type_and_classes(tmp_path):
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:5, 3:7, 4:9] = 1
    labels[7:9, 10:12, 1:3] = 3
    write_volume(labels, GEOMETRY, tmp_path / "m.nii.gz")
    assert sitk.ReadImage(str(tmp_path / "m.nii.gz")).GetPixelID() == sitk.sitkUInt8
    back, _ = read_label_volume(tmp_path / "m.nii.gz")
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, labels)
    write_volume(labels.astype(np.float32) + 0.5, GEOMETRY, tmp_path / "f.nii.gz")
    with pytest.raises(DataError, match="f.nii.gz.*non-integer"):
        read_label_volume(tmp_path / "f.nii.gz")
    write_volume(-labels.astype(np.int16), GEOMETRY, tmp_path / "n.nii.gz")
    with pytest.raises(DataError, match="n.nii.gz.*negative"):
        read_label_volume(tmp_path / "n.nii.gz")


def test_write_replaces_an_existing_file_atomically(tmp_path):
    path = tmp_path / "out" / "v.nrrd"
    write_volume(volume(0), GEOMETRY, path)
    write_volume(volume(1), GEOMETRY, path)
    np.testing.assert_array_equal(read_volume(path)[0], volume(1))
    assert [p.name for p in path.parent.iterdir()] == ["v.nrrd"]
    with pytest.raises(DataError, match="unknown volume format"):
        write_volume(volume(), GEOMETRY, tmp_path / "v.png")


def test_suffixes_and_stems():
    assert is_volume_path("a/ct.NII.GZ") and is_volume_path("x.nrrd") and is_volume_path("x.mha")
    assert not is_volume_path("x.png") and not is_volume_path("x.gz")
    assert volume_stem("a/ct.nii.gz") == "ct" and volume_stem("b.mhd") == "b" and volume_stem("c.png") == "c"


def test_geometry_helpers():
    grid = VolumeGeometry.from_shape((4, 5, 6), spacing=(2.0, 1.0, 1.0))
    assert grid.size == (6, 5, 4) and grid.shape == (4, 5, 6)
    np.testing.assert_allclose(grid.center(), [5.0, 2.0, 1.5])
    np.testing.assert_allclose(GEOMETRY.index_to_physical((1, 0, 0)), [-10.0, 4.5 + 0.75, 30.0])  # x runs along +y


# ------------------------------------------------------------------------------------------ bad inputs
def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="gone.nii.gz: file does not exist"):
        read_volume(tmp_path / "gone.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"not a volume at all")
    with pytest.raises(DataError, match="junk.nii.gz: cannot be read as a volume"):
        read_volume(tmp_path / "junk.nii.gz")
    with pytest.raises(DataError, match="is a folder"):
        read_volume(tmp_path)


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii", "v.nrrd", "v.mha"])
def test_truncated_files(tmp_path, name):
    path = tmp_path / name
    write_volume(volume(), GEOMETRY, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(DataError, match=rf"{name}: .*(truncated|corrupt)") as info:
        read_volume(path)
    assert "SimpleITK" not in str(info.value) and "0x" not in str(info.value)


def test_zero_and_negative_spacing(tmp_path):
    write_mha_header(tmp_path / "zero.mha", "0 1 1")
    with pytest.raises(DataError, match=r"zero.mha: .*spacing \(x=0 mm\).*must be positive"):
        read_volume(tmp_path / "zero.mha")
    write_mha_header(tmp_path / "neg.mha", "1 -2 1")
    with pytest.raises(DataError, match=r"neg.mha: .*spacing \(y=-2 mm\)"):
        read_volume(tmp_path / "neg.mha")
    with pytest.raises(DataError, match="neg.mha: .*spacing"):
        read_volume_info(tmp_path / "neg.mha")


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_zero_pixdim_in_a_nifti_header(tmp_path, name):
    """A NIfTI written by SimpleITK with pixdim[1] patched to 0 (ITK alone would read it as 1 mm)."""
    write_volume(volume(), GEOMETRY, tmp_path / "v.nii")
    header = bytearray((tmp_path / "v.nii").read_bytes())
    struct.pack_into("<f", header, 80, 0.0)  # pixdim[1]: the x spacing
    struct.pack_into("<h", header, 254, 0)  # sform_code = 0: the qform and pixdim give the geometry
    if name.endswith(".gz"):
        (tmp_path / name).write_bytes(gzip.compress(bytes(header)))
    else:
        (tmp_path / name).write_bytes(bytes(header))
    for read in (read_volume, read_volume_info):
        with pytest.raises(DataError, match=rf"{name}: header gives a zero.*pixdim x=0"):
            read(tmp_path / name)


def test_negative_pixdim_in_a_nifti_header(tmp_path):
    write_volume(volume(), GEOMETRY, tmp_path / "v.nii")
    header = bytearray((tmp_path / "v.nii").read_bytes())
    struct.pack_into("<f", header, 84, -0.8)  # pixdim[2]: the y spacing
    struct.pack_into("<h", header, 254, 0)
    (tmp_path / "v.nii").write_bytes(bytes(header))
    with pytest.raises(DataError, match="v.nii: header gives a zero, negative.*y=-0.8"):
        read_volume(tmp_path / "v.nii")


def test_4d_volume_needs_channels(tmp_path):
    series = np.random.default_rng(0).random((3, *SHAPE)).astype(np.float32)
    image = sitk.GetImageFromArray(series, isVector=False)  # 4D: [t, z, y, x]
    sitk.WriteImage(image, str(tmp_path / "series.nii.gz"))
    with pytest.raises(DataError, match=r"series.nii.gz: holds 3 volumes .*\(3, 12, 16, 16\).*data.channels: 3"):
        read_volume(tmp_path / "series.nii.gz")
    channels, _ = read_volume(tmp_path / "series.nii.gz", channels=3)
    np.testing.assert_allclose(channels, series)
    with pytest.raises(DataError, match="has 3 channels.*data.channels is 1"):
        read_volume(tmp_path / "series.nii.gz", channels=1)


def test_4d_volume_with_a_size_1_axis_is_a_volume(tmp_path):
    single = np.random.default_rng(0).random((1, *SHAPE)).astype(np.float32)
    for name in ("one.nii.gz", "one.mha"):
        sitk.WriteImage(sitk.GetImageFromArray(single, isVector=False), str(tmp_path / name))
        array, geometry = read_volume(tmp_path / name)
        assert array.shape == SHAPE and geometry.shape == SHAPE
        np.testing.assert_allclose(array, single[0])


def test_grey_volume_repeated_for_three_channels(tmp_path):
    write_volume(volume(), GEOMETRY, tmp_path / "v.nii.gz")
    rgb, _ = read_volume(tmp_path / "v.nii.gz", channels=3)
    assert rgb.shape == (3, *SHAPE) and np.array_equal(rgb[0], rgb[2])


def test_2d_image_where_a_volume_is_expected(tmp_path):
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(tmp_path / "slice.png")
    with pytest.raises(DataError, match=r"slice.png: is a 2D image \(size 20x16.*model.spatial_dims: 3"):
        read_volume(tmp_path / "slice.png")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((16, 20), np.float32)), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(DataError, match="flat.nii.gz: is a 2D image"):
        read_volume(tmp_path / "flat.nii.gz")


def test_non_finite_values(tmp_path):
    array = volume()
    array[3, 4, 5] = np.nan
    write_volume(array, GEOMETRY, tmp_path / "nan.nrrd")
    with pytest.raises(DataError, match="nan.nrrd: volume holds NaN"):
        read_volume(tmp_path / "nan.nrrd")


@pytest.mark.parametrize(("change", "what"), [
    ({"size": (16, 16, 11)}, "size 16x16x11 differs from 16x16x12"),
    ({"spacing": (0.75, 0.8, 3.0)}, "spacing"),
    ({"origin": (-10.0, 4.5, 31.0)}, "origin"),
    ({"direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}, "direction"),
])
def test_mask_on_another_grid_names_both_files(change, what):
    other = VolumeGeometry(**{**GEOMETRY.__dict__, **change})
    with pytest.raises(DataError, match=rf"^masks/m.nii.gz: mask is not on the voxel grid of its image "
                                        rf"images/i.nii.gz: the mask's {what}"):
        check_same_grid(GEOMETRY, other, "images/i.nii.gz", "masks/m.nii.gz")


def test_grid_check_tolerates_float32_header_rounding():
    rounded = VolumeGeometry(GEOMETRY.size, tuple(np.float32(GEOMETRY.spacing)),
                             tuple(np.asarray(GEOMETRY.origin) + 1e-5), GEOMETRY.direction)
    check_same_grid(GEOMETRY, rounded, "i", "m")


# ------------------------------------------------------------------------------------------ resampling
def test_resample_to_reference_nearest_on_a_finer_grid():
    labels = np.zeros((4, 4, 4), np.int64)
    labels[1:3, 1:3, 1:3] = 2
    coarse = VolumeGeometry.from_shape((4, 4, 4), spacing=(2.0, 2.0, 2.0))
    fine = VolumeGeometry((8, 8, 8), (1.0, 1.0, 1.0), (-0.5, -0.5, -0.5))  # each coarse voxel -> 2x2x2
    out = resample_to_reference(labels, coarse, fine)
    assert out.dtype == np.int64 and out.shape == (8, 8, 8)
    np.testing.assert_array_equal(out, labels.repeat(2, 0).repeat(2, 1).repeat(2, 2))
    back = resample_to_reference(out, fine, coarse)
    np.testing.assert_array_equal(back, labels)
    probabilities = resample_to_reference(labels.astype(np.float32) / 2, coarse, fine, interpolation="linear")
    assert probabilities.dtype == np.float32 and 0 < probabilities.mean() < 1


def test_resample_outside_the_source_gets_the_default():
    grid = VolumeGeometry.from_shape((2, 2, 2))
    shifted = VolumeGeometry((2, 2, 2), (1.0, 1.0, 1.0), (10.0, 10.0, 10.0))
    out = resample_to_reference(np.ones((2, 2, 2), np.uint8), grid, shifted, default_value=7)
    assert (out == 7).all() and out.dtype == np.uint8


# ------------------------------------------------------------------------------------------ no extra
def test_missing_simpleitk_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    with pytest.raises(MissingExtraError, match=r"medmtl\[volumes\].*SimpleITK"):
        read_volume(tmp_path / "v.nii.gz")


# ------------------------------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_real_nrrd_image_and_label_share_a_grid(volumes_root):
    image_path, label_path = volumes_root / "brain1_image.nrrd", volumes_root / "brain1_label.nrrd"
    if not image_path.exists() or not label_path.exists():
        pytest.skip(f"{image_path} or {label_path} not found")
    image, geometry = read_volume(image_path)
    labels, label_geometry = read_label_volume(label_path)
    assert image.shape == labels.shape == geometry.shape == (25, 256, 256)
    check_same_grid(geometry, label_geometry, image_path, label_path)
    assert labels.max() >= 1 and image.std() > 0
    np.testing.assert_allclose(geometry.spacing, (0.78125, 0.78125, 6.5), rtol=1e-6)


@pytest.mark.realdata
def test_real_nifti_ct(volumes_root):
    path = volumes_root / "example_ct_sm.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    image, geometry = read_volume(path)
    assert image.shape == (30, 101, 122) and geometry.spacing == (3.0, 3.0, 3.0)
    assert image.min() >= -1100 and image.max() > 200  # Hounsfield units
