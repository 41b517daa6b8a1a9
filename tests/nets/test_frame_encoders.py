"""2D frame encoders: shapes, the registry, strict loading, Keras HDF5 conversion, real files.

Random-weight tests run on tiny inputs in well under a second each. Tests of the real
weight files skip when ``resnet/`` lacks them (``python -m mmer.weights fetch NAME``);
the MEAD test also skips without ``../shared/data/mead-video``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mmer.config import VideoConfig, config_from_dict
from mmer.features.backbones import SnippetFrameEncoder
from mmer.features.cache import feature_config_hash
from mmer.nets.efficientnet_lite import EfficientNetLite0, lite0_key, lite0_state_from_file
from mmer.nets.frame_encoders import (
    ENCODERS,
    FrameInput,
    build_frame_encoder,
    encode_frames,
    prepare_frames,
    snippet_feature_maps,
    unnormalise_snippets,
)
from mmer.nets.mini_xception import FER_CLASSES, load_mini_xception
from mmer.nets.ported import (
    FrameWeightError,
    MissingFrameWeightsError,
    load_state_strict,
    pad_same,
    same_padding,
)

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "resnet"
MEAD = ROOT.parent / "shared" / "data" / "mead-video"
MILITARY_UNIFORM = 652  # ImageNet class of the classic Grace Hopper portrait


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread


def _weights(name: str) -> Path:
    path = WEIGHTS / ENCODERS[name].file
    if not path.is_file():
        pytest.skip(f"{path} not present (python -m mmer.weights fetch {name})")
    return path


# ---------------------------------------------------------------- shapes and the registry

@pytest.mark.parametrize(("name", "channels"), [("mobilenet_v2", 1280), ("efficientnet_lite0", 1280),
                                                ("mini_xception", 128)])
def test_snippets_become_one_map_per_snippet(name, channels, tmp_path):
    encoder, info = build_frame_encoder(name, tmp_path, pretrained="none")
    assert info["status"] == "random" and info["out_channels"] == channels
    video = VideoConfig()
    snippets = torch.randn(2, 3, 3, 112, 112)  # (S, 3, L, H, W)
    maps = snippet_feature_maps(encoder, snippets, mean=video.mean, std=video.std)
    assert maps.shape == (2, channels, 4, 4) and torch.isfinite(maps).all()


def test_snippet_map_is_the_mean_of_its_frame_maps(tmp_path):
    encoder, _ = build_frame_encoder("mini_xception", tmp_path, pretrained="none")
    snippets = torch.rand(1, 3, 2, 32, 32)
    maps = snippet_feature_maps(encoder, snippets, mean=(0.0,) * 3, std=(1.0,) * 3)
    frames = snippets[0].permute(1, 0, 2, 3)  # (L, 3, H, W), already in [0, 1]
    each = encode_frames(encoder, frames)
    assert torch.allclose(maps[0], each.mean(dim=0), atol=1e-6)


def test_expression_std_feature_is_the_frames_mean_then_their_std(tmp_path):
    encoder, _ = build_frame_encoder("mini_xception", tmp_path, pretrained="none")
    snippets = torch.rand(2, 3, 4, 32, 32)  # (S, 3, L, H, W) in [0, 1]
    plain = SnippetFrameEncoder(encoder, (0.0,) * 3, (1.0,) * 3, expression=True)
    both = SnippetFrameEncoder(encoder, (0.0,) * 3, (1.0,) * 3, expression=True, with_std=True)
    with torch.no_grad():
        mean_only, mean_std = plain(snippets), both(snippets)
        out = encoder.expression(prepare_frames(snippets[1].permute(1, 0, 2, 3), encoder.frame_input))
    frames = torch.cat([out["features"], out["probs"]], dim=1)  # snippet 1's frames (4, 135)
    assert mean_only.shape == (2, 135) and mean_std.shape == (2, 270)
    assert torch.allclose(mean_std[:, :135], mean_only, atol=1e-6)
    assert torch.allclose(mean_std[1, :135], frames.mean(dim=0), atol=1e-6)
    assert torch.allclose(mean_std[1, 135:], frames.std(dim=0, correction=0), atol=1e-6)
    assert mean_std[:, 135:].abs().sum() > 0
    with torch.no_grad():  # one frame per snippet: no spread, not NaN
        assert torch.equal(both(snippets[:, :, :1])[:, 135:], torch.zeros(2, 135))
    with pytest.raises(ValueError, match="with_std"):
        SnippetFrameEncoder(encoder, (0.0,) * 3, (1.0,) * 3, with_std=True)
    assert (feature_config_hash(config_from_dict({"backbone": {"video_feature": "expression_std"}}))
            != feature_config_hash(config_from_dict({"backbone": {"video_feature": "expression"}})))


def test_random_builds_are_the_same_network(tmp_path):
    a, _ = build_frame_encoder("efficientnet_lite0", tmp_path, pretrained="none")
    b, _ = build_frame_encoder("efficientnet_lite0", tmp_path, pretrained="none")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(),
                                                 strict=True))


def test_factory_refuses_unknown_names_and_policies(tmp_path):
    with pytest.raises(ValueError, match="choices: efficientnet_lite0, mini_xception, mobilenet_v2"):
        build_frame_encoder("resnet50", tmp_path)
    with pytest.raises(ValueError, match="choices: required, optional, none"):
        build_frame_encoder("mobilenet_v2", tmp_path, pretrained="maybe")


def test_missing_file_required_raises_optional_warns(tmp_path, caplog):
    with pytest.raises(MissingFrameWeightsError, match="mobilenet_v2-b0353104.pth"):
        build_frame_encoder("mobilenet_v2", tmp_path, pretrained="required")
    with caplog.at_level(logging.WARNING):
        _, info = build_frame_encoder("mobilenet_v2", tmp_path, pretrained="optional")
    assert info["status"] == "random" and "not found" in info["reason"]
    assert "RANDOM" in caplog.text


# ---------------------------------------------------------------- preprocessing

def test_unnormalise_inverts_mmer_normalisation():
    video = VideoConfig()
    rgb = torch.rand(2, 3, 4, 8, 8)  # (S, 3, L, H, W) in [0, 1]
    mean = torch.tensor(video.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(video.std).view(1, 3, 1, 1, 1)
    back = unnormalise_snippets((rgb - mean) / std, video.mean, video.std)
    assert back.shape == (2, 4, 3, 8, 8)
    assert torch.allclose(back, rgb.permute(0, 2, 1, 3, 4), atol=1e-6)


def test_prepare_frames_grey_resize_and_scale():
    rgb = torch.zeros(1, 3, 128, 128)
    rgb[:, 1] = 1.0  # pure green: luma 0.587
    out = prepare_frames(rgb, FrameInput(64, True, (0.5,), (0.5,)))
    assert out.shape == (1, 1, 64, 64)
    assert torch.allclose(out, torch.full_like(out, (0.587 - 0.5) / 0.5), atol=1e-5)
    white = prepare_frames(torch.ones(1, 3, 16, 16), FrameInput(None, False, (127 / 255,) * 3, (128 / 255,) * 3))
    assert white.shape == (1, 3, 16, 16) and torch.allclose(white, torch.full_like(white, 128 / 128))


# ---------------------------------------------------------------- TF padding and strict loading

def test_tf_same_padding_pads_bottom_right_more():
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(56, 5, 2) == (1, 2)
    assert same_padding(15, 3, 2) == (1, 1)
    assert same_padding(30, 1, 2) == (0, 0) and same_padding(9, 3, 1) == (1, 1)


def test_max_pool_padding_never_wins():
    x = -torch.arange(1.0, 26.0).view(1, 1, 5, 5)  # all negative: a zero border would win
    pooled = nn.MaxPool2d(3, 2)(pad_same(x, 3, 2, value=-float("inf")))
    assert pooled.shape == (1, 1, 3, 3)
    assert pooled[0, 0, 0, 0] == x[0, 0, :2, :2].max() and pooled[0, 0, 2, 2] == x[0, 0, 3:, 3:].max()


def test_strict_loading_names_missing_unexpected_and_mismatched_keys():
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = dict(module.state_dict())
    del state["1.running_var"]
    state["2.weight"] = torch.zeros(1)
    state["0.bias"] = torch.zeros(3)
    with pytest.raises(FrameWeightError, match="demo.pth") as err:
        load_state_strict(module, state, "demo.pth")
    message = str(err.value)
    assert "missing (1): 1.running_var" in message and "unexpected (1): 2.weight" in message
    assert "0.bias: file (3,) vs model (2,)" in message


def test_checkpoint_missing_a_key_is_refused(tmp_path):
    encoder, _ = build_frame_encoder("mobilenet_v2", tmp_path, pretrained="none")
    state = encoder.state_dict()
    del state["features.18.1.running_mean"]
    torch.save(state, tmp_path / "mobilenet_v2-b0353104.pth")
    with pytest.raises(FrameWeightError, match=r"missing \(1\): features.18.1.running_mean"):
        build_frame_encoder("mobilenet_v2", tmp_path, pretrained="required")


def test_lite0_keys_map_one_to_one():
    assert lite0_key("_conv_stem.weight") == "stem.conv.weight"
    assert lite0_key("_bn1.running_var") == "head.bn.running_var"
    assert lite0_key("_blocks.3._bn0.weight") == "blocks.3.expand.bn.weight"
    assert lite0_key("_blocks.15._bn1.bias") == "blocks.15.depthwise.bn.bias"
    assert lite0_key("_blocks.0._project_conv.weight") == "blocks.0.project.conv.weight"
    assert lite0_key("_fc.bias") == "classifier.bias"
    with pytest.raises(FrameWeightError, match="_blocks.1._se_reduce.weight"):
        lite0_key("_blocks.1._se_reduce.weight")
    shapes = {k: tuple(v.shape) for k, v in EfficientNetLite0().state_dict().items()}
    assert len(shapes) == 296 and shapes["blocks.3.depthwise.conv.weight"] == (144, 1, 5, 5)


# ---------------------------------------------------------------- Keras HDF5 conversion

def _write_keras_h5(path: Path, layers: dict[str, dict[str, np.ndarray]], eps: float) -> None:
    """A Keras 2 HDF5 model file: model_config + model_weights/<layer>/<layer>_1/<w>:0."""
    configs = [{"class_name": "BatchNormalization" if n.startswith("batch") else "Conv2D", "name": n,
                "config": {"epsilon": eps} if n.startswith("batch") else
                {"padding": "valid" if n in ("conv2d_1", "conv2d_2") else "same"}} for n in layers]
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Model", "config": {"layers": configs}})
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [n.encode() for n in layers]
        for name, arrays in layers.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = [f"{name}_1/{w}:0".encode() for w in arrays]
            for w, arr in arrays.items():
                group.create_dataset(f"{name}_1/{w}:0", data=arr)


def _tiny_keras_layers(rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """One-module mini-Xception: stem 2 channels, module 3, 2 classes, grey input."""
    def bn(c):
        return {"gamma": rng.uniform(0.5, 2, c), "beta": rng.normal(size=c),
                "moving_mean": rng.normal(size=c), "moving_variance": rng.uniform(0.5, 2, c)}
    f32 = {k: {n: a.astype(np.float32) for n, a in v.items()} for k, v in {
        "conv2d_1": {"kernel": rng.normal(size=(3, 3, 1, 2))}, "batch_normalization_1": bn(2),
        "conv2d_2": {"kernel": rng.normal(size=(3, 3, 2, 2))}, "batch_normalization_2": bn(2),
        "conv2d_3": {"kernel": rng.normal(size=(1, 1, 2, 3))}, "batch_normalization_3": bn(3),
        "separable_conv2d_1": {"depthwise_kernel": rng.normal(size=(3, 3, 2, 1)),
                               "pointwise_kernel": rng.normal(size=(1, 1, 2, 3))},
        "batch_normalization_4": bn(3),
        "separable_conv2d_2": {"depthwise_kernel": rng.normal(size=(3, 3, 3, 1)),
                               "pointwise_kernel": rng.normal(size=(1, 1, 3, 3))},
        "batch_normalization_5": bn(3),
        "conv2d_4": {"kernel": rng.normal(size=(3, 3, 3, 2)), "bias": rng.normal(size=2)},
    }.items()}
    return f32


def test_keras_h5_round_trips_with_hand_computed_outputs(tmp_path):
    layers = _tiny_keras_layers(np.random.default_rng(0))
    _write_keras_h5(tmp_path / "tiny.hdf5", layers, eps=0.01)
    net = load_mini_xception(tmp_path / "tiny.hdf5")
    assert net.shape.stem_channels == 2 and net.shape.module_channels == (3,) and net.shape.n_classes == 2
    x = np.random.default_rng(1).normal(size=(6, 7)).astype(np.float32)  # one grey image, H 6, W 7
    with torch.no_grad():
        conv = net.stem1.conv(torch.from_numpy(x)[None, None])[0].numpy()      # (2, 4, 5)
    k = layers["conv2d_1"]["kernel"]                                             # (kh, kw, in, out)
    hand = sum(x[1 + dy, 2 + dx] * k[dy, dx, 0, 1] for dy in range(3) for dx in range(3))
    assert conv.shape == (2, 4, 5) and conv[1, 1, 2] == pytest.approx(hand, rel=1e-5)

    b = layers["batch_normalization_1"]
    assert net.stem1.bn.eps == 0.01
    with torch.no_grad():
        bn_out = net.stem1.bn(torch.from_numpy(conv)[None])[0, 1, 1, 2].item()
    bn_hand = b["gamma"][1] * (hand - b["moving_mean"][1]) / np.sqrt(b["moving_variance"][1] + 0.01) + b["beta"][1]
    assert bn_out == pytest.approx(bn_hand, rel=1e-5)

    z = np.random.default_rng(2).normal(size=(2, 4, 4)).astype(np.float32)     # (C=2, H, W)
    with torch.no_grad():
        sep = net.blocks[0].sep1(torch.from_numpy(z)[None])[0].numpy()          # (3, 4, 4), 'same'
    dw, pw = layers["separable_conv2d_1"]["depthwise_kernel"], layers["separable_conv2d_1"]["pointwise_kernel"]
    padded = np.pad(z, ((0, 0), (1, 1), (1, 1)))
    depth = [sum(padded[c, dy, dx] * dw[dy, dx, c, 0] for dy in range(3) for dx in range(3))
             for c in range(2)]  # output pixel (0, 0): its window starts in the zero border
    assert sep[2, 0, 0] == pytest.approx(depth[0] * pw[0, 0, 0, 2] + depth[1] * pw[0, 0, 1, 2], rel=1e-5)

    with torch.no_grad():
        probs = net(torch.randn(3, 1, 16, 16)).softmax(dim=1)
    assert probs.shape == (3, 2) and torch.allclose(probs.sum(dim=1), torch.ones(3))


def test_keras_h5_missing_a_weight_is_refused(tmp_path):
    layers = _tiny_keras_layers(np.random.default_rng(0))
    del layers["batch_normalization_4"]["gamma"]
    _write_keras_h5(tmp_path / "broken.hdf5", layers, eps=1e-3)
    with pytest.raises(FrameWeightError, match=r"missing \(1\): blocks.0.bn1.weight"):
        load_mini_xception(tmp_path / "broken.hdf5")


# ---------------------------------------------------------------- the real weight files

def _hopper() -> torch.Tensor:
    """The Grace Hopper portrait shipped with matplotlib, centre-cropped to (1, 3, 224, 224) in [0, 1]."""
    cv2 = pytest.importorskip("cv2")
    mpl = pytest.importorskip("matplotlib")
    path = Path(mpl.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    side = min(img.shape[:2])
    y0, x0 = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    img = cv2.resize(img[y0:y0 + side, x0:x0 + side], (224, 224), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_real_imagenet_encoders_load_exactly_and_classify(name):
    path = _weights(name)
    encoder, info = build_frame_encoder(name, WEIGHTS, pretrained="required")
    assert info["status"] == "loaded"
    state = torch.load(path, map_location="cpu", weights_only=True)
    if name == "efficientnet_lite0":
        state = lite0_state_from_file(state)
    ours = encoder.state_dict()
    assert ours.keys() == state.keys() and all(torch.equal(ours[k], v) for k, v in state.items())
    with torch.no_grad():
        logits = encoder.classify(prepare_frames(_hopper(), encoder.frame_input))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
    assert logits.argmax().item() == MILITARY_UNIFORM


def _mead_snippet(emotion: str, level: int) -> torch.Tensor:
    """16 frames of M030's `emotion` clip as one mmer snippet (1, 3, 16, 112, 112)."""
    av = pytest.importorskip("av")
    from mmer.features.video import video_snippets  # face crop + Kinetics normalisation

    path = MEAD / f"M030_front_{emotion}_level{level}_001.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    snippets, _ = video_snippets(frames, VideoConfig(n_snippets=1, snippet_len=16))
    return snippets


@pytest.mark.shared
def test_real_mini_xception_tells_happy_from_neutral():
    _weights("mini_xception")
    encoder, info = build_frame_encoder("mini_xception", WEIGHTS, pretrained="required")
    video = VideoConfig()
    probs = {}
    for emotion, level in (("happy", 3), ("neutral", 1)):
        frames = unnormalise_snippets(_mead_snippet(emotion, level), video.mean, video.std)[0]
        with torch.no_grad():
            out = encoder.expression(prepare_frames(frames, encoder.frame_input))
        assert out["features"].shape == (16, 128) and out["probs"].shape == (16, 7)
        assert torch.allclose(out["probs"].sum(dim=1), torch.ones(16), atol=1e-5)
        probs[emotion] = out["probs"].mean(dim=0)
    assert FER_CLASSES[probs["happy"].argmax()] == "happy"
    assert FER_CLASSES[probs["neutral"].argmax()] != "happy"
    assert (probs["happy"] - probs["neutral"]).abs().sum() > 0.5
