"""VolumeDataset, 3D archives and the 3D data build; volumes given to a 2D model and the reverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medmtl.data.build import build_datasets, inference_dataset
from medmtl.data.config import DataConfig, VolumeConfig
from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.manifest import read_manifest
from medmtl.data.npz import read_medmnist_npz
from medmtl.data.records import Record
from medmtl.data.volume_dataset import VolumeDataset, crop_or_pad
from medmtl.data.volume_io import VolumeGeometry, resample_to_reference, write_volume
from medmtl.errors import DataError

SHAPE = (12, 16, 16)  # (z, y, x)
GEOMETRY = VolumeGeometry((16, 16, 12), (0.8, 0.8, 2.0), (-6.0, -6.0, -12.0))
try:
    import SimpleITK  # noqa: F401
except ImportError:
    HAS_SITK = False
else:
    HAS_SITK = True
needs_sitk = pytest.mark.skipif(not HAS_SITK, reason="the optional extra 'volumes' (SimpleITK) is not installed")

def ct(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(-500, 300, SHAPE).astype(np.float32)


def lesion(seed: int = 0) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    z, y, x = 3 + seed % 3, 4 + seed % 4, 5
    mask[z:z + 4, y:y + 5, x:x + 6] = 1
    return mask


@pytest.fixture
def volume_folder(tmp_path):
    """Three CT-like NIfTI volumes with masks and a manifest (patient groups, labels)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows = ["name,patient_id,image,mask,diagnosis"]
    for i in range(3):
        write_volume(ct(i), GEOMETRY, tmp_path / "images" / f"n{i}.nii.gz")
        write_volume(lesion(i), GEOMETRY, tmp_path / "masks" / f"n{i}.nii.gz")
        rows.append(f"n{i},P{i // 2},images/n{i}.nii.gz,masks/n{i}.nii.gz,{i % 2}")
    (tmp_path / "nodules.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def lung(**kwargs) -> VolumeConfig:
    return VolumeConfig(**{"spacing": [1.0, 1.0, 2.0], "intensity": "window", "window": [-1000, 400],
                           "crop": "mask", **kwargs})


# ------------------------------------------------------------------------------------------ file records
@needs_sitk
def test_manifest_of_nifti_files(volume_folder):
    records = read_manifest(volume_folder / "nodules.csv", label_col="diagnosis", group_col="patient_id")
    assert [r.name for r in records] == ["n0", "n1", "n2"]  # the whole .nii.gz ending goes
    assert [r.group for r in records] == ["P0", "P0", "P1"] and records[1].label == 1
    dataset = VolumeDataset(records, image_shape=(8, 12, 12), volume=lung())
    sample = dataset[0]
    assert sample["image"].shape == (1, 8, 12, 12) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (8, 12, 12) and sample["mask"].dtype == torch.long
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1
    volume_mm3 = float(sample["mask"].sum()) * 1 * 1 * 2  # resampled from 0.8 x 0.8 x 2 mm to 1 x 1 x 2 mm
    assert volume_mm3 == pytest.approx(lesion(0).sum() * 0.8 * 0.8 * 2, rel=0.25)
    assert sample["label"].item() == 0 and sample["name"] == "n0"
    assert dataset.spatial_dims == 3 and dataset.available_targets() == {"label": 3, "mask": 3}
    assert dataset.labels() == [0, 1, 0] and dataset.names() == ["n0", "n1", "n2"]
    assert dataset.source_size(2) == SHAPE


@needs_sitk
def test_prediction_maps_back_onto_the_input_grid(volume_folder):
    records = read_manifest(volume_folder / "nodules.csv")
    dataset = VolumeDataset(records, image_shape=(8, 12, 12), volume=lung(spacing=None, orientation="RAS"))
    sample = dataset[1]
    original, grid = dataset.geometry(1)
    assert original.mismatch(GEOMETRY, 1e-5) is None and grid.shape == (8, 12, 12)
    back = resample_to_reference(sample["mask"].numpy(), grid, original)
    np.testing.assert_array_equal(back, lesion(1))


@needs_sitk
def test_mask_on_another_grid_names_both_files(tmp_path):
    write_volume(ct(), GEOMETRY, tmp_path / "ct.nii.gz")
    moved = VolumeGeometry(GEOMETRY.size, GEOMETRY.spacing, (0.0, -6.0, -12.0))
    write_volume(lesion(), moved, tmp_path / "ct_mask.nii.gz")
    record = Record("ct", image_path=tmp_path / "ct.nii.gz", mask_paths=[tmp_path / "ct_mask.nii.gz"])
    with pytest.raises(DataError, match=r"ct_mask.nii.gz: mask is not on the voxel grid of its image .*ct.nii.gz: "
                                        r"the mask's origin \(0, -6, -12\) differs from \(-6, -6, -12\)"):
        VolumeDataset([record], image_shape=(8, 8, 8), volume=lung())[0]
    write_volume(lesion()[:-1], VolumeGeometry((16, 16, 11), GEOMETRY.spacing, GEOMETRY.origin),
                 tmp_path / "short.nii.gz")
    record = Record("ct", image_path=tmp_path / "ct.nii.gz", mask_paths=[tmp_path / "short.nii.gz"])
    with pytest.raises(DataError, match=r"short.nii.gz: .*ct.nii.gz: the mask's size 16x16x11 differs from 16x16x12"):
        VolumeDataset([record], image_shape=(8, 8, 8))[0]


@needs_sitk
def test_empty_mask_where_a_lesion_is_expected(tmp_path):
    write_volume(ct(), GEOMETRY, tmp_path / "ct.nii.gz")
    write_volume(np.zeros(SHAPE, np.uint8), GEOMETRY, tmp_path / "empty.nii.gz")
    record = Record("ct", image_path=tmp_path / "ct.nii.gz", mask_paths=[tmp_path / "empty.nii.gz"],
                    expects_lesion=True)
    with pytest.raises(DataError, match=r"empty.nii.gz: mask has no foreground, but image .*ct.nii.gz is labelled"):
        VolumeDataset([record], image_shape=(8, 8, 8), volume=lung())[0]
    record.expects_lesion = False  # an empty mask is a valid label: "no lesion"
    assert VolumeDataset([record], image_shape=(8, 8, 8), volume=lung())[0]["mask"].sum() == 0


@needs_sitk
def test_several_mask_files_are_merged(tmp_path):
    write_volume(ct(), GEOMETRY, tmp_path / "ct.nii.gz")
    write_volume(lesion(0), GEOMETRY, tmp_path / "a.nii.gz")
    write_volume(2 * lesion(2), GEOMETRY, tmp_path / "b.nii.gz")
    record = Record("ct", image_path=tmp_path / "ct.nii.gz", mask_paths=[tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"])
    mask = VolumeDataset([record], image_shape=SHAPE, volume=VolumeConfig(crop="center"))[0]["mask"]
    np.testing.assert_array_equal(mask.numpy(), (lesion(0) | lesion(2)).astype(np.int64))


@needs_sitk
def test_2d_image_given_to_a_3d_model(tmp_path):
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "slice.png")
    with pytest.raises(DataError, match=r"slice.png: is a 2D image.*model.spatial_dims: 2"):
        VolumeDataset([Record("s", image_path=tmp_path / "slice.png")], image_shape=(8, 8, 8))[0]
    with pytest.raises(DataError, match=r"2D image \(shape \(16, 16\)\) given to a 3D model"):
        VolumeDataset([Record("s", image_array=np.zeros((16, 16), np.uint8))], image_shape=(8, 8, 8))[0]


def test_volume_given_to_a_2d_model(tmp_path):
    with pytest.raises(DataError, match=r"ct.nii.gz: is a volume file .*set model.spatial_dims: 3"):
        MultiTaskDataset([Record("ct", image_path=tmp_path / "ct.nii.gz")], image_size=16)
    with pytest.raises(DataError, match=r"image array of shape \(12, 16, 16\) holds a volume.*model.spatial_dims: 3"):
        MultiTaskDataset([Record("v", image_array=np.zeros(SHAPE, np.uint8))], image_size=16)
    rgb = MultiTaskDataset([Record("rgb", image_array=np.zeros((16, 16, 3), np.uint8))], channels=3, image_size=16)
    assert rgb[0]["image"].shape == (3, 16, 16) and rgb.spatial_dims == 2


def test_2d_dataset_takes_a_height_and_width():
    dataset = MultiTaskDataset([Record("a", image_array=np.zeros((20, 30), np.uint8),
                                       mask_array=np.ones((20, 30), np.uint8))], image_size=(12, 18))
    sample = dataset[0]
    assert sample["image"].shape == (1, 12, 18) and sample["mask"].shape == (12, 18)
    assert dataset.image_shape == (12, 18)
    assert MultiTaskDataset([], image_size=16).image_shape == (16, 16)


# ------------------------------------------------------------------------------------------ in-memory records
def test_in_memory_volumes_are_scaled_and_resized_without_a_volume_section():
    array = np.random.default_rng(0).integers(0, 256, (6, 8, 8), dtype=np.uint8)
    mask = np.zeros((6, 8, 8), np.int64)
    mask[2:4, 2:6, 2:6] = 1
    dataset = VolumeDataset([Record("v", image_array=array, mask_array=mask, targets={"label": 1})],
                            image_shape=(12, 16, 16))
    sample = dataset[0]
    assert sample["image"].shape == (1, 12, 16, 16) and sample["mask"].shape == (12, 16, 16)
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1
    assert sample["mask"].sum() == mask.sum() * 8
    same = VolumeDataset([Record("v", image_array=array)], image_shape=(6, 8, 8))[0]["image"]
    np.testing.assert_allclose(same[0].numpy(), array / 255, atol=1e-6)  # uint8 / 255, as in 2D
    original, grid = dataset.geometry(0)
    assert original is None
    if HAS_SITK:  # the sample grid is in the array's voxel frame
        back = resample_to_reference(sample["mask"].numpy(), grid, VolumeGeometry.from_shape(dataset.source_size(0)))
        np.testing.assert_array_equal(back, mask)


def test_in_memory_volumes_are_cropped_or_padded_with_a_volume_section():
    array = np.linspace(0, 1, 6 * 8 * 10, dtype=np.float32).reshape(6, 8, 10)
    dataset = VolumeDataset([Record("v", image_array=array)], image_shape=(4, 12, 6), volume=VolumeConfig())
    image = dataset[0]["image"][0].numpy()
    assert image.shape == (4, 12, 6)
    np.testing.assert_allclose(image[:, 2:10], array[1:5, :, 2:8])  # a centre crop in z and x
    assert (image[:, :2] == 0).all() and (image[:, 10:] == 0).all()  # padded in y
    rgb = VolumeDataset([Record("v", image_array=array)], channels=3, image_shape=(6, 8, 10), volume=VolumeConfig())
    assert rgb[0]["image"].shape == (3, 6, 8, 10)
    with pytest.raises(DataError, match="image array has 2 channels"):
        VolumeDataset([Record("v", image_array=np.zeros((2, 6, 8, 10)))], image_shape=(6, 8, 10))[0]


def test_crop_or_pad():
    array = np.arange(24).reshape(1, 2, 3, 4)
    out = crop_or_pad(array, (-1, 1, 2), (4, 2, 3), value=-1)
    assert out.shape == (1, 4, 2, 3)
    np.testing.assert_array_equal(out[0, 1:3, :, :2], array[0, :, 1:3, 2:4])
    assert (out[0, 0] == -1).all() and (out[0, :, :, 2] == -1).all()
    assert (crop_or_pad(array, (5, 0, 0), (2, 2, 2), 9) == 9).all()


def test_random_training_crops_follow_torch_rng():
    array = np.random.default_rng(0).random((10, 12, 12)).astype(np.float32)
    mask = (array > 0.5).astype(np.int64)
    cfg = VolumeConfig(crop="center", crop_jitter=2)
    train = VolumeDataset([Record("v", image_array=array, mask_array=mask)], image_shape=(6, 8, 8), volume=cfg,
                          train=True)
    torch.manual_seed(0)
    first = [train[0] for _ in range(6)]
    torch.manual_seed(0)
    again = [train[0] for _ in range(6)]
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again))
    assert len({tuple(s["image"].flatten()[:5].tolist()) for s in first}) > 1  # the crops move
    for sample in first:
        assert sample["image"].shape == (1, 6, 8, 8) and sample["mask"].shape == (6, 8, 8)
        assert torch.equal(sample["mask"], (sample["image"][0] > 0.5).long())  # image and mask cut alike
    evaluation = VolumeDataset([Record("v", image_array=array)], image_shape=(6, 8, 8), volume=cfg)
    np.testing.assert_allclose(evaluation[0]["image"][0].numpy(), array[2:8, 2:10, 2:10])
    _, grid = train.geometry(0)
    assert grid.size == (8, 8, 6) and grid.origin == (2.0, 2.0, 2.0)  # the central (evaluation) crop


