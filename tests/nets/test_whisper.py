"""CTranslate2 model.bin reader and the PyTorch Whisper encoder (and, when the real
folder and ctranslate2 are here, agreement with CTranslate2 on a real RAVDESS clip)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mmer.features.whisper import whisper_log_mel
from mmer.nets.ct2 import Ct2FormatError, dequantize, parse_ct2, read_ct2
from mmer.nets.whisper import WhisperEncoder, WhisperEncoderConfig, WhisperLoadError, load_whisper_encoder

ROOT = Path(__file__).resolve().parents[2]


REAL_DIR = ROOT / "resnet" / "whisper-tiny.en-ct2"


REAL_DIRS = {"whisper_tiny_en": (REAL_DIR, 384), "whisper_base": (ROOT / "resnet" / "whisper-base-ct2", 512)}


_DTYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}


def write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str] | None = None,
              spec: str = "WhisperSpec", revision: int = 3, version: int = 6) -> None:
    """Write a model.bin in CTranslate2's layout (see mmer.nets.ct2); test-only writer."""
    def string(s: str) -> bytes:
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = [struct.pack("<I", version), string(spec), struct.pack("<II", revision, len(variables))]
    for name, arr in variables.items():
        arr = np.asarray(arr, order="C")  # (ascontiguousarray would make a scalar 1-d)
        out += [string(name), struct.pack("<B", arr.ndim), struct.pack(f"<{arr.ndim}I", *arr.shape),
                struct.pack("<BI", _DTYPE_IDS[arr.dtype.name], arr.nbytes), arr.tobytes()]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [string(alias), string(target)]
    path.write_bytes(b"".join(out))


def test_ct2_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    variables = {"encoder/num_heads": np.array(6, dtype=np.int16),
                 "a/weight": rng.standard_normal((3, 5)).astype(np.float16),
                 "b/weight": rng.integers(-127, 128, (4, 2)).astype(np.int8),
                 "b/weight_scale": rng.uniform(1, 2, 4).astype(np.float32),
                 "c/ids": rng.integers(0, 9, (2, 2, 2)).astype(np.int32)}
    write_ct2(tmp_path / "model.bin", variables, {"d/weight": "a/weight"})
    model = read_ct2(tmp_path)
    assert (model.spec, model.revision, model.version) == ("WhisperSpec", 3, 6)
    assert list(model.variables) == list(variables)
    for name, arr in variables.items():
        assert model[name].dtype == arr.dtype and np.array_equal(model[name], arr)
    assert np.array_equal(model["d/weight"], variables["a/weight"])
    expected = variables["b/weight"].astype(np.float32) / variables["b/weight_scale"][:, None]
    np.testing.assert_allclose(dequantize(model, "b/weight"), expected, rtol=1e-7)


def test_ct2_rejects_bad_files(tmp_path):
    write_ct2(tmp_path / "model.bin", {"x": np.ones(4, np.float32)})
    data = (tmp_path / "model.bin").read_bytes()
    with pytest.raises(Ct2FormatError, match="truncated"):
        parse_ct2(data[:-6])
    with pytest.raises(Ct2FormatError, match="binary version 5"):
        parse_ct2(struct.pack("<I", 5) + data[4:])


TINY = WhisperEncoderConfig(n_mels=8, n_ctx=16, n_state=16, n_head=2, n_layer=2)


def ct2_variables(enc: WhisperEncoder) -> dict[str, np.ndarray]:
    """The encoder's weights under CTranslate2's names, in float16 (written by hand here)."""
    sd = {k: v.detach().numpy().astype(np.float16) for k, v in enc.state_dict().items()}
    out = {"encoder/num_heads": np.array(enc.cfg.n_head, np.int16),
           "decoder/embeddings/weight": np.zeros((5, 16), np.float16),
           "encoder/position_encodings/encodings": sd["positional_embedding"],
           "encoder/layer_norm/gamma": sd["ln_post.weight"], "encoder/layer_norm/beta": sd["ln_post.bias"]}
    for c in ("conv1", "conv2"):
        out |= {f"encoder/{c}/weight": sd[f"{c}.weight"], f"encoder/{c}/bias": sd[f"{c}.bias"]}
    pairs = {"self_attention/layer_norm/gamma": "attn_ln.weight", "self_attention/layer_norm/beta": "attn_ln.bias",
             "self_attention/linear_0/weight": "attn.qkv.weight", "self_attention/linear_0/bias": "attn.qkv.bias",
             "self_attention/linear_1/weight": "attn.out.weight", "self_attention/linear_1/bias": "attn.out.bias",
             "ffn/layer_norm/gamma": "mlp_ln.weight", "ffn/layer_norm/beta": "mlp_ln.bias",
             "ffn/linear_0/weight": "mlp.0.weight", "ffn/linear_0/bias": "mlp.0.bias",
             "ffn/linear_1/weight": "mlp.2.weight", "ffn/linear_1/bias": "mlp.2.bias"}
    for i in range(enc.cfg.n_layer):
        out |= {f"encoder/layer_{i}/{a}": sd[f"blocks.{i}.{b}"] for a, b in pairs.items()}
    return out


