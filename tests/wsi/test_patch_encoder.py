"""The patch encoder sees a tile exactly as training sees the same tile read from an image file."""

import numpy as np
import pytest
import torch
from PIL import Image

from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.records import Record
from medmtl.encoders import create_encoder
from medmtl.wsi.patch_encoder import PatchEncoder


def _tiles(n: int = 3, size: int = 32) -> np.ndarray:
    tiles = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    tiles[0, :4] = (255, 0, 0)  # pure colours and the extremes
    tiles[0, 4:8] = (0, 0, 255)
    tiles[1, :, :2] = 255
    tiles[1, :, 2:4] = 0
    return tiles


@pytest.mark.parametrize("channels", [1, 3])
def test_preprocess_matches_the_training_dataset(tmp_path, channels):
    tiles = _tiles()
    records = []
    for i, tile in enumerate(tiles):
        path = tmp_path / f"tile{i}.png"
        Image.fromarray(tile).save(path)
        records.append(Record(f"tile{i}", image_path=path))
    dataset = MultiTaskDataset(records, channels=channels, image_size=tiles.shape[1])
    trained_on = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    encoder = PatchEncoder(create_encoder("small_cnn", in_channels=channels, width=4, stages=2), channels)
    fed = encoder.preprocess(tiles)
    assert fed.dtype == torch.float32 and fed.shape == (3, channels, 32, 32)
    torch.testing.assert_close(fed, trained_on, atol=1e-6, rtol=0)


def test_encode_is_the_pooled_deepest_map_of_the_preprocessed_tiles():
    torch.manual_seed(0)
    encoder = PatchEncoder(create_encoder("small_cnn", in_channels=1, width=4, stages=2), 1)
    tiles = _tiles(n=2, size=16)
    with torch.no_grad():
        expected = encoder.encoder(encoder.preprocess(tiles))[-1].mean(dim=(2, 3)).numpy()
    embedding = encoder.encode(tiles)
    assert embedding.shape == (2, encoder.channels) and embedding.dtype == np.float32
    np.testing.assert_allclose(embedding, expected, rtol=1e-6, atol=1e-6)
