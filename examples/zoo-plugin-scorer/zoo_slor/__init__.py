"""A scorer plugin: SLOR, the syntactic log-odds ratio (Pauls & Klein 2012; Lau et al. 2017).

SLOR(s) = (log p_LM(s) - log p_unigram(s)) / |s|: the model's log-probability of the sentence less what
word frequencies alone predict, per token. It discounts sentences that score high only because their
words are frequent, which is the regime small models are in. Here p_LM is the causal reading of a
next-token head (the first token by the unigram term, as ``causal-unigram`` does) and p_unigram the
add-one unigram of the run's training split. ``zoo bench RUN --suite blimp --scorer slor`` reports
``slor`` (the difference summed) and ``slor-mean`` (SLOR itself).
"""

from __future__ import annotations

import numpy as np

from zoo.benchmarks.lm_scoring import Reading, ScoreInputs, causal_scores


def slor(x: ScoreInputs) -> tuple[np.ndarray, np.ndarray]:
    """(log p_LM(s) - log p_unigram(s), tokens) per sentence."""
    assert x.unigram is not None  # Reading.unigram: zoo passes the run's unigram log-probabilities
    lm, _ = causal_scores(x.backbone, x.head, x.special, x.enc, batch_tokens=x.batch_tokens, paradigm=x.paradigm,
                          unigram=x.unigram)
    unigram = np.asarray([x.unigram[ids].sum() if len(ids) else 0.0 for ids in x.enc.ids])
    return lm - unigram, np.asarray([len(ids) for ids in x.enc.ids])


SLOR = Reading("slor", "causal", slor, "syntactic log-odds ratio: causal log-probability less the unigram "
               "log-probability of the training split, per token (Lau et al. 2017)", context="none", unigram=True)
