"""Random-weight models with the architecture of nvidia/parakeet-tdt-0.6b-v2, built offline.

NeMo `EncDecRNNTBPEModel`: FastConformer encoder (128 mels, dw_striding 8x subsampling), 2-layer LSTM
prediction network and a TDT joint (durations 0..4), decoded greedily with label looping:

* ``synthetic-tiny``: about 0.1M parameters, for tests on CPU.
* ``synthetic-full``: the published 0.6b dimensions (same FLOPs as the real model), for GPU timing.
* ``synthetic-tiny-cache-aware``: the tiny model with a cache-aware streaming encoder (causal subsampling
  and convolutions, chunked_limited attention with look-aheads [70,1]/[70,6]/[70,0]) and, like
  nvidia/parakeet_realtime_eou_120m-v1, ``<EOU>``/``<EOB>`` end-of-utterance tokens in its vocabulary
  (never emitted as wired). Only the joint is wired as below: its live attention and convolutions exercise
  the streaming caches, and its words then depend on context too (silence right after sound still says
  words).
* ``synthetic-tiny-eou``: the cache-aware tiny model wired like the parakeet-tdt ones below (local layers),
  that also says ``<EOU>`` in silence, as nvidia/parakeet_realtime_eou_120m-v1 does after an utterance:
  end-of-utterance detection, deterministically.
* ``synthetic-full-cache-aware``: the same at the 0.6b dimensions (like nemotron-speech-streaming-en-0.6b:
  24 layers, d_model 1024), for GPU timing of the cache-aware family.

Random weights transcribe gibberish or nothing, so a few weights of the parakeet-tdt models are set (the
modules and FLOPs stay those of the real model) to make transcripts deterministic and meaningful for tests: every 4 encoder frames (320 ms)
the model says `SYNTHETIC_WORD` if there is sound around that frame and nothing in (near-)digital silence,
e.g. ``"hello hello hello"`` for 1 s of speech and ``""`` for 1 s of zeros.

* Features are log(mel + 1), not normalised, and the subsampling convolutions have no bias: digital silence
  stays all-zero through them, exactly like their zero padding, so every silent frame encodes to the same
  vector c0, wherever it is.
* The attention and convolution modules' output projections are zero: each layer is then local (residual +
  feed-forward + norms), so a frame's encoding depends only on ~150 ms of audio around it. Buffered
  streaming therefore reproduces offline transcripts exactly, and speech does not leak into silence.
* The joint's encoder projection computes |W (enc - c0)| (two ReLU halves, W and -W), the output layer sums
  it into the word's logit against a threshold calibrated on speech-like audio; the prediction network's
  projection is zero and every step picks duration 4.

Models are built on CPU with fixed seeds and saved as ``.nemo`` files in a cache directory
(`ensure_synthetic_model`); tests, benchmarks and the app then load that file through `loading` like any local
checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import one_line
from ..loading import ModelLoadError
from ..log import logger
from ..models import END_OF_UTTERANCE_TOKENS
from .audio import speech_like

if TYPE_CHECKING:
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import DictConfig

SYNTHETIC_WORD = "hello"
CACHE_DIR_ENV = "PARAKEET_CACHE_DIR"
_RECIPE_VERSION = 3  # bump when a change makes previously cached models stale
_DURATIONS = [0, 1, 2, 3, 4]
_WORD_DURATION = 4  # encoder frames consumed by each emitted word
_SAMPLE_RATE = 16000
_THRESHOLD = 0.05  # a frame says the word when its distance from silence exceeds this share of speech's
_LOGIT_SCALE = 40.0
_EOU_MARGIN = 0.75  # <EOU> needs a frame this much closer to silence than the word's threshold


@dataclass(frozen=True)
class _Spec:
    d_model: int
    n_layers: int
    n_heads: int
    ff_expansion: int
    subsampling_channels: int
    pred_hidden: int
    joint_hidden: int
    vocab_size: int
    cache_aware: bool = False
    """a cache-aware streaming encoder (causal, chunked_limited attention) instead of parakeet-tdt's, and
    end-of-utterance tokens in the vocabulary"""
    eou: bool = False
    """local layers (as parakeet-tdt's) and `<EOU>` said in silence"""


_SPECS = {
    "synthetic-tiny": _Spec(
        d_model=32, n_layers=2, n_heads=2, ff_expansion=2, subsampling_channels=32,
        pred_hidden=32, joint_hidden=32, vocab_size=64,
    ),
    # parakeet-tdt-0.6b-v2 as published
    "synthetic-full": _Spec(
        d_model=1024, n_layers=24, n_heads=8, ff_expansion=4, subsampling_channels=256,
        pred_hidden=640, joint_hidden=640, vocab_size=1024,
    ),
    # the tiny model with a cache-aware streaming encoder; its attention and convolutions stay live, so
    # streaming exercises the encoder caches (tokens then also depend on context, deterministically)
    "synthetic-tiny-cache-aware": _Spec(
        d_model=32, n_layers=2, n_heads=2, ff_expansion=2, subsampling_channels=32,
        pred_hidden=32, joint_hidden=32, vocab_size=64, cache_aware=True,
    ),
    "synthetic-tiny-eou": _Spec(
        d_model=32, n_layers=2, n_heads=2, ff_expansion=2, subsampling_channels=32,
        pred_hidden=32, joint_hidden=32, vocab_size=64, cache_aware=True, eou=True,
    ),
    "synthetic-full-cache-aware": _Spec(
        d_model=1024, n_layers=24, n_heads=8, ff_expansion=4, subsampling_channels=256,
        pred_hidden=640, joint_hidden=640, vocab_size=1024, cache_aware=True,
    ),
}  # fmt: skip

SYNTHETIC_MODELS = tuple(_SPECS)


def default_cache_dir() -> Path:
    if env := os.environ.get(CACHE_DIR_ENV):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "livekit-plugins-parakeet"


def ensure_synthetic_model(name: str, cache_dir: Path | None = None) -> Path:
    """Path of the cached ``.nemo`` file of synthetic model `name`, built first if missing (blocking).
    Raises ModelLoadError (one line) for an unknown name or a failed build."""
    spec = _SPECS.get(name)
    if spec is None:
        raise ModelLoadError(
            f"unknown synthetic STT model {name!r}: use one of {', '.join(SYNTHETIC_MODELS)}"
        )
    cache_dir = cache_dir or default_cache_dir()
    path = cache_dir / f"{name}-r{_RECIPE_VERSION}-{_spec_digest(spec)}.nemo"
    if not path.is_file():
        try:
            _build_into(name, path)
        except Exception as e:
            raise ModelLoadError(f"could not build synthetic STT model {name!r}: {one_line(e)}") from e
    logger.warning(
        "STT model %r has RANDOM WEIGHTS: transcripts are meaningless (for tests and benchmarks only)", name
    )
    return path


def _build_into(name: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("building synthetic model %s into %s", name, path)
    # write then rename: concurrent builders never see a partial file
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".nemo.part")
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory(prefix="parakeet-synthetic-") as workdir:
            build_synthetic_model(name, Path(workdir)).save_to(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_synthetic_model(name: str, workdir: Path) -> EncDecRNNTBPEModel:
    """Build synthetic model `name` in memory, on CPU. Its tokenizer files live in `workdir`, which must
    outlive the model until it is saved."""
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    spec = _SPECS[name]
    symbols = END_OF_UTTERANCE_TOKENS if spec.cache_aware else ()
    tok_dir = _train_tokenizer(workdir, spec.vocab_size, symbols)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = EncDecRNNTBPEModel(cfg=_model_config(spec, tok_dir), trainer=None).eval()
        if spec.eou or not spec.cache_aware:
            _make_local(model)
        _wire_joint(model, eou_token=END_OF_UTTERANCE_TOKENS[0] if spec.eou else None)
    return model


def _spec_digest(spec: _Spec) -> str:
    return hashlib.sha1(repr(sorted(asdict(spec).items())).encode()).hexdigest()[:8]


# -----------------------------------------------------------------------------------------------------------
# tokenizer and config


def _corpus(n_pseudo_words: int) -> Iterator[str]:
    """Sentences for the tokenizer: SYNTHETIC_WORD often enough to be one token, plus pseudo-words so that
    larger vocabularies (1024 for full) have enough merges."""
    rng = np.random.default_rng(0)
    onsets = [
        "",
        "b",
        "d",
        "f",
        "g",
        "h",
        "k",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "v",
        "w",
        "st",
        "tr",
        "ch",
        "sh",
    ]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "oo", "ou"]
    codas = ["", "", "n", "r", "s", "t", "l", "ng", "st"]
    words = [
        "".join(
            rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.integers(1, 4))
        )
        for _ in range(n_pseudo_words)
    ]
    for i in range(0, len(words), 8):
        yield " ".join([SYNTHETIC_WORD, *words[i : i + 8]])
    for _ in range(50):
        yield f"{SYNTHETIC_WORD} world {SYNTHETIC_WORD} there"


