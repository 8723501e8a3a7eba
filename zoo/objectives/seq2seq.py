"""Encoder-decoder batches: one (encoder input, decoder target) pair per row, as T5 trains.

``seq2seq_rows`` turns pairs into a ``Batch`` whose rows are the encoder's input (bidirectional, one
document per row) and whose decoder fields hold the target shifted right behind a start token (the
pad id, T5's ``decoder_start_token_id``); ``labels`` (B, Td) are the target itself, so the decoder
state at t predicts label t, read through the LM head of ``zoo.objectives.clm`` (the backbone's output
projection, scaled as T5 scales it).
"""

from __future__ import annotations

import numpy as np

from zoo.batch import Batch, SpecialTokens
from zoo.objectives.common import IGNORE, document_runs


def seq2seq_rows(pairs: list[tuple[np.ndarray, np.ndarray]], encoder_width: int, decoder_width: int, pad: int,
                 special_ids: np.ndarray) -> tuple[Batch, np.ndarray]:
    """(batch, labels (B, decoder_width)) for (input, target) pairs, padded to the two widths.
    ``special_ids`` mark the encoder rows' ``special_mask``."""
    batch_size = len(pairs)
    ids = np.full((batch_size, encoder_width), pad, dtype=np.int64)
    doc_ids = np.full((batch_size, encoder_width), -1, dtype=np.int32)
    special = np.ones((batch_size, encoder_width), dtype=bool)
    dec_ids = np.full((batch_size, decoder_width), pad, dtype=np.int64)
    dec_docs = np.full((batch_size, decoder_width), -1, dtype=np.int32)
    labels = np.full((batch_size, decoder_width), IGNORE, dtype=np.int64)
    for b, (inputs, target) in enumerate(pairs):
        a, n = len(inputs), len(target)
        if a > encoder_width or n > decoder_width:
            raise ValueError(f"an encoder-decoder pair of {a} + {n} tokens does not fit rows of "
                             f"{encoder_width} + {decoder_width}")
        if a == 0 or n == 0:
            raise ValueError("an encoder-decoder pair needs a non-empty input and target")
        ids[b, :a], doc_ids[b, :a] = inputs, 0
        special[b, :a] = np.isin(inputs, special_ids)
        dec_ids[b, 1:n], dec_docs[b, :n] = target[:-1], 0  # position 0 holds the start token (pad)
        labels[b, :n] = target
    positions = np.broadcast_to(np.arange(encoder_width, dtype=np.int64), (batch_size, encoder_width)).copy()
    dec_positions = np.broadcast_to(np.arange(decoder_width, dtype=np.int64), (batch_size, decoder_width)).copy()
    batch = Batch(input_ids=ids, doc_ids=doc_ids, position_ids=positions, special_mask=special,
                  decoder_input_ids=dec_ids, decoder_doc_ids=dec_docs, decoder_position_ids=dec_positions)
    return batch, labels


def packed_seq2seq_rows(rows: list[list[tuple[np.ndarray, np.ndarray]]], pad: int,
                        special_ids: np.ndarray) -> tuple[Batch, np.ndarray]:
    """(batch, labels) for rows of several (encoder input, decoder target) documents each: document d of a
    row fills encoder run d and decoder run d (doc ids d, positions restarting), so packed examples see
    each other in neither stack nor in cross-attention. Widths are the longest encoder and decoder rows."""
    enc_width = max(1, max((sum(len(a) for a, _ in docs) for docs in rows), default=1))
    dec_width = max(1, max((sum(len(t) for _, t in docs) for docs in rows), default=1))
    batch_size = len(rows)
    ids = np.full((batch_size, enc_width), pad, dtype=np.int64)
    doc_ids = np.full((batch_size, enc_width), -1, dtype=np.int32)
    positions = np.zeros((batch_size, enc_width), dtype=np.int64)
    dec_ids = np.full((batch_size, dec_width), pad, dtype=np.int64)
    dec_docs = np.full((batch_size, dec_width), -1, dtype=np.int32)
    dec_positions = np.zeros((batch_size, dec_width), dtype=np.int64)
    labels = np.full((batch_size, dec_width), IGNORE, dtype=np.int64)
    for b, docs in enumerate(rows):
        e = d = 0
        for k, (inputs, target) in enumerate(docs):
            a, n = len(inputs), len(target)
            if a == 0 or n == 0:
                raise ValueError("an encoder-decoder document needs a non-empty input and target")
            ids[b, e:e + a], doc_ids[b, e:e + a], positions[b, e:e + a] = inputs, k, np.arange(a)
            dec_ids[b, d + 1:d + n] = target[:-1]  # behind the start token (pad)
            dec_docs[b, d:d + n], dec_positions[b, d:d + n], labels[b, d:d + n] = k, np.arange(n), target
            e, d = e + a, d + n
    special = np.isin(ids, special_ids) | (doc_ids < 0)
    batch = Batch(input_ids=ids, doc_ids=doc_ids, position_ids=positions, special_mask=special,
                  decoder_input_ids=dec_ids, decoder_doc_ids=dec_docs, decoder_position_ids=dec_positions)
    return batch, labels


def document_texts(data: Batch) -> list[list[np.ndarray]]:
    """The token ids of each packed document piece, row by row."""

    ids, doc_ids = np.asarray(data.input_ids, dtype=np.int64), np.asarray(data.doc_ids)
    return [[ids[b, s:e] for s, e in document_runs(doc_ids[b])] for b in range(ids.shape[0])]


def end_token(tokens: SpecialTokens) -> int:
    """The token that closes the input and the target: end-of-text, else [SEP]."""
    return tokens.eos if tokens.eos is not None else tokens.separator
