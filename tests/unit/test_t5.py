"""The t5 backbone against transformers' T5Model / T5ForConditionalGeneration with the same weights."""

from __future__ import annotations

import pytest
import torch
import transformers

from zoo.models.attention import AttentionLayout
from zoo.models.t5 import T5Backbone, T5Config, relative_position_bucket

KERNELS = ["eager", "sdpa"]
TOL = 1e-5
VOCAB = 97


def _tiny(**kw) -> T5Backbone:
    values = dict(vocab_size=VOCAB, hidden_size=64, num_layers=2, num_heads=4, dropout=0.0, attention_dropout=0.0,
                  relative_attention_num_buckets=8, relative_attention_max_distance=16)
    values.update(kw)
    torch.manual_seed(0)
    return T5Backbone(T5Config(**values)).eval()


def _hf(ours: T5Backbone, cls=transformers.T5Model):
    torch.manual_seed(1)
    hf = cls(ours.hf_config()).eval()
    ours.load_hf_state_dict(hf.state_dict())  # random transformers weights, not ours
    return hf


def _inputs():
    g = torch.Generator().manual_seed(1)
    enc = torch.randint(2, VOCAB, (3, 20), generator=g)  # longer than max_distance: the log buckets matter
    dec = torch.randint(2, VOCAB, (3, 9), generator=g)
    enc_mask = torch.ones(3, 20, dtype=torch.long)
    enc_mask[1, 13:] = 0
    enc_mask[2, 5:] = 0
    dec_mask = torch.ones(3, 9, dtype=torch.long)
    dec_mask[2, 6:] = 0
    return enc, enc_mask, dec, dec_mask


def _layouts(enc_mask, dec_mask):
    return (AttentionLayout(doc_ids=torch.where(enc_mask.bool(), 0, -1)),
            AttentionLayout(causal=True, doc_ids=torch.where(dec_mask.bool(), 0, -1)))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("feed_forward", ["relu", "gated-gelu"])
def test_forward_and_gradients_match_t5model(kernel: str, feed_forward: str) -> None:
    ours = _tiny(attention=kernel, feed_forward=feed_forward, num_decoder_layers=3, head_dim=8)
    hf = _hf(ours)
    enc, enc_mask, dec, dec_mask = _inputs()
    layout, dec_layout = _layouts(enc_mask, dec_mask)
    ref = hf(input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask)
    out = ours(enc, layout, decoder_input_ids=dec, decoder_layout=dec_layout)
    real = dec_mask.bool()
    assert (ref.last_hidden_state - out)[real].abs().max().item() < TOL
    memory = ours.encode(enc, layout)
    assert (ref.encoder_last_hidden_state - memory)[enc_mask.bool()].abs().max().item() < TOL
    # gradients of the same scalar, parameter by parameter under transformers' names
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(5)) * real[..., None]
    (ref.last_hidden_state * w).sum().backward()
    (out * w).sum().backward()
    names = {v: k for k, v in ours._hf_names().items()}
    hf_params = dict(hf.named_parameters())
    for theirs, mine in names.items():
        g_ref, g = hf_params[theirs].grad, ours.get_parameter(mine).grad
        assert (g_ref - g).abs().max().item() < TOL * max(1.0, g_ref.abs().max().item()), theirs
    assert (hf.shared.weight.grad - ours.tok_emb.weight.grad).abs().max().item() < TOL


@pytest.mark.parametrize("tied", [True, False])
def test_logits_match_t5_for_conditional_generation(tied: bool) -> None:
    """Tied: the decoder states scaled by d_model**-0.5, then the shared embedding; untied: lm_head, unscaled."""
    ours = _tiny(tie_word_embeddings=tied)
    hf = _hf(ours, transformers.T5ForConditionalGeneration)
    if not tied:  # transformers ties lm_head whatever the config says; an own head as in T5 v1.1
        ours.lm_head.weight.data.normal_(generator=torch.Generator().manual_seed(3))
        hf.lm_head = torch.nn.Linear(64, VOCAB, bias=False)
        hf.lm_head.weight.data.copy_(ours.lm_head.weight.data)
    enc, enc_mask, dec, dec_mask = _inputs()
    layout, dec_layout = _layouts(enc_mask, dec_mask)
    with torch.no_grad():
        ref = hf(input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask).logits
        hidden = ours(enc, layout, decoder_input_ids=dec, decoder_layout=dec_layout)
        logits = torch.nn.functional.linear(hidden * ours.output_scale, ours.output_projection().weight)
    assert (ref - logits)[dec_mask.bool()].abs().max().item() < TOL


