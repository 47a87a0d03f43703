import time

import numpy as np
import pytest
import torch
from skimage.measure import label, regionprops

from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.phantom import make_phantom_records


def test_deterministic_shapes_and_classes():
    a = make_phantom_records(12, image_size=48, seed=3)
    b = make_phantom_records(12, image_size=48, seed=3)
    c = make_phantom_records(12, image_size=48, seed=4)
    assert all(np.array_equal(x.image_array, y.image_array) and np.array_equal(x.mask_array, y.mask_array)
               for x, y in zip(a, b))
    assert not np.array_equal(a[0].image_array, c[0].image_array)
    assert a[0].image_array.shape == (48, 48) and a[0].image_array.dtype == np.float32
    assert 0 <= min(r.image_array.min() for r in a) and max(r.image_array.max() for r in a) <= 1
    assert sorted(r.label for r in a) == [0] * 6 + [1] * 6
    assert all(r.mask_array.any() for r in a)
    assert a[0].available_targets() == {"label", "mask", "value", "survival"}
    assert a[0].available_targets(boxes_from_masks=True) == {"label", "mask", "boxes", "box_labels", "value",
                                                             "survival"}
    other_stream = make_phantom_records(12, image_size=48, seed=3, stream=1)
    assert not np.array_equal(a[0].image_array, other_stream[0].image_array)


def test_normal_images_have_empty_masks_and_label_2():
    records = make_phantom_records(10, image_size=32, seed=0, normal_fraction=0.3)
    normal = [r for r in records if r.label == 2]
    assert len(normal) == 3 and all(not r.mask_array.any() for r in normal)
    assert all(r.targets["value"] == 0.0 for r in normal)
    sample = MultiTaskDataset(records, image_size=32, boxes_from_masks=True)[records.index(normal[0])]
    assert sample["boxes"].shape == (0, 4) and sample["mask"].sum() == 0


def test_malignant_contours_are_more_irregular():
    records = make_phantom_records(60, image_size=64, seed=1)
    solidity = {0: [], 1: []}
    for record in records:
        for region in regionprops(label(record.mask_array > 0, connectivity=2)):
            solidity[record.label].append(region.solidity)
    assert np.mean(solidity[0]) > 0.9
    assert np.mean(solidity[1]) < np.mean(solidity[0]) - 0.15
    assert max(len(v) for v in solidity.values()) > 30  # some images carry two lesions


def test_boxes_value_and_survival_follow_the_lesions():
    records = make_phantom_records(200, image_size=64, seed=2)
    dataset = MultiTaskDataset(records, image_size=64, boxes_from_masks=True)
    n_lesions = 0
    for i in range(40):
        sample = dataset[i]
        components = label(sample["mask"].numpy() > 0, connectivity=2).max()
        assert len(sample["boxes"]) == components >= 1
        n_lesions += components
        diameter = np.sqrt(4 * sample["mask"].sum().item() / np.pi) / 64
        assert abs(sample["value"].item() - diameter) < 1e-6
    times = np.array([r.targets["survival"][0] for r in records])
    events = np.array([r.targets["survival"][1] for r in records])
    malignant = np.array([r.label for r in records]) == 1
    assert (times > 0).all() and set(events.tolist()) == {0, 1}
    assert 0.15 < 1 - events.mean() < 0.45  # about 30 % censored
    assert np.median(times[malignant]) < np.median(times[~malignant])


def test_fast_enough():
    start = time.perf_counter()
    make_phantom_records(200, image_size=64, seed=0)
    assert time.perf_counter() - start < 4.0  # about 0.8 s on one core; margin for busy machines


@pytest.fixture
def one_thread():
    # One intra-op thread: on a busy 2-core machine OpenMP spin-waiting can make this test 20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_small_cnn_separates_benign_from_malignant(one_thread):
    torch.manual_seed(0)
    train = MultiTaskDataset(make_phantom_records(160, image_size=32, seed=5), image_size=32)
    test = MultiTaskDataset(make_phantom_records(60, image_size=32, seed=5, stream=1), image_size=32)
    x = torch.stack([train[i]["image"] for i in range(len(train))])
    y = torch.tensor(train.labels())
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 2))
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(30):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 32):
            batch = order[start:start + 32]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        x_test = torch.stack([test[i]["image"] for i in range(len(test))])
        accuracy = (net(x_test).argmax(1) == torch.tensor(test.labels())).float().mean().item()
    assert accuracy >= 0.85  # about 0.96 over seeds; chance is 0.5
