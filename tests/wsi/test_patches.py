import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medmtl.data.build import build_datasets
from medmtl.data.config import DataConfig
from medmtl.data.manifest import read_manifest
from medmtl.errors import ConfigError, DataError
from medmtl.wsi.patches import MANIFEST_NAME, extract_patches
from medmtl.wsi.slide import open_slide
from medmtl.wsi.synthetic import make_synthetic_dataset
from medmtl.wsi.tiling import tile_slide
from medmtl.wsi.tissue import TissueConfig, detect_tissue, saturation

PATCHES = 6


@pytest.fixture(scope="module")
def slides_csv(tmp_path_factory):
    """Three 2048 x 1536 synthetic slides and their ``labels.csv`` (image, label, value)."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("slides"), 3, width=2048, height=1536, seed=4,
                                  show_progress=False)


@pytest.fixture(scope="module")
def extracted(slides_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("patches")
    return extract_patches(slides_csv, out, PATCHES, patch_size=64, seed=1)


def files(folder):
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*.png")}


def test_manifest_has_patches_slides_and_weak_labels(slides_csv, extracted):
    assert extracted.name == MANIFEST_NAME
    table = pd.read_csv(extracted, dtype=str)
    assert list(table.columns) == ["image", "slide", "label", "value"]
    labels = pd.read_csv(slides_csv, dtype=str)
    labels["slide"] = labels["image"].str.replace(".tif", "", regex=False)
    counts = table.groupby("slide").size()
    assert set(counts.index) == set(labels["slide"]) and (counts == PATCHES).all()
    merged = table.merge(labels, on="slide", suffixes=("", "_slide"))
    assert (merged["label"] == merged["label_slide"]).all() and (merged["value"] == merged["value_slide"]).all()
    assert set(files(extracted.parent)) == set(table["image"])

    records = read_manifest(extracted, image_col="image", label_col="label", value_cols=["value"], mask_col=None)
    assert len(records) == len(table)
    for record, (_, row) in zip(records, table.iterrows()):
        assert record.targets == {"label": int(row["label"]), "value": float(row["value"])}
        assert record.image_path == extracted.parent / row["image"]


def test_patches_lie_on_tissue(slides_csv, extracted):
    table = pd.read_csv(extracted, dtype=str)
    for stem, group in table.groupby("slide"):
        with open_slide(slides_csv.parent / f"{stem}.tif") as slide:
            grid = tile_slide(slide, 64, target_mpp=0.5, tissue=detect_tissue(slide), min_tissue_fraction=0.5)
        kept = {f"{stem}/{r}_{c}.png" for r, c in zip(grid.rows, grid.cols)}
        assert set(group["image"]) <= kept
        for name in group["image"]:
            pixels = np.asarray(Image.open(extracted.parent / name))
            assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
            assert (saturation(pixels) > 0.1).mean() > 0.3  # pink/purple, not white glass


def test_build_datasets_reads_the_patches_with_hed_augmentation(extracted):
    cfg = DataConfig(kind="manifest", manifest=str(extracted), channels=3, image_size=32, label_col="label",
                     value_cols=["value"], mask_col=None, val_fraction=0.25, augment={"hed": 0.05, "hflip": True})
    datasets = build_datasets(cfg)
    assert len(datasets["train"]) + len(datasets["val"]) == 3 * PATCHES
    sample = datasets["train"][0]
    assert sample["image"].shape == (3, 32, 32) and 0 <= sample["image"].min() <= sample["image"].max() <= 1
    assert "label" in sample and "value" in sample


def test_rerun_writes_nothing_new_and_resumes(slides_csv, tmp_path):
    manifest = extract_patches(slides_csv, tmp_path, 3, patch_size=64, seed=2)
    before = files(tmp_path)
    text = manifest.read_text()
    assert extract_patches(slides_csv, tmp_path, 3, patch_size=64, seed=2) == manifest
    assert files(tmp_path) == before and manifest.read_text() == text
    removed = sorted(before)[0]
    (tmp_path / removed).unlink()
    extract_patches(slides_csv, tmp_path, 3, patch_size=64, seed=2)
    after = files(tmp_path)
    assert set(after) == set(before)
    assert [name for name in after if after[name] != before[name]] == [removed]
    assert not list(tmp_path.rglob("*.tmp"))


def test_deterministic_with_the_seed_and_more_patches_extend_the_draw(slides_csv, extracted, tmp_path):
    again = extract_patches(slides_csv, tmp_path / "again", PATCHES, patch_size=64, seed=1)
    assert again.read_text() == extracted.read_text()
    name = pd.read_csv(again)["image"][0]
    assert (tmp_path / "again" / name).read_bytes() == (extracted.parent / name).read_bytes()
    other = pd.read_csv(extract_patches(slides_csv, tmp_path / "other", PATCHES, patch_size=64, seed=2))
    assert set(other["image"]) != set(pd.read_csv(extracted)["image"])
    fewer = pd.read_csv(extract_patches(slides_csv, tmp_path / "fewer", 2, patch_size=64, seed=1))
    assert set(fewer["image"]) <= set(pd.read_csv(extracted)["image"]) and len(fewer) == 3 * 2


def test_slide_list_and_white_slide(synthetic_slide, white_slide, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="medmtl.wsi.patches"):
        manifest = extract_patches([white_slide.path, synthetic_slide.path], tmp_path, 4, patch_size=64)
    assert any("white.tif" in r.getMessage() and "no patch" in r.getMessage() for r in caplog.records)
    table = pd.read_csv(manifest, dtype=str)
    assert list(table.columns) == ["image", "slide"] and set(table["slide"]) == {"tumour"} and len(table) == 4
    assert not (tmp_path / "white").exists()
    assert len(read_manifest(manifest, mask_col=None)) == 4

    with caplog.at_level(logging.WARNING, logger="medmtl.wsi.patches"):
        empty = extract_patches(white_slide.path, tmp_path / "empty", 4)
    assert empty.read_text() == "image,slide\n"
    assert any("no slide gave a patch" in r.getMessage() for r in caplog.records)


def test_errors_name_the_file(slides_csv, synthetic_slide, tmp_path):
    with pytest.raises(ConfigError, match="patches_per_slide"):
        extract_patches(slides_csv, tmp_path, 0)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nslide_0000.tif,1\n")
    with pytest.raises(DataError, match="bad.csv.*no column 'image'"):
        extract_patches(bad, tmp_path, 2)
    bad.write_text("image,label\nmissing.tif,1\n")
    with pytest.raises(DataError, match="bad.csv.*row 1.*missing.tif does not exist"):
        extract_patches(bad, tmp_path, 2)
    with pytest.raises(DataError, match="nowhere.svs"):
        extract_patches([tmp_path / "nowhere.svs"], tmp_path, 2)
    with pytest.raises(DataError, match="share the name 'tumour'"):
        extract_patches([synthetic_slide.path, synthetic_slide.path], tmp_path, 2)
    not_a_slide = tmp_path / "notes.txt"
    not_a_slide.write_text("hello")
    with pytest.raises(DataError, match="notes.txt"):
        extract_patches([not_a_slide], tmp_path, 2)


#: a tissue mask fine enough for images of a few hundred pixels (the default's 32 px cells suit slides)
FINE = TissueConfig(downsample=4)


def _fields_of_view(folder, n=2, size=(96, 128)):
    """GlaS-like ordinary images: a textured tissue block on white, a gland mask (0/255) inside it."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        pixels = np.full((*size, 3), 240, np.uint8)
        pixels[8:88, 8:120] = np.array([200, 110, 170]) + rng.integers(-30, 30, (80, 112, 3))  # H&E pink
        mask = np.zeros(size, np.uint8)
        mask[24:56, 32:80] = 255
        Image.fromarray(pixels).save(folder / f"f{i}.jpg", quality=95)
        Image.fromarray(mask).save(folder / f"f{i}_mask.png")
        rows.append(f"f{i}.jpg,f{i}_mask.png,{i % 2},{i + 1}")
    (folder / "fields.csv").write_text("image,mask,malignant,grade\n" + "\n".join(rows) + "\n")
    return folder / "fields.csv"


