"""The token-by-token T3 decoder matches chatterbox's own T3.inference / inference_turbo, seed for seed; a
batch of utterances decodes exactly what each decodes alone, also after an out-of-memory failure and a split;
the synthetic LengthBudgetT3 stops each utterance at its text's budget through its own logits."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import torch
from chatterbox.models.t3 import T3
from chatterbox.models.t3.modules.cond_enc import T3Cond
from livekit.plugins.chatterbox import testing
from livekit.plugins.chatterbox.steps import decoding
from livekit.plugins.chatterbox.testing.budget import LengthBudgetT3

SHARPEN = 20.0
TEXT = torch.randint(1, 100, (1, 24), generator=torch.Generator().manual_seed(2))


def tiny_t3(name: str, *, budget: bool = False) -> T3:
    """A tiny T3 (with the synthetic models' length budget if asked) whose tokens depend on its inputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        t3 = (LengthBudgetT3 if budget else T3)(testing.t3_config(name)).eval()
    with torch.no_grad():
        # Freshly initialized layers are close to identity, and a flat head makes sampling depend on the seed
        # alone: scale both up so the tokens depend on every detail of the inputs.
        for param_name, weight in getattr(t3.tfmr, "inner", t3.tfmr).named_parameters():
            if weight.dim() == 2 and param_name.startswith(("layers.", "h.")):
                weight.mul_(SHARPEN)
        t3.speech_head.weight.mul_(SHARPEN)
    return t3


def decode(utterance: decoding.Utterance) -> list[int]:
    """All tokens of one utterance, decoded alone."""
    return decode_together([lambda: utterance], [0])[0][0]


def condition(t3: T3) -> T3Cond:
    generator = torch.Generator().manual_seed(1)
    return T3Cond(
        speaker_emb=torch.randn(1, t3.hp.speaker_embed_size, generator=generator),
        cond_prompt_speech_tokens=torch.randint(
            0, 6561, (1, t3.hp.speech_cond_prompt_len), generator=generator
        ),
        emotion_adv=0.5 * torch.ones(1, 1, 1),
    )


@pytest.mark.parametrize("cfg_weight", [0.5, 0.3])
def test_original_matches_upstream_inference(cfg_weight: float) -> None:
    t3 = tiny_t3("tiny")
    text = decoding.text_tokens(t3, TEXT, "original")
    params = decoding.SamplingParams.for_variant("original", temperature=0.8, cfg_weight=cfg_weight)
    with torch.inference_mode():
        torch.manual_seed(3)
        ours = decode(decoding.Utterance(t3, condition(t3), text, "original", params, max_new_tokens=40))
        torch.manual_seed(3)
        theirs = t3.inference(
            t3_cond=condition(t3),
            text_tokens=torch.cat([text, text]),  # generate() doubles the text for CFG
            max_new_tokens=40,
            temperature=0.8,
            cfg_weight=cfg_weight,
            repetition_penalty=1.2,
            min_p=0.05,
            top_p=1.0,
        )[0].tolist()
    assert len(ours) >= 20
    assert ours == [t for t in theirs if t != t3.hp.stop_speech_token]


def test_turbo_matches_upstream_inference_turbo() -> None:
    t3 = tiny_t3("turbo-tiny")
    params = decoding.SamplingParams.for_variant("turbo", temperature=0.8, cfg_weight=0.5)
    with torch.inference_mode():
        torch.manual_seed(3)
        ours = decode(decoding.Utterance(t3, condition(t3), TEXT, "turbo", params, max_new_tokens=41))
        torch.manual_seed(3)
        theirs = t3.inference_turbo(
            condition(t3),
            TEXT,
            temperature=0.8,
            top_k=1000,
            top_p=0.95,
            repetition_penalty=1.2,
            max_gen_len=40,
        )[0].tolist()
    assert len(ours) >= 20
    assert ours == theirs


def test_without_cfg_one_row_and_the_length_budget() -> None:
    """cfg_weight=0 crashes upstream's 0.1.7 loop (it always builds two rows); here it runs one row. The
    budget T3 stops after 1.5 speech tokens per text token (the start/stop text tokens do not count)."""
    t3 = tiny_t3("tiny", budget=True)
    params = decoding.SamplingParams.for_variant("original", temperature=0.8, cfg_weight=0.0)
    with torch.inference_mode():
        tokens = decode(
            decoding.Utterance(
                t3,
                condition(t3),
                decoding.text_tokens(t3, TEXT, "original"),
                "original",
                params,
            )
        )
    assert len(tokens) == round(testing.TOKENS_PER_CHAR * TEXT.shape[1])
    assert t3.hp.stop_speech_token not in tokens


@pytest.mark.parametrize("name", ["tiny", "turbo-tiny"])
def test_bfloat16_t3_decodes(name: str) -> None:
    """dtype=bfloat16 (CUDA only in load_model) casts T3 and its conditionals; the loop samples in float32."""
    t3 = tiny_t3(name).to(torch.bfloat16)
    variant = "turbo" if name.startswith("turbo") else "original"
    params = decoding.SamplingParams.for_variant(variant, temperature=0.8, cfg_weight=0.5)
    torch.manual_seed(4)
    with torch.inference_mode():
        tokens = decode(
            decoding.Utterance(
                t3,
                condition(t3).to(dtype=torch.bfloat16),
                decoding.text_tokens(t3, TEXT, variant),
                variant,
                params,
                max_new_tokens=12,
            )
        )
    assert 0 < len(tokens) <= 12


Decoded = tuple[list[int], list[torch.Tensor]]


def decode_together(
    utterances: list[Callable[[], decoding.Utterance]], join_at: list[int], *, out_of_memory_at: int = -1
) -> list[Decoded]:
    """Tokens and per-step logits of utterances decoded in one DecodeBatch, each joining at its step.

    At step `out_of_memory_at`, the forward pass fails half-way through the transformer (CUDA out of memory);
    the batch is then split in halves, which go on as two batches (the engine's scheduler does the same)."""
    batches = [decoding.DecodeBatch(utterances[0]()._t3)]
    results: list[Decoded] = [([], []) for _ in utterances]
    active: dict[int, decoding.Utterance] = {}
    step = 0
    while step == 0 or active:
        for i, make in enumerate(utterances):
            if join_at[i] == step:
                active[i] = make()
                min(batches, key=len).add(active[i])
        for i, member in list(active.items()):
            results[i][1].append(member.logits)
            token = member.sample()
            if token is None:
                next(batch for batch in batches if member in batch).remove(member)
                del active[i]
            else:
                results[i][0].append(token)
        if step == out_of_memory_at:
            [batch] = batches
            assert len(batch) > 1
            with failing_layer(batch.members[0]._t3), pytest.raises(torch.OutOfMemoryError):
                batch.forward()
            batches = list(batch.split())
        assert sum(map(len, batches)) == len(active)
        for batch in batches:
            if len(batch):
                batch.forward()
        step += 1
    return results


@contextlib.contextmanager
def failing_layer(t3: T3) -> Iterator[None]:
    """The transformer's second layer raises torch.OutOfMemoryError, after the first updated its cache."""
    backbone = getattr(t3.tfmr, "inner", t3.tfmr)
    layers = backbone.h if hasattr(backbone, "h") else backbone.layers

    def out_of_memory(*_: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    hook = layers[1].register_forward_pre_hook(out_of_memory)
    try:
        yield
    finally:
        hook.remove()


@pytest.mark.parametrize("name", ["tiny", "turbo-tiny"])
def test_a_batch_decodes_what_each_utterance_decodes_alone(name: str) -> None:
    """Utterances join and leave a running batch with different prompt lengths (padding on either side),
    CFG pairs next to single rows; with a generator each, every one gets exactly its tokens and logits alone,
    also when a step fails half-way and the batch goes on in halves."""
    t3 = tiny_t3(name, budget=True)
    variant = "turbo" if name.startswith("turbo") else "original"
    texts = [TEXT[:, :4], TEXT[:, :16], TEXT[:, :24]]
    cfg_weights = [0.5, 0.0, 0.3]
    lengths = [6, 24, 36]  # the length budget holds the stop token back until then
    join_at = [0, 0, 5]

    def utterance(i: int) -> Callable[[], decoding.Utterance]:
        params = decoding.SamplingParams.for_variant(variant, temperature=0.8, cfg_weight=cfg_weights[i])
        return lambda: decoding.Utterance(
            t3,
            condition(t3),
            decoding.text_tokens(t3, texts[i], variant),
            variant,
            params,
            generator=torch.Generator().manual_seed(10 + i),
        )

    with torch.inference_mode():
        alone = [decode_together([utterance(i)], [0])[0] for i in range(3)]
        batched = decode_together([utterance(i) for i in range(3)], join_at)
        # the third has joined, the first not yet left: a failed step, then halves of one and two
        split = decode_together([utterance(i) for i in range(3)], join_at, out_of_memory_at=5)

    for together in (batched, split):
        for (tokens, logits), (alone_tokens, alone_logits) in zip(together, alone, strict=True):
            assert tokens == alone_tokens
            assert all(
                torch.allclose(a, b, rtol=1e-4, atol=1e-3) for a, b in zip(logits, alone_logits, strict=True)
            )
    assert [len(tokens) for tokens, _ in alone] == lengths
