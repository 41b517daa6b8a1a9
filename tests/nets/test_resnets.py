"""Backbones and strict weight loading (CPU, tiny inputs, no downloads)."""
from __future__ import annotations

import logging

import pytest
import torch
import torchvision

from mmer.config import BackboneConfig
from mmer.nets.audio_resnet import AudioResNet18
from mmer.nets.pretrained import (
    MissingWeightsError,
    WeightLoadError,
    load_backbone_weights,
    weight_file,
)
from mmer.nets.resnet3d import R3D18, ResNet3D, build_video_backbone


@pytest.fixture(scope="module")
def r101() -> ResNet3D:
    torch.manual_seed(0)
    return ResNet3D().eval()


def _hara_file(path, state: dict, *, half: bool = False) -> None:
    """Save `state` as the 3D-ResNets-PyTorch release does: DataParallel keys, no
    num_batches_tracked (pre-0.4 PyTorch), inside {"state_dict": ...} with extras."""
    sd = {f"module.{k}": (v.half() if half and v.is_floating_point() else v).clone()
          for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 200, "arch": "resnet-101", "state_dict": sd, "optimizer": {}}, path)


def test_r101_has_hara_key_layout(r101):
    sd = r101.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7, 7)
    assert r101.conv1.stride == (1, 2, 2) and r101.conv1.padding == (3, 3, 3)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1, 1)
    assert "layer1.0.downsample.1.running_var" in shapes
    assert shapes["layer3.22.conv3.weight"] == (1024, 256, 1, 1, 1)
    assert "layer3.23.conv1.weight" not in shapes
    assert shapes["layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1, 1)
    assert shapes["fc.weight"] == (400, 2048) and shapes["fc.bias"] == (400,)
    blocks = {k.split(".")[0]: int(k.split(".")[1]) + 1 for k in sd if k.startswith("layer")}
    assert blocks == {"layer1": 3, "layer2": 4, "layer3": 23, "layer4": 3}
    # the stem conv1 plus three convolutions in each of the 33 bottlenecks:
    assert sum(k.endswith("conv1.weight") or k.endswith("conv2.weight")
               or k.endswith("conv3.weight") for k in sd) == 1 + 3 * 33


def test_hara_checkpoint_loads_strictly_into_r101(r101, tmp_path):
    torch.manual_seed(1)
    source = ResNet3D().state_dict()
    path = tmp_path / "resnet-101-kinetics.pth"
    _hara_file(path, source, half=True)  # half: a smaller file; the layout is what is tested
    meta = load_backbone_weights(r101, path, layout="hara", policy="required")
    assert meta["status"] == "loaded" and meta["missing"] == [] and meta["unexpected"] == []
    assert meta["absent_buffers"] == sum(k.endswith("num_batches_tracked") for k in source)
    loaded = r101.state_dict()
    for key in ("conv1.weight", "layer3.22.bn3.running_var", "layer4.0.downsample.0.weight", "fc.bias"):
        assert torch.equal(loaded[key], source[key].half().float()), key


def test_wrong_and_extra_keys_are_listed(tmp_path):
    model = ResNet3D(layers=(1, 1, 1, 1))
    state = dict(model.state_dict())
    state["layer1.0.conv_2.weight"] = state.pop("layer1.0.conv2.weight")  # a renamed key
    state["layer5.0.conv1.weight"] = torch.zeros(1)  # an extra key
    state["fc.weight"] = torch.zeros(101, 2048)  # a fine-tuned head of another size
    path = tmp_path / "bad.pth"
    _hara_file(path, state)
    with pytest.raises(WeightLoadError) as err:
        load_backbone_weights(model, path, layout="hara", policy="optional")
    message = str(err.value)
    assert str(path) in message
    assert "missing (1): layer1.0.conv2.weight" in message
    assert "unexpected (2): layer1.0.conv_2.weight, layer5.0.conv1.weight" in message
    assert "fc.weight: checkpoint (101, 2048) vs model (400, 2048)" in message


def test_hara_layout_requires_state_dict_entry(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save(ResNet3D(layers=(1, 1, 1, 1)).state_dict(), path)
    with pytest.raises(WeightLoadError, match="state_dict"):
        load_backbone_weights(ResNet3D(layers=(1, 1, 1, 1)), path, layout="hara", policy="required")


def test_torchvision_resnet18_loads_into_audio_resnet(tmp_path):
    tv = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(tv.state_dict(), path)
    model = AudioResNet18(output="map").eval()
    meta = load_backbone_weights(model, path, layout="torchvision_1ch", policy="required")
    assert meta["status"] == "loaded"
    assert meta["ignored"] == ["fc.bias", "fc.weight"]  # ImageNet classifier, allow-listed
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.equal(model.conv1.weight, tv.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.layer4[1].bn2.running_var, tv.layer4[1].bn2.running_var)
    # A grey image x through the 1-channel net equals (x, x, x) through the RGB net.
    x = torch.randn(2, 1, 64, 48)
    with torch.no_grad():
        rgb = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x.expand(-1, 3, -1, -1)))))
        rgb = tv.layer4(tv.layer3(tv.layer2(tv.layer1(rgb))))
        torch.testing.assert_close(model(x), rgb, rtol=1e-4, atol=1e-4)