def _train_tokenizer(workdir: Path, vocab_size: int, symbols: tuple[str, ...]) -> Path:
    import sentencepiece as spm

    text = workdir / "text.txt"
    text.write_text("\n".join(_corpus(n_pseudo_words=vocab_size * 8)) + "\n")
    tok_dir = workdir / "tokenizer"
    tok_dir.mkdir()
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tok_dir / "tokenizer"), vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, bos_id=-1, eos_id=-1, normalization_rule_name="nmt_nfkc_cf", minloglevel=2,
        user_defined_symbols=list(symbols),
    )  # fmt: skip
    pieces = [line.split("\t")[0] for line in (tok_dir / "tokenizer.vocab").read_text().splitlines()]
    # NeMo's vocab.txt convention: word-initial pieces without the marker, the rest with a "##" prefix
    vocab = [p[1:] if p.startswith("▁") else p if p in symbols else f"##{p}" for p in pieces if p != "<unk>"]
    (tok_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return tok_dir


def _model_config(spec: _Spec, tok_dir: Path) -> DictConfig:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "sample_rate": _SAMPLE_RATE,
            "model_defaults": {
                "enc_hidden": spec.d_model, "pred_hidden": spec.pred_hidden,
                "joint_hidden": spec.joint_hidden, "tdt_durations": _DURATIONS,
                "num_tdt_durations": len(_DURATIONS),
            },
            "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
            "preprocessor": {
                "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                "sample_rate": _SAMPLE_RATE, "normalize": "NA", "window_size": 0.025,
                "window_stride": 0.01, "window": "hann", "features": 128, "n_fft": 512, "log": True,
                "log_zero_guard_type": "add", "log_zero_guard_value": 1.0,
                "frame_splicing": 1, "dither": 0.0, "pad_to": 0, "pad_value": 0.0,
            },
            "encoder": {
                "_target_": "nemo.collections.asr.modules.ConformerEncoder",
                "feat_in": 128, "feat_out": -1, "n_layers": spec.n_layers, "d_model": spec.d_model,
                "use_bias": True, "subsampling": "dw_striding", "subsampling_factor": 8,
                "subsampling_conv_channels": spec.subsampling_channels, "causal_downsampling": False,
                "ff_expansion_factor": spec.ff_expansion, "self_attention_model": "rel_pos",
                "n_heads": spec.n_heads, "att_context_size": [-1, -1], "att_context_style": "regular",
                "xscaling": True, "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9,
                "conv_norm_type": "batch_norm", "conv_context_size": None,
                "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0, "dropout_att": 0.0,
            },
            "decoder": {
                "_target_": "nemo.collections.asr.modules.RNNTDecoder",
                "normalization_mode": None, "random_state_sampling": False, "blank_as_pad": True,
                "prednet": {
                    "pred_hidden": spec.pred_hidden, "pred_rnn_layers": 2, "t_max": None, "dropout": 0.0,
                },
            },
            "joint": {
                "_target_": "nemo.collections.asr.modules.RNNTJoint",
                "log_softmax": None, "preserve_memory": False, "fuse_loss_wer": False,
                "fused_batch_size": -1, "num_extra_outputs": len(_DURATIONS),
                "jointnet": {"joint_hidden": spec.joint_hidden, "activation": "relu", "dropout": 0.0},
            },
            "decoding": {
                "strategy": "greedy_batch", "model_type": "tdt", "durations": _DURATIONS,
                "greedy": {"max_symbols": 10, "loop_labels": True},
            },
            "loss": {
                "loss_name": "tdt", "tdt_kwargs": {"durations": _DURATIONS, "sigma": 0.02, "omega": 0.1},
            },
            "optim": None,
        }
    )  # fmt: skip
    if spec.cache_aware:
        cfg.encoder.update(
            causal_downsampling=True, att_context_style="chunked_limited",
            att_context_size=[[70, 1], [70, 6], [70, 0]], conv_context_size="causal", conv_norm_type="layer_norm",
        )  # fmt: skip
    return cfg