# ------------------------------------------------------------------------------------------ archives, build
def write_npz(path, train_shape, val_shape=None):
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, train_shape, dtype=np.uint8),
              "train_labels": np.arange(train_shape[0])[:, None] % 2}
    if val_shape is not None:
        arrays |= {"val_images": rng.integers(0, 256, val_shape, dtype=np.uint8),
                   "val_labels": np.arange(val_shape[0]) % 2}
    np.savez(path, **arrays)
    return path


def test_medmnist_3d_archive(tmp_path):
    path = write_npz(tmp_path / "v3d.npz", (4, 12, 16, 16), (2, 12, 16, 16))
    records = read_medmnist_npz(path, "train", spatial_dims=3)
    assert len(records) == 4 and records[1].label == 1 and records[0].image_array.shape == SHAPE
    with pytest.raises(DataError, match=r"v3d.npz: 'train_images' has shape \(4, 12, 16, 16\): it holds volumes.*"
                                        r"model.spatial_dims: 3"):
        read_medmnist_npz(path, "train")
    flat = write_npz(tmp_path / "flat.npz", (4, 16, 16))
    with pytest.raises(DataError, match="flat.npz: 2D images given to a 3D model"):
        read_medmnist_npz(flat, "train", spatial_dims=3)
    rgb = write_npz(tmp_path / "rgb.npz", (4, 16, 16, 3))
    with pytest.raises(DataError, match="rgb.npz: 2D images given to a 3D model"):
        read_medmnist_npz(rgb, "train", spatial_dims=3)