def _written_encoder(cfg: WhisperEncoderConfig, seed: int, folder: Path) -> WhisperEncoder:
    """A random encoder of `cfg` with its weights rounded to float16 (what the file holds, so
    outputs compare exactly), written to ``folder/model.bin``."""
    torch.manual_seed(seed)
    enc = WhisperEncoder(cfg).eval()
    with torch.no_grad():
        for p in enc.state_dict().values():
            p.copy_(p.half().float())
    write_ct2(folder / "model.bin", ct2_variables(enc))
    return enc


def test_load_whisper_encoder_from_a_tiny_ct2_file(tmp_path):
    enc = _written_encoder(TINY, 0, tmp_path)
    loaded = load_whisper_encoder(tmp_path)
    assert loaded.cfg == TINY and not loaded.training
    mel = torch.randn(2, 8, 32)
    with torch.no_grad():
        out = loaded(mel)
        torch.testing.assert_close(out, enc(mel), atol=1e-6, rtol=0)
        assert loaded(mel[..., :11]).shape == (2, 6, 16)  # odd T -> ceil(T / 2)
    assert out.shape == (2, 16, 16)
    with pytest.raises(ValueError, match="more than 32"):
        loaded(torch.randn(1, 8, 34))


def test_load_base_layout_reads_heads_and_layers_from_the_file(tmp_path):
    """Whisper base's layout (8 heads, 6 blocks) at a tiny width: sizes come from the file,
    and a wrong head count would change the output."""
    base = WhisperEncoderConfig(n_mels=8, n_ctx=16, n_state=32, n_head=8, n_layer=6)
    enc = _written_encoder(base, 1, tmp_path)
    loaded = load_whisper_encoder(tmp_path)
    assert loaded.cfg == base
    mel = torch.randn(1, 8, 32)
    wrong = WhisperEncoder(WhisperEncoderConfig(n_mels=8, n_ctx=16, n_state=32, n_head=2, n_layer=6))
    wrong.load_state_dict(enc.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), enc(mel), atol=1e-6, rtol=0)
        assert loaded.block_states(mel, [6])[0].shape == (1, 16, 32)
        assert float((wrong.eval()(mel) - enc(mel)).abs().max()) > 1e-3


def test_strict_loading_names_missing_and_unexpected(tmp_path):
    variables = ct2_variables(WhisperEncoder(TINY))
    del variables["encoder/layer_1/ffn/linear_0/bias"]
    variables["encoder/layer_0/self_attention/rotary/inv_freq"] = np.ones(4, np.float16)
    write_ct2(tmp_path / "model.bin", variables)
    with pytest.raises(WhisperLoadError) as info:
        load_whisper_encoder(tmp_path)
    assert "blocks.1.mlp.0.bias" in str(info.value)
    assert "encoder/layer_0/self_attention/rotary/inv_freq" in str(info.value)


def test_missing_folder_says_how_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError, match="mmer.weights fetch whisper_tiny_en"):
        load_whisper_encoder(tmp_path)


@pytest.mark.parametrize("asset", sorted(REAL_DIRS))
def test_agrees_with_ctranslate2_on_a_real_clip(asset, shared_data, one_thread):
    real_dir, width = REAL_DIRS[asset]
    if not (real_dir / "model.bin").is_file():
        pytest.skip(f"no {real_dir} (python -m mmer.weights fetch {asset})")
    ctranslate2 = pytest.importorskip("ctranslate2")
    sf = pytest.importorskip("soundfile")
    from mmer.features.whisper import resample_to_16k
    clips = sorted((shared_data / "ravdess-speech-audio" / "Actor_01").glob("*.*"))
    if not clips:
        pytest.skip("no RAVDESS clips for Actor_01")
    wave, sr = sf.read(clips[0], dtype="float32", always_2d=True)
    mel = whisper_log_mel(resample_to_16k(wave.mean(axis=1), sr))[None]  # (1, 80, 3000)
    ref = ctranslate2.models.Whisper(str(real_dir), device="cpu", compute_type="float32",
                                     intra_threads=1)
    expected = np.asarray(ref.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    with torch.no_grad():
        got = load_whisper_encoder(real_dir)(mel).numpy()
    assert got.shape == expected.shape == (1, 1500, width)
    assert float(np.abs(got - expected).max()) <= 1e-3


def test_every_whisper_audio_setting_has_a_model_and_its_asset():
    from mmer.config.schema import WHISPER_AUDIO
    from mmer.nets.assets import ASSETS
    from mmer.nets.whisper import WHISPER_MODELS
    assert set(WHISPER_MODELS) == set(WHISPER_AUDIO)
    assert all(model.asset in ASSETS for model in WHISPER_MODELS.values())
