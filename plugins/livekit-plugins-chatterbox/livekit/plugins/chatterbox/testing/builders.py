"""Random-weight Chatterbox models of the real architecture, built offline on the fly.

The audio is noise; the compute, the tensor shapes and the audio length are those of the real model: T3 is a
LengthBudgetT3 (budget.py), whose logits stop each utterance after 1.5 speech tokens per character of its text.

- `synthetic-tiny`: a 2-layer, 64-wide Llama T3, the real full-size S3Gen (264M parameters, random),
  VoiceEncoder and a character tokenizer; 2 flow-matching steps and a 2 s default reference keep one sentence
  around 1.5 s of CPU on 2 cores. For tests and CPU plumbing.
- `synthetic-full`: the published 520M Llama T3 (30 layers, 1024 wide, Perceiver resampler), 10 flow-matching
  steps and a 10 s default reference: the FLOPs of the real model, for GPU benchmarks.
- `synthetic-turbo-tiny` / `synthetic-turbo-full`: the Turbo layout (GPT-2 T3 without CFG, tiny or the real
  GPT-2 medium; meanflow S3Gen with 2 steps; byte-level text tokens), default reference 2 s / 15 s.

Random S3Gen/HiFT weights turn any token sequence into broadband noise at about -31 dBFS RMS (mean |int16|
about 800 per 20 ms frame, peaks about 0.07 full scale), after S3Gen's 20 ms of silence and 20 ms fade-in at
the start. The Turbo (meanflow) S3Gen is quieter: mean |int16| about 260.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch

from ..loading import LoadedModel, ModelLoadError
from ..models import Variant
from ..voices import conditionals_from_audio

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.tokenizers import EnTokenizer

SyntheticModels = Literal["synthetic-tiny", "synthetic-full", "synthetic-turbo-tiny", "synthetic-turbo-full"]
PREFIX = "synthetic-"
NAMES = tuple(name.removeprefix(PREFIX) for name in get_args(SyntheticModels))
TOKENS_PER_CHAR = 1.5
"""60 ms of audio per character (1 speech token = 40 ms), about the pace of real speech. The synthetic
tokenizers give one text token per character (per byte for Turbo)."""
_TINY_LLAMA = "synthetic_tiny_llama"
_TINY_GPT2 = "synthetic_tiny_gpt2"
_SEED = 0


def reference_clip(seconds: float, sample_rate: int = 24000) -> np.ndarray:
    """A voice-like mono float32 clip: harmonics of a drifting ~140 Hz pitch, 4 syllables a second."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = 140.0 + 20.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.5 * (1.0 + np.sin(2 * np.pi * 4.0 * t))
    wav = voiced * syllables
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def t3_config(name: str) -> T3Config:
    """The T3 hyper-parameters of a synthetic model (registering its tiny backbone when needed)."""
    from chatterbox.models.t3 import llama_configs
    from chatterbox.models.t3.modules.t3_config import T3Config

    turbo, size = _parse(name)
    if not turbo:
        hp = T3Config.english_only()
        if size == "tiny":
            llama_configs.LLAMA_CONFIGS[_TINY_LLAMA] = dict(
                llama_configs.LLAMA_520M_CONFIG_DICT,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=4,
                head_dim=16,
            )
            hp.llama_config_name = _TINY_LLAMA
            hp.use_perceiver_resampler = False  # chatterbox's Perceiver is hard-wired to 1024 wide
        return hp

    # as ChatterboxTurboTTS.from_local sets it up
    hp = T3Config(text_tokens_dict_size=50276)
    hp.llama_config_name = "GPT2_medium"
    hp.speech_tokens_dict_size = 6563
    hp.input_pos_emb = None
    hp.speech_cond_prompt_len = 375
    hp.use_perceiver_resampler = False
    hp.emotion_adv = False
    if size == "tiny":
        llama_configs.LLAMA_CONFIGS[_TINY_GPT2] = dict(
            llama_configs.GPT2_MEDIUM_CONFIG, n_embd=64, hidden_size=64, n_head=4, n_layer=2
        )
        hp.llama_config_name = _TINY_GPT2
    return hp


