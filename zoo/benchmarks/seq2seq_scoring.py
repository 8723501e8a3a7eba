"""Zero-shot sentence scores of an encoder-decoder (``t5``): log p(sentence) from the decoder.

The encoder reads an empty text, the way the objective's encoder-decoder form shows one: ``[P] </s>``
(``[P]`` the paradigm token of UL2's mode switching, when the run trained with one); the decoder
starts from its start token (the pad id) and predicts the sentence token by token. For span
corruption (``seq2seq-sentinel``) the sentence is the single noise span of an empty text, as
``causal-sentinel`` scores a decoder: encoder ``[P] <extra_id_0> </s>``, decoder
``<extra_id_0> sentence``. Scores are sums of token log-probabilities (and their means per token).
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.batch import SpecialTokens
from zoo.benchmarks.lm_scoring import Reading, ScoreInputs, _batches
from zoo.errors import ConfigError
from zoo.models.attention import AttentionLayout
from zoo.models.base import Backbone


def seq2seq_context(special: SpecialTokens, sentinel: bool = False,
                    paradigm: int | None = None) -> tuple[list[int], list[int]]:
    """(encoder input, decoder tokens before the sentence, after the start token)."""
    end = special.eos if special.eos is not None else special.sep
    if end is None:
        raise ConfigError("encoder-decoder scoring needs an end-of-text token to end the empty input")
    lead = [] if paradigm is None else [paradigm]
    if sentinel:
        if not special.sentinels:
            raise ConfigError("the seq2seq-sentinel scorer needs a tokenizer with <extra_id_0>")
        return [*lead, special.sentinels[0], end], [special.sentinels[0]]
    return [*lead, end], []


def seq2seq_scores(backbone: Backbone, head: object, special: SpecialTokens, enc: object, sentinel: bool = False,
                   batch_tokens: int = 16384, paradigm: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sum of token log-probs, tokens scored) per sentence of ``enc`` (``lm_scoring.Encoded``); ``head``
    a ``lm_scoring.VocabProjection`` of the run's LM head (the backbone's output scale is applied here)."""

    encoder, context = seq2seq_context(special, sentinel, paradigm)
    n = len(enc.ids)
    sums, counts = np.zeros(n), np.asarray([len(x) for x in enc.ids])
    device = next(backbone.parameters()).device
    c = len(context)
    widths = counts + c + len(encoder)
    scale = getattr(backbone, "output_scale", 1.0)
    for group in _batches(widths, widths, batch_tokens):
        m, b = int(counts[group[0]]), len(group)  # every sentence of the group has m tokens
        if m == 0:
            continue
        sent = np.stack([enc.ids[i] for i in group])  # (b, m)
        lead = np.broadcast_to(np.asarray([special.pad, *context], dtype=np.int64), (b, 1 + c))
        decoder = torch.from_numpy(np.concatenate([lead, sent[:, :-1]], axis=1)).to(device)  # (b, c + m)
        inputs = torch.from_numpy(np.broadcast_to(np.asarray(encoder, dtype=np.int64), (b, len(encoder))).copy())
        hidden = backbone(inputs.to(device), AttentionLayout(), decoder_input_ids=decoder)  # (b, c + m, h)
        # decoder position c + j predicts sentence token j
        rows = hidden[:, c:c + m].reshape(-1, hidden.shape[-1]) * scale
        lp = head.logprobs(rows, torch.from_numpy(sent.reshape(-1)).to(device))
        sums[group] = lp.view(b, m).double().sum(1).cpu().numpy()
    return sums, counts


def _compute(x: ScoreInputs) -> tuple[np.ndarray, np.ndarray]:
    return seq2seq_scores(x.backbone, x.head, x.special, x.enc, x.scorer.sentinel, x.batch_tokens, x.paradigm)


SEQ2SEQ = Reading("seq2seq", "seq2seq", _compute, "an encoder-decoder's decoder log-likelihood of the sentence")
SEQ2SEQ_SENTINEL = Reading("seq2seq-sentinel", "seq2seq", _compute, "the decoder's log-likelihood of the sentence "
                           "as the one noise span of an empty text", sentinel=True)