def test_relative_buckets_match_transformers() -> None:
    rel = torch.arange(-300, 300)[None]
    for bidirectional in (True, False):
        ref = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(rel, bidirectional, 32, 128)
        assert torch.equal(relative_position_bucket(rel, bidirectional, 32, 128), ref)


@pytest.mark.parametrize("kernel", KERNELS)
def test_packed_documents_do_not_see_each_other(kernel: str) -> None:
    """Two examples packed in one row give what each gives alone, in the encoder, decoder and cross-attention."""
    ours = _tiny(attention=kernel)
    g = torch.Generator().manual_seed(3)
    ea, eb = torch.randint(2, VOCAB, (1, 5), generator=g), torch.randint(2, VOCAB, (1, 7), generator=g)
    da, db = torch.randint(2, VOCAB, (1, 4), generator=g), torch.randint(2, VOCAB, (1, 3), generator=g)
    enc = torch.cat([ea, eb, torch.zeros(1, 2, dtype=torch.long)], 1)
    dec = torch.cat([da, db, torch.zeros(1, 1, dtype=torch.long)], 1)
    enc_docs = torch.tensor([[0] * 5 + [1] * 7 + [-1] * 2])
    dec_docs = torch.tensor([[0] * 4 + [1] * 3 + [-1]])
    enc_pos = torch.tensor([list(range(5)) + list(range(7)) + [0, 1]])
    dec_pos = torch.tensor([list(range(4)) + list(range(3)) + [0]])
    with torch.no_grad():
        out = ours(enc, AttentionLayout(doc_ids=enc_docs), position_ids=enc_pos, decoder_input_ids=dec,
                   decoder_layout=AttentionLayout(causal=True, doc_ids=dec_docs), decoder_position_ids=dec_pos)
        alone_a = ours(ea, AttentionLayout(), decoder_input_ids=da)
        alone_b = ours(eb, AttentionLayout(), decoder_input_ids=db)
    assert (out[0, :4] - alone_a[0]).abs().max() < TOL
    assert (out[0, 4:7] - alone_b[0]).abs().max() < TOL
    assert torch.isfinite(out).all()


def test_decoder_is_causal_and_sees_the_encoder() -> None:
    ours = _tiny()
    enc, _, dec, _ = _inputs()
    with torch.no_grad():
        base = ours(enc, AttentionLayout(), decoder_input_ids=dec)
        changed = dec.clone()
        changed[:, 5] = (changed[:, 5] + 1 - 2) % (VOCAB - 2) + 2
        out = ours(enc, AttentionLayout(), decoder_input_ids=changed)
        assert torch.equal(out[:, :5], base[:, :5])
        assert (out[:, 5:] - base[:, 5:]).abs().max() > 1e-4
        other = enc.clone()
        other[:, 0] = (other[:, 0] + 1 - 2) % (VOCAB - 2) + 2
        assert (ours(other, AttentionLayout(), decoder_input_ids=dec)[:, 0] - base[:, 0]).abs().max() > 1e-4


def test_hf_state_dict_round_trip_and_config() -> None:
    ours = _tiny(feed_forward="gated-gelu", tie_word_embeddings=False, num_decoder_layers=1)
    hf = transformers.T5ForConditionalGeneration(ours.hf_config())
    exported = ours.hf_state_dict()
    assert set(exported) == set(hf.state_dict())
    again = T5Backbone(T5Backbone.config_from_hf(ours.hf_config()))
    again.load_hf_state_dict(exported)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    assert again.config == ours.config


def test_base_size_is_t5_base() -> None:
    from zoo.models.base import config_for_size

    c = T5Backbone(config_for_size(T5Config, "tiny")).config
    assert (c.num_layers, c.num_decoder_layers, c.hidden_size, c.num_heads, c.intermediate_size) == (2, 2, 128, 2, 512)
    base = config_for_size(T5Config, "base").resolved()
    assert (base.num_layers, base.num_decoder_layers, base.hidden_size, base.num_heads, base.head_dim,
            base.intermediate_size, base.feed_forward, base.tie_word_embeddings) == (12, 12, 768, 12, 64, 3072, "relu", True)


@pytest.mark.parametrize("options, message", [
    ({"bias": True}, "no biases"),
    ({"feed_forward": "swish"}, "feed_forward"),
])
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        T5Config(**options)