def build(name: str, device: torch.device) -> LoadedModel:
    """`name` is the part after "synthetic-": tiny, full, turbo-tiny or turbo-full. T3 in float32."""
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.voice_encoder import VoiceEncoder

    from .budget import LengthBudgetT3

    turbo, size = _parse(name)
    hp = t3_config(name)
    with torch.random.fork_rng(devices=[]):  # the same weights every time, global RNG untouched
        torch.manual_seed(_SEED)
        t3 = LengthBudgetT3(hp)
        if turbo:
            del t3.tfmr.inner.wte  # unused: T3 embeds its own inputs (from_local does the same)
        _init_speech_head(t3.speech_head, hp)
        s3gen = S3Gen(meanflow=turbo)
        ve = VoiceEncoder()

    tts: Any
    with tempfile.TemporaryDirectory() as tmp:
        if turbo:
            from chatterbox.tts_turbo import ChatterboxTurboTTS

            tts = ChatterboxTurboTTS(t3, s3gen, ve, _byte_tokenizer(Path(tmp)), str(device))
        else:
            from chatterbox.tts import ChatterboxTTS

            tts = ChatterboxTTS(t3, s3gen, ve, _char_tokenizer(Path(tmp)), str(device))
    for module in (tts.t3, tts.s3gen, tts.ve):
        module.to(device).eval()

    variant: Variant = "turbo" if turbo else "original"
    model = LoadedModel(
        name=f"{PREFIX}{name}",
        variant=variant,
        tts=tts,
        device=device,
        dtype=torch.float32,
        n_cfm_timesteps=2 if name == "tiny" else None,
    )
    # the built-in voice: a short one keeps tiny models cheap; full ones fill the conditioning windows
    reference_s = 2.0 if size == "tiny" else (15.0 if turbo else 10.0)
    with torch.inference_mode():
        tts.conds = conditionals_from_audio(model, reference_clip(reference_s), exaggeration=0.5)
    return model


def _parse(name: str) -> tuple[bool, str]:
    if name not in NAMES:
        raise unknown_model(PREFIX + name)
    return name.startswith("turbo-"), name.removeprefix("turbo-")


def unknown_model(model: str) -> ModelLoadError:
    return ModelLoadError(
        f"unknown synthetic Chatterbox model {model!r}: use one of {', '.join(get_args(SyntheticModels))}"
    )


def _init_speech_head(head: nn.Linear, hp: T3Config) -> None:
    """Zero weights, random bias over the real speech codes, special tokens out of reach.

    Token choice then ignores the random transformer: sampling draws varied, valid codes (with the real min-p
    and repetition penalty at work), and stop comes only from LengthBudgetT3's budget.
    """
    n_codes = hp.start_speech_token  # codes 0..6560; start/stop and any unused ids follow
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-1e4)
        head.bias[:n_codes] = torch.randn(n_codes)


def _char_tokenizer(directory: Path) -> EnTokenizer:
    """One id per printable character. [STOP]=0 and [START]=255 match T3Config's text start/stop ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from chatterbox.models.tokenizers import EnTokenizer

    specials = ["[STOP]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]"]
    chars = [c for c in string.printable if not c.isspace()]
    tokens = specials + chars
    tokens += [f"[UNUSED{i}]" for i in range(len(tokens), 255)] + ["[START]"]
    tokenizer = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer.add_special_tokens([*specials, "[START]"])  # matched whole, before the per-character split
    path = directory / "tokenizer.json"
    tokenizer.save(str(path))
    return EnTokenizer(str(path))


def _byte_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    """GPT-2 style byte-level tokenizer without merges (one id per byte), loaded as Turbo loads its own."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>").save_pretrained(directory)
    loaded = AutoTokenizer.from_pretrained(directory)
    loaded.pad_token = loaded.eos_token
    return loaded