def _make_local(model: EncDecRNNTBPEModel) -> None:
    with torch.no_grad():
        # without biases, silence stays exactly zero through the subsampling convolutions, like their padding
        for conv in model.encoder.pre_encode.conv:
            if isinstance(conv, torch.nn.Conv2d) and conv.bias is not None:
                conv.bias.zero_()
        for layer in model.encoder.layers:
            for proj in (layer.self_attn.linear_out, layer.conv.pointwise_conv2):
                proj.weight.zero_()
                proj.bias.zero_()


def _encode(model: EncDecRNNTBPEModel, audio: np.ndarray) -> torch.Tensor:
    """Encoder output [T, D] of one clip."""
    signal = torch.from_numpy(audio)[None]
    encoded, _ = model(input_signal=signal, input_signal_length=torch.tensor([signal.shape[1]]))
    return encoded[0].T


def _wire_joint(model: EncDecRNNTBPEModel, *, eou_token: str | None) -> None:
    """The joint's last layer outputs [token logits (V), blank, duration logits (5)]. `eou_token`'s logit is
    the word's, negated, less a margin: it wins over blank only in (near-)digital silence."""
    ids = model.tokenizer.text_to_ids(SYNTHETIC_WORD)
    if len(ids) != 1:
        raise RuntimeError(f"synthetic tokenizer split {SYNTHETIC_WORD!r} into {len(ids)} pieces")
    vocab = model.tokenizer.vocab_size
    joint = model.joint
    hidden = joint.enc.out_features // 2
    with torch.no_grad():
        silence = _encode(model, np.zeros(_SAMPLE_RATE, np.float32))[5]
        w = torch.nn.functional.normalize(torch.randn(hidden, silence.shape[0]), dim=1)
        joint.enc.weight.zero_()
        joint.enc.bias.zero_()
        joint.enc.weight[:hidden], joint.enc.bias[:hidden] = w, -(w @ silence)
        joint.enc.weight[hidden : 2 * hidden], joint.enc.bias[hidden : 2 * hidden] = -w, w @ silence
        joint.pred.weight.zero_()
        joint.pred.bias.zero_()
        distance = (w @ (_encode(model, speech_like(2.0)) - silence).T).abs().sum(dim=0)
        reference = float(distance.median())
        out = joint.joint_net[-1]
        out.weight.zero_()
        out.bias.fill_(-10.0)
        out.bias[vocab] = 0.0  # blank
        out.weight[ids[0], : 2 * hidden] = _LOGIT_SCALE / reference
        out.bias[ids[0]] = -_LOGIT_SCALE * _THRESHOLD
        out.bias[vocab + 1 : vocab + 1 + len(_DURATIONS)] = 0.0
        out.bias[vocab + 1 + _DURATIONS.index(_WORD_DURATION)] = 10.0
        if eou_token is not None:
            end = model.tokenizer.token_to_id(eou_token)
            out.weight[end] = -out.weight[ids[0]]
            out.bias[end] = -out.bias[ids[0]] - _EOU_MARGIN * _LOGIT_SCALE * _THRESHOLD