def test_build_3d_datasets_from_an_archive(tmp_path):
    path = write_npz(tmp_path / "v3d.npz", (4, 12, 16, 16), (2, 12, 16, 16))
    cfg = DataConfig.model_validate({"kind": "npz", "npz": str(path), "image_size": [12, 16, 16],
                                     "augment": {"hflip": True}})
    assert cfg.spatial_dims == 3
    datasets = build_datasets(cfg)
    assert set(datasets) == {"train", "val"}
    assert all(isinstance(d, VolumeDataset) for d in datasets.values())
    assert datasets["train"].train and not datasets["val"].train and datasets["val"].transform is None
    sample = datasets["train"][0]
    assert sample["image"].shape == (1, 12, 16, 16) and sample["label"].item() == 0


@needs_sitk
def test_build_3d_datasets_from_a_manifest_and_predict_inputs(volume_folder):
    cfg = DataConfig.model_validate({
        "kind": "manifest", "manifest": str(volume_folder / "nodules.csv"), "label_col": "diagnosis",
        "group_col": "patient_id", "image_size": [8, 12, 12], "val_fraction": 0.34, "classes": ["0", "1"],
        "volume": {"spacing": [1.0, 1.0, 2.0], "intensity": "window", "crop": "mask", "crop_jitter": 1}})
    datasets = build_datasets(cfg)
    train, val = datasets["train"], datasets["val"]
    groups = [{r.group for r in d.records} for d in (train, val)]
    assert not groups[0] & groups[1]  # a patient's nodules stay in one split
    assert train.margin == 1 and val.margin == 0
    assert train[0]["image"].shape == val[0]["image"].shape == (1, 8, 12, 12)
    inference = inference_dataset(cfg, [volume_folder / "images" / "n0.nii.gz"])
    assert isinstance(inference, VolumeDataset) and inference.names() == ["n0"]
    sample = inference[0]
    assert sample["image"].shape == (1, 8, 12, 12) and "mask" not in sample
    original, grid = inference.geometry(0)
    assert original.mismatch(GEOMETRY, 1e-5) is None and grid.shape == (8, 12, 12)