def test_decoder_without_encoder_documents_is_refused() -> None:
    ours = _tiny()
    with pytest.raises(ValueError, match="no encoder tokens"):
        ours(torch.tensor([[5, 6]]), AttentionLayout(doc_ids=torch.tensor([[0, 0]])),
             decoder_input_ids=torch.tensor([[7, 8]]),
             decoder_layout=AttentionLayout(causal=True, doc_ids=torch.tensor([[1, 1]])))


@pytest.mark.parametrize("feed_forward", ["relu", "gated-gelu"])
def test_flops_formula_matches_a_measured_operation_count(feed_forward: str) -> None:
    """``seq2seq_flops`` against torch's FLOP counter on the forward pass (encoder, decoder, cross-attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    from zoo.batch import Batch
    from zoo.models.t5 import seq2seq_flops

    ours = _tiny(attention="eager", feed_forward=feed_forward, num_decoder_layers=3, head_dim=8)
    enc, _, dec, _ = _inputs()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        ours(enc, AttentionLayout(), decoder_input_ids=dec)
    expected = 3 * seq2seq_flops(ours.config, enc.shape[1], dec.shape[1])
    assert counter.get_total_flops() == expected
    batch = Batch(input_ids=enc, doc_ids=torch.zeros_like(enc), decoder_input_ids=dec)
    assert ours.batch_flops(batch) == expected


@pytest.mark.parametrize("objective", ["nsp", "sop", "mntp", "span-mask"])
def test_the_compatibility_rule_refuses_objectives_without_an_encoder_decoder_form(objective: str) -> None:
    from zoo import registry
    from zoo.objectives import compat
    from zoo.objectives.spec import parse_spec

    parts = [(n, registry.load("objective", n)) for n in parse_spec(objective).names]
    reason = compat.incompatibility(parts, T5Backbone)
    assert reason is not None and "has no encoder-decoder form" in reason and reason.startswith(parts[0][0])


def test_objectives_with_an_encoder_decoder_form_fit_t5_alone() -> None:
    from zoo import registry
    from zoo.listing import compatibility
    from zoo.objectives import compat

    for name in ("span-lm", "span", "prefix", "clm", "deshuffle", "ul2", "mlm"):
        assert compatibility(name, "t5") is None, name
    parts = [(n, registry.load("objective", n)) for n in ("prefix", "clm")]
    assert "rebuilds every row" in compat.incompatibility(parts, T5Backbone)  # one encoder-decoder form at a time
    assert compat.incompatibility(parts, registry.load("backbone", "gpt")) is not None  # as before on gpt


def test_encoder_decoder_forms_split_each_document() -> None:
    """prefix: encoder = the piece's prefix, decoder = the rest; clm: encoder = the empty text (end token),
    decoder = the piece; mlm: encoder = the piece, corrupted, decoder = the piece; each packed piece is its
    own document in both stacks."""
    import numpy as np

    from zoo import registry
    from zoo.testing import special_tokens_for_tests, synthetic_rows

    tokens = special_tokens_for_tests()
    spec = _tiny(vocab_size=tokens.vocab_size).spec
    data = synthetic_rows(tokens, "encoder-decoder", batch_size=4, seq_len=40)
    for name in ("prefix", "clm", "mlm"):
        obj = registry.load("objective", name)(None, tokens, spec)
        batch = obj.prepare(data, np.random.default_rng(0))
        labels = batch.targets[name]["labels"]
        for b in range(4):
            pieces = [data.input_ids[b][data.doc_ids[b] == k] for k in range(data.doc_ids[b].max() + 1)]
            pieces = [p for p in pieces if len(p) >= 2] if name == "prefix" else pieces
            for k, piece in enumerate(pieces):
                enc = batch.input_ids[b][batch.doc_ids[b] == k]
                target = labels[b][batch.decoder_doc_ids[b] == k]
                dec = batch.decoder_input_ids[b][batch.decoder_doc_ids[b] == k]
                assert np.array_equal(dec, np.concatenate([[tokens.pad], target[:-1]]))
                if name == "prefix":
                    assert np.array_equal(np.concatenate([enc, target]), piece) and len(enc) >= 1
                elif name == "mlm":  # the corrupted piece in, the original out
                    assert np.array_equal(target, piece) and len(enc) == len(piece)
                    assert (enc != piece).any() or len(piece) < 8
                else:
                    assert np.array_equal(enc, [tokens.eos]) and np.array_equal(target, piece)
            assert batch.doc_ids[b].max() == batch.decoder_doc_ids[b].max() == len(pieces) - 1


def test_deshuffle_and_ul2_encoder_decoder_forms() -> None:
    """deshuffle: encoder = the row's text in a random order and the end token, decoder = the text and the end
    token; ul2: each denoiser's paradigm token leads the encoder input (and appears nowhere else): R and X
    (span-lm) read the text with one sentinel per span while the decoder predicts the spans, so that the
    input's sentinels replaced by their spans give the text back; S (prefix) reads the first three quarters,
    the decoder predicts the last quarter. The decoder input is always the target behind the start token."""
    import dataclasses

    import numpy as np

    from zoo import registry
    from zoo.batch import Batch
    from zoo.objectives.compose import build_objective
    from zoo.objectives.spec import parse_spec
    from zoo.testing import special_tokens_for_tests

    paradigms = {"[R]": 6, "[S]": 7, "[X]": 8}
    tokens = dataclasses.replace(special_tokens_for_tests(vocab_size=512, num_sentinels=64), extra=paradigms)
    sentinels = set(tokens.sentinels)
    spec = _tiny(vocab_size=tokens.vocab_size).spec
    rng = np.random.default_rng(0)

    def rows(width: int) -> Batch:  # three rows of one text each
        ids = rng.integers(16, tokens.vocab_size - 64, size=(3, width))
        return Batch(input_ids=ids, doc_ids=np.zeros((3, width), dtype=np.int32),
                     position_ids=np.broadcast_to(np.arange(width), (3, width)).copy())

    def split(batch: Batch, labels: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(encoder input, decoder target) of row b, the decoder input checked against the target."""
        dec_docs = np.asarray(batch.decoder_doc_ids)[b]
        assert set(np.asarray(batch.doc_ids)[b].tolist()) <= {-1, 0} and set(dec_docs.tolist()) <= {-1, 0}
        target = labels[b][dec_docs >= 0]
        assert np.array_equal(np.asarray(batch.decoder_input_ids)[b][dec_docs >= 0],
                              np.concatenate([[tokens.pad], target[:-1]]))
        return np.asarray(batch.input_ids)[b][np.asarray(batch.doc_ids)[b] >= 0], target

    deshuffle = registry.load("objective", "deshuffle")(None, tokens, spec)
    data = rows(deshuffle.row_length(24))
    batch = deshuffle.prepare(data, np.random.default_rng(0))
    for b in range(3):
        enc, target = split(batch, np.asarray(batch.targets["deshuffle"]["labels"]), b)
        text = data.input_ids[b]
        assert enc[-1] == target[-1] == tokens.eos and np.array_equal(target[:-1], text)
        assert np.array_equal(np.sort(enc[:-1]), np.sort(text)) and not np.array_equal(enc[:-1], text)

    ul2 = build_objective(parse_spec("ul2"), {}, tokens, spec)
    assert len(ul2.members) == 7
    for member in ul2.members:
        lead = paradigms[member.objective.config.paradigm]
        data = rows(member.objective.row_length(40))
        batch = member.prepare(data, np.random.default_rng(1))
        for b in range(3):
            enc, target = split(batch, np.asarray(batch.targets[member.label]["labels"]), b)
            text = data.input_ids[b]
            assert enc[0] == lead and lead not in enc[1:] and lead not in target, member.label
            if member.label == "s-25":
                k = len(text) - int(np.round(len(text) * 0.25))
                assert np.array_equal(enc[1:], text[:k]) and np.array_equal(target, text[k:])
                continue
            assert enc[-1] == target[-1] == tokens.eos and target[0] in sentinels, member.label
            spans: dict[int, list[int]] = {}
            for t in target[:-1].tolist():
                if t in sentinels:
                    key = t
                    spans[key] = []
                else:
                    spans[key].append(t)
            rebuilt = [x for t in enc[1:-1].tolist() for x in (spans.pop(t) if t in sentinels else [t])]
            assert rebuilt == text.tolist() and not spans, member.label