def test_ordinary_images_with_masks_and_an_mpp_option(tmp_path):
    csv_path = _fields_of_view(tmp_path)
    manifest = extract_patches(csv_path, tmp_path / "out", 50, patch_size=16, target_mpp=1.0, slide_mpp=0.5,
                               min_tissue_fraction=0.5, tissue=FINE)
    table = pd.read_csv(manifest, dtype=str)
    assert list(table.columns) == ["image", "slide", "mask", "malignant", "grade"]
    assert len(table) > 0 and set(table["slide"]) == {"f0", "f1"}
    for row in table.itertuples():
        mask = np.asarray(Image.open(tmp_path / "out" / row.mask))
        assert mask.shape == (16, 16) and set(np.unique(mask)) <= {0, 255}  # nearest: still a 0/255 mask
        r, c = (int(v) for v in row.image.split("/")[1][:-4].split("_"))
        # 16 px at 1 µm/px = 32 px of the 0.5 µm/px image: the patch at (r, c) covers rows 32r.., cols 32c..
        source = np.zeros((96, 128), np.uint8)
        source[24:56, 32:80] = 255
        np.testing.assert_array_equal(mask, source[32 * r:32 * r + 32:2, 32 * c:32 * c + 32:2])
    records = read_manifest(manifest, label_col="malignant", mask_col="mask")
    assert len(records) == len(table) and len(records[0].mask_paths) == 1


