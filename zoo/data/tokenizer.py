"""Tokenizers: train (WordPiece for encoders, byte-level BPE for decoders), load, save, inspect.

Trained tokenizers carry the special tokens every objective needs:

* WordPiece: ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4`` then ``<extra_id_0>..<extra_id_{n-1}>``,
  BERT normalisation (clean text, CJK characters split, optional lowercasing which also strips
  accents, as BERT does) and BERT's ``[CLS] A [SEP] (B [SEP])`` post-processor with type ids.
* Byte-level BPE (GPT-2 style, cased, exact round trip): ``<|endoftext|>=0`` (end of document and
  separator), ``<|pad|>=1``, ``<|mask|>=2``, then the sentinels.

Objectives may declare further special tokens (``Objective.special_tokens``, e.g. UL2's ``[R]``
``[S]`` ``[X]``): ``train_tokenizer(..., extra_special_tokens=...)`` reserves them after the
sentinels, ``special_tokens`` reports them in ``SpecialTokens.extra`` and ``save_tokenizer`` lists them
with the sentinels as ``additional_special_tokens``.

Files are Hugging Face ``tokenizer.json``; ``save_tokenizer`` also writes ``tokenizer_config.json``
and ``special_tokens_map.json`` so ``transformers.AutoTokenizer.from_pretrained(dir)`` loads it.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from zoo.batch import SpecialTokens
from zoo.data.config import TokenizerConfig
from zoo.data.special_names import (
    _NAMES,
    _SENTINEL,
    BPE_SPECIALS,
    WORDPIECE_SPECIALS,
    check_extra_special_tokens,
    sentinel,
)
from zoo.errors import CheckpointError, DataError
from zoo.family import Family


def resolve_kind(cfg: TokenizerConfig, family: str) -> str:
    """'wordpiece' or 'bpe' for a backbone family ('encoder' / 'decoder')."""
    if cfg.kind != "auto":
        return cfg.kind
    return "wordpiece" if Family.of(family) == Family.ENCODER else "bpe"


def new_tokenizer(kind: str, lowercase: bool = True) -> Tokenizer:
    """An untrained tokenizer of ``kind`` with its normaliser, pre-tokeniser and decoder."""
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
        # strip_accents=None follows lowercase, exactly as BERT's BasicTokenizer does.
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=None, lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        # cleanup=False: the default "cleanup" rewrites text (" do not" -> " don't"), breaking round trips
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    elif kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected 'wordpiece' or 'bpe'")
    return tok


def _is_bert_punct(ch: str) -> bool:
    o = ord(ch)
    return 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126 or unicodedata.category(ch)[0] == "P"


def _is_cjk(ch: str) -> bool:
    o = ord(ch)  # the ranges BERT's normaliser splits into single characters
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF or 0x2A700 <= o <= 0x2B73F
            or 0x2B740 <= o <= 0x2B81F or 0x2B820 <= o <= 0x2CEAF or 0xF900 <= o <= 0xFAFF or 0x2F800 <= o <= 0x2FA1F)


def _continuation_alphabet(tok: Tokenizer, texts: list[str]) -> list[str]:
    """``##c`` for every character that can continue a word after BERT normalisation (sorted)."""
    chars: set[str] = set()
    assert tok.normalizer is not None
    for text in texts:
        chars.update(tok.normalizer.normalize_str(text))
    return [f"##{c}" for c in sorted(chars) if not c.isspace() and not _is_bert_punct(c) and not _is_cjk(c)]


def train_tokenizer(texts: Iterable[str], kind: str, vocab_size: int = 8000, lowercase: bool = True,
                    num_sentinels: int = 100, length: int | None = None,
                    extra_special_tokens: Iterable[str] = ()) -> Tokenizer:
    """Train a ``kind`` tokenizer on ``texts`` (pieces of a few thousand characters at most).

    Training is deterministic. The ``tokenizers`` WordPiece trainer numbers the ``##c``
    continuation characters in hash-map order, which changes the ids and breaks ties between
    merges differently from run to run; declaring every ``##c`` up front (as reserved entries,
    removed again from the special tokens afterwards) fixes their ids and so the whole result.
    """
    tok = new_tokenizer(kind, lowercase)
    base = WORDPIECE_SPECIALS if kind == "wordpiece" else BPE_SPECIALS
    extra = check_extra_special_tokens(extra_special_tokens)
    specials = [*base, *(sentinel(i) for i in range(num_sentinels)), *extra]
    if kind == "wordpiece":
        texts = list(texts)
        reserved = _continuation_alphabet(tok, texts)
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials + reserved,
                                            continuing_subword_prefix="##", show_progress=False)
    else:
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    if kind == "bpe":
        return tok
    # Rebuild: the reserved ##c entries become ordinary vocabulary, only the real specials stay special.
    vocab = tok.get_vocab(with_added_tokens=True)
    out = new_tokenizer("wordpiece", lowercase)
    out.model = models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100)
    out.add_special_tokens(specials)
    out.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return out


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A ``tokenizer.json`` file, or a directory holding one."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise DataError(f"tokenizer not found: {p} (tokenizer.path / --tokenizer expects a tokenizer.json "
                        "file or a directory holding one)")
    try:
        return Tokenizer.from_file(str(p))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise DataError(f"cannot load tokenizer {p}: {exc}") from exc