@pytest.mark.parametrize("objective, name", [("span-lm", "seq2seq-sentinel"), ("clm", "seq2seq")])
def test_zero_shot_scores_are_t5_for_conditional_generation_log_likelihoods(objective: str, name: str) -> None:
    """The decoder's log p(sentence | empty input) equals transformers' with the same weights and tokens."""
    import numpy as np

    from zoo.benchmarks.lm_scoring import score_sentences, scorers_for
    from zoo.objectives.base import TiedLinear
    from zoo.testing import special_tokens_for_tests

    tokens = special_tokens_for_tests(vocab_size=97, num_sentinels=8)
    ours = _tiny()
    hf = _hf(ours, transformers.T5ForConditionalGeneration)
    heads = {objective: TiedLinear(ours.output_projection(), bias=False, scale=ours.output_scale)}
    (scorer,) = scorers_for(objective, "encoder-decoder", heads)
    assert scorer.name == name and scorer.variants == (name, f"{name}-mean")
    sentences = [np.array([20, 31, 42, 53]), np.array([60, 61]), np.array([70, 71, 72, 73])]

    class Tok:  # the three sentences, already tokenised
        def encode_batch(self, texts, add_special_tokens=False):
            from types import SimpleNamespace
            return [SimpleNamespace(ids=sentences[int(t)].tolist(), word_ids=list(range(len(sentences[int(t)]))))
                    for t in texts]

    scores = score_sentences(scorer, ours, heads, Tok(), tokens, ["0", "1", "2"])
    for i, sent in enumerate(sentences):
        sentinel = [tokens.sentinels[0]] if name.endswith("sentinel") else []
        inputs = torch.tensor([[*sentinel, tokens.eos]])
        labels = torch.tensor([[*sentinel, *sent.tolist()]])
        with torch.no_grad():
            logits = hf(input_ids=inputs, labels=labels).logits.log_softmax(-1)[0]
        ref = logits[len(sentinel):].gather(1, labels[0, len(sentinel):, None]).sum().item()
        assert abs(scores[name][i] - ref) < 1e-4, (i, scores[name][i], ref)
    assert np.allclose(scores[f"{name}-mean"], scores[name] / np.array([4, 2, 4]))