def test_a_csv_mpp_column_wins_and_bad_rows_are_named(tmp_path):
    csv_path = _fields_of_view(tmp_path)
    text = csv_path.read_text().splitlines()
    (tmp_path / "with_mpp.csv").write_text("\n".join([text[0] + ",mpp", text[1] + ",1.0", text[2] + ",0.5"]) + "\n")
    manifest = extract_patches(tmp_path / "with_mpp.csv", tmp_path / "out", 50, patch_size=16, target_mpp=1.0,
                               slide_mpp=0.25, min_tissue_fraction=0.5, tissue=FINE)
    table = pd.read_csv(manifest, dtype=str)
    assert "mpp" not in table.columns  # the slide's own columns are not targets
    positions = {slide: {tuple(int(v) for v in name.split("/")[1][:-4].split("_")) for name in group["image"]}
                 for slide, group in table.groupby("slide")}
    assert max(r for r, _ in positions["f0"]) <= 5 and max(r for r, _ in positions["f1"]) <= 2  # 96 px, 48 px tall
    bad = {"missing_mask": (text[1].replace("f0_mask.png", "gone.png"), r"row 1 \(line 2\), column 'mask': mask .*gone"),
           "bad_mpp": (text[1] + ",fast", r"row 1 \(line 2\), column 'mpp': 'fast' is not a positive number")}
    for name, (row, pattern) in bad.items():
        header = text[0] + (",mpp" if name == "bad_mpp" else "")
        (tmp_path / f"{name}.csv").write_text(header + "\n" + row + "\n")
        with pytest.raises(DataError, match=f"{name}.csv: {pattern}"):
            extract_patches(tmp_path / f"{name}.csv", tmp_path / name, 4, patch_size=16, target_mpp=1.0,
                            slide_mpp=0.5)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "f1_mask.png")  # not the image's size
    with pytest.raises(DataError, match=r"f1_mask\.png: mask is 10×10 px but its slide .*f1\.jpg is 128×96"):
        extract_patches(csv_path, tmp_path / "sized", 4, patch_size=16, target_mpp=1.0, slide_mpp=0.5)