def canonical_json(tok: Tokenizer) -> str:
    return json.dumps(json.loads(tok.to_str()), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tokenizer_hash(tok: Tokenizer) -> str:
    """sha256 of the canonical (key-sorted, compact) tokenizer JSON."""
    return hashlib.sha256(canonical_json(tok).encode("utf-8")).hexdigest()


def special_tokens(tok: Tokenizer) -> SpecialTokens:
    """Ids of the special tokens, recognised by their usual names (BERT, GPT-2, T5, RoBERTa)."""
    vocab = tok.get_vocab(with_added_tokens=True)
    found: dict[str, int | None] = {}
    for role, names in _NAMES.items():
        found[role] = next((vocab[n] for n in names if n in vocab), None)
    if found["pad"] is None:
        found["pad"] = found["eos"]  # GPT-2 convention: pad with the end-of-text token
    if found["pad"] is None:
        raise DataError("the tokenizer has no padding token ([PAD], <pad>, <|pad|>) and no end-of-text token "
                        "to pad with")
    sentinels = sorted(((int(m.group(1)), i) for t, i in vocab.items() if (m := _SENTINEL.match(t))))
    pad = found.pop("pad")
    assert pad is not None
    standard = {n for names in _NAMES.values() for n in names}
    extra = {t.content: i for i, t in sorted(tok.get_added_tokens_decoder().items())
             if t.special and t.content not in standard and not _SENTINEL.match(t.content)}
    return SpecialTokens(vocab_size=tok.get_vocab_size(with_added_tokens=True), pad=pad,
                         sentinels=tuple(i for _, i in sentinels), extra=extra, **found)


def tokenizer_kind(tok: Tokenizer) -> str:
    """The model type of the tokenizer: 'WordPiece', 'BPE', 'Unigram', ..."""
    return json.loads(tok.to_str())["model"]["type"]


def _write_atomic(path: Path, text: str) -> None:
    from zoo import fileio

    fileio.write_text(path, text, if_changed=True)


def save_tokenizer(tok: Tokenizer, directory: str | Path) -> Path:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` (plus
    ``vocab.txt`` for WordPiece) so that ``AutoTokenizer.from_pretrained(directory)`` works.
    Returns the path of ``tokenizer.json``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    sp = special_tokens(tok)
    name = tok.id_to_token
    token_map: dict[str, object] = {}
    for role in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        i = getattr(sp, role)
        if i is not None:
            token_map[f"{role}_token"] = name(i)
    if sp.sentinels or sp.extra:
        token_map["additional_special_tokens"] = [*(name(i) for i in sp.sentinels), *sp.extra]
    kind = tokenizer_kind(tok)
    config: dict[str, object] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1_000_000_000_000_000_019_884_624_838_656,  # transformers' "unlimited"
        **token_map,
    }
    if kind == "WordPiece":
        config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"]
        norm = json.loads(tok.to_str()).get("normalizer") or {}
        if norm.get("type") == "BertNormalizer":
            config["do_lower_case"] = bool(norm.get("lowercase"))
    else:
        config["model_input_names"] = ["input_ids", "attention_mask"]
    _write_atomic(d / "tokenizer.json", tok.to_str(pretty=True))
    _write_atomic(d / "tokenizer_config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(d / "special_tokens_map.json", json.dumps(token_map, indent=2, ensure_ascii=False) + "\n")
    if kind == "WordPiece":
        vocab = tok.get_vocab(with_added_tokens=True)
        ordered = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in ordered] == list(range(len(ordered))):
            _write_atomic(d / "vocab.txt", "".join(f"{t}\n" for t, _ in ordered))
    return d / "tokenizer.json"


def padded_vocab_sizes(vocab_size: int) -> set[int]:
    """Embedding-table sizes that fit a tokenizer of ``vocab_size`` tokens: its own, or rounded up to a
    multiple of 8, 64 or 128 (tables padded for speed)."""
    return {vocab_size} | {-(-vocab_size // m) * m for m in (8, 64, 128)}


def check_tokenizer_fits(vocab_size: int, model_vocab: int, tokenizer_ref: str, model_ref: str,
                    tok_hash: str | None = None, expected_hash: str | None = None) -> None:
    """Refuse a tokenizer that does not belong to the weights, naming both.

    The model's vocabulary may be the tokenizer's rounded up to a multiple of 8, 64 or 128
    (embedding tables padded for speed); anything else is a mismatch.
    """
    if expected_hash is not None and tok_hash is not None and expected_hash != tok_hash:
        raise CheckpointError(f"tokenizer mismatch: {tokenizer_ref} has hash {tok_hash[:12]}, but {model_ref} "
                              f"was trained with tokenizer {expected_hash[:12]}")
    if model_vocab not in padded_vocab_sizes(vocab_size):
        raise CheckpointError(f"tokenizer mismatch: {tokenizer_ref} has {vocab_size} tokens but {model_ref} has a "
                              f"vocabulary of {model_vocab}")
