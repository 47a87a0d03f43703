"""Encoders in 3D and with anisotropic strides; one ResNet definition matching torchvision (2D) and MONAI (3D)."""

import pytest
import torch

from medmtl.encoders import ENCODERS, create_encoder
from medmtl.errors import ConfigError

THREE_D = sorted(name for name, spec in ENCODERS.items() if 3 in spec.spatial_dims)


@pytest.mark.parametrize("name", THREE_D)
def test_3d_forward_backward_multiscale(name):
    encoder = create_encoder(name, in_channels=1, spatial_dims=3)
    x = torch.randn(2, 1, 32, 32, 32, requires_grad=True)
    features = encoder(x)
    assert encoder.spatial_dims == 3 and len(features) == len(encoder.feature_info)
    for f, info in zip(features, encoder.feature_info):
        assert info.spatial_dims == 3
        assert f.shape == (2, info.channels, *(32 // s for s in info.strides))
    sum(f.mean() for f in features).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_2d_only_encoders_refuse_3d():
    assert {"vgg13", "vgg13_bn"} <= set(ENCODERS) - set(THREE_D)
    with pytest.raises(ConfigError, match="2D only") as info:
        create_encoder("vgg13_bn", spatial_dims=3)
    assert info.value.key == "model.encoder.name"


@pytest.mark.parametrize(("name", "options"), [
    ("small_cnn", {"width": 4, "stages": 4, "strides": [1, [1, 2, 2], [1, 2, 2], 2]}),
    ("unet", {"channels": [4, 8, 16, 32], "strides": [1, [1, 2, 2], [1, 2, 2], 2]}),
    ("resnet10", {"strides": [[1, 2, 2], [1, 2, 2], 2, 2, 2]}),
])
def test_anisotropic_strides_keep_z_resolution(name, options):
    encoder = create_encoder(name, in_channels=1, spatial_dims=3, **options)
    features = encoder(torch.randn(2, 1, 8, 32, 32))
    for f, info in zip(features, encoder.feature_info):
        assert f.shape[2:] == tuple(size // s for size, s in zip((8, 32, 32), info.strides))
    assert encoder.feature_info[1].strides[0] == 1 and encoder.feature_info[1].strides[1] > 1


@pytest.mark.parametrize("strides", [[2, 2], [1, [1, 2], 2, 2, 2], [0, 2, 2, 2, 2]])
def test_bad_strides_name_the_key(strides):
    with pytest.raises(ConfigError) as info:
        create_encoder("small_cnn", spatial_dims=3, stages=5, strides=strides)
    assert info.value.key == "model.encoder.options.strides"


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_2d_equals_torchvision_with_its_weights(tmp_path, depth):
    from torchvision.models import resnet

    reference = getattr(resnet, f"resnet{depth}")(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    encoder = create_encoder(f"resnet{depth}", in_channels=3, weights=tmp_path / "w.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        r = reference.layer4(reference.layer3(reference.layer2(reference.layer1(reference.maxpool(
            reference.relu(reference.bn1(reference.conv1(x))))))))
        ours = encoder(x)[-1]
    torch.testing.assert_close(ours, r)


@pytest.mark.parametrize("depth", [10, 18])
def test_resnet_3d_equals_monai_with_medicalnet_style_keys(tmp_path, depth):
    from monai.networks.nets import resnet

    reference = getattr(resnet, f"resnet{depth}")(spatial_dims=3, n_input_channels=1, conv1_t_stride=2,
                                                  shortcut_type="B", bias_downsample=False,
                                                  feed_forward=False).eval()
    # MedicalNet checkpoints were saved from DataParallel: every key starts with "module."
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, tmp_path / "w.pth")
    encoder = create_encoder(f"resnet{depth}", in_channels=1, spatial_dims=3, weights=tmp_path / "w.pth").eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        r = reference.layer4(reference.layer3(reference.layer2(reference.layer1(reference.maxpool(
            reference.act(reference.bn1(reference.conv1(x))))))))
        ours = encoder(x)[-1]
    torch.testing.assert_close(ours, r)
