"""Every registered encoder: multi-scale shapes, gradients, and local weight loading."""

import pytest
import torch
from torchvision.models import resnet18

from medmtl.encoders import ENCODERS, create_encoder
from medmtl.errors import ConfigError, DataError


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_backward_multiscale(name, in_channels):
    encoder = create_encoder(name, in_channels=in_channels)
    x = torch.randn(2, in_channels, 64, 64, requires_grad=True)
    features = encoder(x)
    assert len(features) == len(encoder.feature_info)
    for f, info in zip(features, encoder.feature_info):
        assert f.shape == (2, info.channels, 64 // info.reduction, 64 // info.reduction)
    assert encoder.reductions == sorted(encoder.reductions)
    sum(f.mean() for f in features).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_unknown_encoder_names_the_choices():
    with pytest.raises(ConfigError, match="resnet18"):
        create_encoder("resnet19")


def test_loads_torchvision_state_dict(tmp_path):
    reference = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    encoder = create_encoder("resnet18", in_channels=3, weights=path)
    assert torch.equal(encoder.stem[0].weight, reference.conv1.weight)
    assert torch.equal(encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_loads_vgg_torchvision_keys(tmp_path):
    from torchvision.models import vgg13_bn

    reference = vgg13_bn(weights=None)
    path = tmp_path / "vgg.pth"
    torch.save(reference.state_dict(), path)
    encoder = create_encoder("vgg13_bn", in_channels=3, weights=path)
    assert torch.equal(encoder.blocks[4][-3].weight, reference.features[-4].weight)


def test_own_state_dict_round_trip(tmp_path):
    source = create_encoder("small_cnn", in_channels=1)
    path = tmp_path / "enc.pt"
    torch.save({"encoder." + k: v for k, v in source.state_dict().items()}, path)
    target = create_encoder("small_cnn", in_channels=1, weights=path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_bad_weights_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        create_encoder("small_cnn", weights=tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="garbage.pt"):
        create_encoder("small_cnn", weights=garbage)
    unrelated = tmp_path / "unrelated.pt"
    torch.save({"foo": torch.zeros(3)}, unrelated)
    with pytest.raises(DataError, match="no tensor"):
        create_encoder("small_cnn", weights=unrelated)