def test_torchvision_r3d18_loads_strictly(tmp_path):
    path = tmp_path / "r3d_18-b3b3357e.pth"
    source = torchvision.models.video.r3d_18()
    torch.save(source.state_dict(), path)
    model = R3D18()
    meta = load_backbone_weights(model, path, layout="torchvision", policy="required")
    assert meta["status"] == "loaded" and meta["ignored"] == []
    assert torch.equal(model.stem[0].weight, source.stem[0].weight)


def test_video_output_shapes_for_6x16_snippets(r101):
    x = torch.randn(6, 3, 16, 32, 32)  # 6 snippets of 16 frames, tiny frames
    with torch.inference_mode():
        assert r101.feature_map(x).shape == (6, 2048, 1, 1, 1)
        assert r101(x).shape == (6, 2048, 1, 1)
        assert r101.classify(x).shape == (6, 400)
        r18 = R3D18().eval()
        assert r18.feature_map(x).shape == (6, 512, 2, 2, 2)
        assert r18(x).shape == (6, 512, 2, 2)
    assert (r101.out_channels, r18.out_channels) == (2048, 512)


@pytest.mark.parametrize("width,output,shape", [
    (64, "map", (6, 512, 2, 2)), (64, "pooled", (6, 512)), (16, "pooled", (6, 128)),
    (16, "map", (6, 128, 2, 2)),
])
def test_audio_output_shapes(width, output, shape):
    model = AudioResNet18(width=width, output=output).eval()
    with torch.inference_mode():
        assert model(torch.randn(6, 1, 64, 58)).shape == shape
    assert model.out_channels == shape[1]


def test_missing_file_required_is_an_error_naming_file_and_place(tmp_path):
    path = tmp_path / "resnet" / "resnet-101-kinetics.pth"
    with pytest.raises(MissingWeightsError) as err:
        load_backbone_weights(R3D18(), path, layout="hara", policy="required")
    message = str(err.value)
    assert "resnet-101-kinetics.pth" in message and str(path.parent) in message
    assert "resnet/README.md" in message


def test_missing_file_optional_warns_and_records_random(tmp_path, caplog):
    model = AudioResNet18()
    before = model.conv1.weight.clone()
    with caplog.at_level(logging.WARNING):
        meta = load_backbone_weights(model, tmp_path / "absent.pth", layout="torchvision_1ch",
                                     policy="optional")
    assert meta["status"] == "random" and "not found" in meta["reason"]
    assert "RANDOM" in caplog.text
    assert torch.equal(model.conv1.weight, before)


def test_policy_none_is_random_and_never_reads_the_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    meta = load_backbone_weights(AudioResNet18(width=8), path, layout="torchvision_1ch", policy="none")
    assert meta["status"] == "random" and meta["file"] == str(path)
    with pytest.raises(WeightLoadError, match="cannot read checkpoint"):
        load_backbone_weights(AudioResNet18(width=8), path, layout="torchvision_1ch", policy="optional")


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="r3d_101, r3d_18"):
        build_video_backbone("r2plus1d")
    with pytest.raises(ValueError, match="required, optional, none"):
        load_backbone_weights(R3D18(), "x.pth", layout="hara", policy="maybe")


def test_weight_file_defaults_to_each_backbones_standard_name():
    assert weight_file(BackboneConfig(), "video").as_posix() == "resnet/resnet-101-kinetics.pth"
    assert weight_file(BackboneConfig(video="r3d_18"), "video").name == "r3d_18-b3b3357e.pth"
    assert weight_file(BackboneConfig(video_weights="mine.pth"), "video").name == "mine.pth"
    assert weight_file(BackboneConfig(weights_dir="w"), "audio").as_posix() == "w/resnet18-f37072fd.pth"
