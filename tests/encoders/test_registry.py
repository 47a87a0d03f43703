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


def test_small_cnn_options_have_their_defaults_in_one_model():
    from medmtl.encoders import SmallCNNOptions

    assert SmallCNNOptions() == SmallCNNOptions(width=16, stages=5, norm="batch")
    encoder = create_encoder("small_cnn", in_channels=1, width=4, stages=2, norm="group")
    assert encoder.channels == [4, 8] and isinstance(encoder.stages[0][1], torch.nn.GroupNorm)
    assert create_encoder("small_cnn").channels == [16, 32, 64, 128, 256]


@pytest.mark.parametrize(("name", "options", "key", "problem"), [
    ("small_cnn", {"widht": 8}, "model.encoder.options.widht", "unknown option"),
    ("small_cnn", {"depth": 4}, "model.encoder.options.depth", "unknown option"),
    ("small_cnn", {"width": 0}, "model.encoder.options.width", "greater than or equal to 1"),
    ("small_cnn", {"stages": "many"}, "model.encoder.options.stages", "integer"),
    ("small_cnn", {"norm": "layer"}, "model.encoder.options.norm", "'batch' or 'group'"),
    ("resnet18", {"width": 8}, "model.encoder.options.width", "unknown option"),
    ("vgg13_bn", {"stages": 3}, "model.encoder.options.stages", "unknown option"),
])
def test_bad_options_name_the_key_and_the_allowed_keys(name, options, key, problem):
    with pytest.raises(ConfigError, match=problem) as info:
        create_encoder(name, in_channels=1, **options)
    assert info.value.key == key
    allowed = {"small_cnn": "['norm', 'stages', 'strides', 'width']", "resnet18": "['strides']"}.get(name, "none")
    assert f"allowed keys are {allowed}" in info.value.problem


def test_config_load_rejects_bad_encoder_options_before_any_work():
    from medmtl.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config("demo", ["model.encoder.options.widht=8"])
    assert info.value.key == "model.encoder.options.widht"
    assert "allowed keys are ['norm', 'stages', 'strides', 'width']" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config("demo", ["model.encoder={name: resnet18, options: {width: 8}}"])
    assert info.value.key == "model.encoder.options.width"
    with pytest.raises(ConfigError, match="unknown encoder") as info:
        load_config("demo", ["model.encoder.name=resnet19"])
    assert info.value.key == "model.encoder.name"
    assert load_config("demo", ["model.encoder.options.stages=3"]).model.encoder.options["stages"] == 3