def test_xformers_dense_bias_is_padded_and_expanded() -> None:
    """The tensor bias memory_efficient_attention takes: (B, H, Tq, Tk) in the query dtype, rows stored
    8-aligned (built on CPU; the kernel itself needs CUDA)."""
    from zoo.models.attention import _xformers_dense

    q = torch.zeros(3, 5, 4, 8, dtype=torch.bfloat16)  # (B, Tq, H, D)
    bias = torch.randn(1, 4, 5, 7)
    out = _xformers_dense(bias, q)
    assert out.shape == (3, 4, 5, 7) and out.dtype == torch.bfloat16 and out.stride(-2) == 8
    assert torch.equal(out, bias.to(torch.bfloat16).expand(3, 4, 5, 7))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_xformers_matches_sdpa_on_cuda() -> None:
    pytest.importorskip("xformers.ops", reason="xformers not installed")
    from zoo.models.attention import xformers_available

    if not xformers_available():
        pytest.skip("xformers kernels unavailable on this CUDA setup")
    ref, ours = _tiny(attention="sdpa").cuda(), _tiny(attention="xformers").cuda()
    enc, enc_mask, dec, dec_mask = (t.cuda() for t in _inputs())
    layout, dec_layout = _layouts(enc_mask, dec_mask)
    with torch.no_grad():
        a = ref(enc, layout, decoder_input_ids=dec, decoder_layout=dec_layout)
        b = ours(enc, layout, decoder_input_ids=dec, decoder_layout=dec_layout)
    assert (a - b)[dec_mask.bool()].abs().max().item() < 1e-4


def test_training_charges_encoder_decoder_batches_by_their_own_flops() -> None:
    """The trainer's accounting: a batch with decoder inputs is charged ``batch_flops`` (both stacks and
    cross-attention), not ``flops_per_token`` x encoder tokens; forward + backward = 3 x forward."""
    from types import SimpleNamespace

    from zoo.batch import Batch
    from zoo.train.parts import Parts

    ours = _tiny()
    enc, _, dec, _ = _inputs()
    objective = SimpleNamespace(backbone_passes=lambda: 1, head_flops=lambda b: 7.0)
    parts = SimpleNamespace(of=lambda b: SimpleNamespace(objective=objective))
    seq2seq = Batch(input_ids=enc, doc_ids=torch.zeros_like(enc), decoder_input_ids=dec)
    plain = Batch(input_ids=enc, doc_ids=torch.zeros_like(enc))
    per_token = ours.flops_per_token(enc.shape[1])
    got = Parts.training_flops(parts, [seq2seq, plain], per_token, ours.batch_flops)
    assert got == 3 * (ours.batch_flops(seq2seq) + 7.0 + per_token * enc.numel() + 7.0)
    assert ours.batch_flops(seq2seq) < per_token * enc.numel()  # the decoder rows are shorter here
    assert seq2seq.slots() == enc.numel() + dec.numel() and plain.slots() == enc.numel()  # tokens charged