def test_2d_build_passes_height_and_width(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", train_images=rng.integers(0, 256, (6, 20, 30), dtype=np.uint8),
             train_labels=np.arange(6) % 2)
    cfg = DataConfig.model_validate({"kind": "npz", "npz": str(tmp_path / "a.npz"), "image_size": [16, 24]})
    assert build_datasets(cfg)["train"][0]["image"].shape == (1, 16, 24)


def test_build_3d_phantoms():
    pytest.importorskip("medmtl.data.phantom3d", reason="3D phantoms (medmtl.data.phantom3d) are not there yet")
    cfg = DataConfig.model_validate({"kind": "phantom", "image_size": [16, 16, 16],
                                     "phantom": {"n_train": 2, "n_val": 1}})
    datasets = build_datasets(cfg)
    assert isinstance(datasets["train"], VolumeDataset) and len(datasets["val"]) == 1
    sample = datasets["train"][0]
    assert sample["image"].shape == (1, 16, 16, 16) and sample["mask"].shape == (16, 16, 16)


# ------------------------------------------------------------------------------------------ real data
@pytest.mark.realdata
@needs_sitk
def test_real_lidc_nodule(volumes_root):
    csv = volumes_root / "lidc-nodules" / "nodules.csv"
    if not csv.exists():
        pytest.skip(f"{csv} not found")
    records = read_manifest(csv, name_col="name", label_col="diagnosis", group_col="patient_id")
    assert records[0].group == "LIDC-IDRI-0001" and records[0].name == "LIDC-IDRI-0001_R_1"
    cfg = VolumeConfig(spacing=[1.0, 1.0, 1.0], intensity="window", window=[-1000, 400], crop="mask")
    dataset = VolumeDataset(records[:1], image_shape=(16, 32, 32), volume=cfg)
    sample = dataset[0]
    assert sample["image"].shape == (1, 16, 32, 32) and 0 <= sample["image"].min() <= sample["image"].max() <= 1
    assert sample["mask"].sum() > 0 and sample["label"].item() == records[0].label
    assert dataset.source_size(0) == (11, 64, 53)  # (z, y, x), from the header


@pytest.mark.realdata
def test_real_vesselmnist3d(volumes_root):
    path = volumes_root / "vesselmnist3d" / "vesselmnist3d.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    val = read_medmnist_npz(path, "val", spatial_dims=3)
    assert len(val) == 191 and val[0].image_array.shape == (28, 28, 28)
    sample = VolumeDataset(val[:2], image_shape=(28, 28, 28))[1]
    assert sample["image"].shape == (1, 28, 28, 28) and sample["image"].max() <= 1
