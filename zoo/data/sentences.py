"""A small, fast rule-based sentence splitter for English-like and Chinese text.

Sentences *partition* the text: ``"".join(split_sentences(t)) == t``. Whitespace between two
sentences belongs to the second one, so byte-level BPE tokenises each sentence exactly as it
would tokenise the same bytes inside the document.

Rules, in order:

* A blank line (``\\n`` + optional spaces/tabs + ``\\n``) always ends a sentence (paragraphs,
  headings without a full stop). A single line break does not: wrapped text keeps flowing.
* ``。``, ``！``, ``？`` (any run of them, optionally mixed with ``!``/``?``), followed by any closing
  quotes/brackets (``”’」』）》】〉"')]``) end a sentence right after the closers. Chinese needs no space.
* ``.``, ``!``, ``?``, ``…`` (runs such as ``...`` or ``?!``) plus closers end a sentence when
  whitespace follows and the next character is not lower-case (upper-case, digit, quote,
  bracket, CJK, ...), or the whitespace holds a line break (one sentence per line, any case). ``!``/``?`` directly followed by a CJK character also end one.
* A ``.`` does not end a sentence after a known abbreviation (``Mr.``, ``Dr.``, ``e.g.``, ``i.e.``,
  ``vs.``, ``No.``, ...), after a single letter (initials: ``J. R. R. Tolkien``) or after a dotted
  acronym (``U.S.``). Decimals (``3.14``) never split because no whitespace follows the dot.
* A "sentence" longer than ``max_chars`` characters is cut at the last whitespace before the
  limit (or hard at the limit when there is none), so one pathological line never becomes one
  huge tokenizer input.
"""

from __future__ import annotations

import re

MAX_SENTENCE_CHARS = 5000
SPLITTER_VERSION = 1  # bump when the rules below change: cached token stores hold their sentence offsets

ABBREVIATIONS = frozenset(
    """mr mrs ms mx dr prof sr jr st mt ft vs al i.e cf viz approx dept est fig figs
    no nos vol vols pp ch sec art ed eds rev hon gen col lt sgt capt cmdr adm gov sen rep pres
    supt insp inc ltd co corp bros jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed
    thu fri sat sun""".split()
)

_CJK_TERM = "。！？"
_CLOSERS = "”’」』）》】〉\"')]»"
_CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_C = re.escape(_CLOSERS)
_CANDIDATE = re.compile(
    rf"(?=[.!?…\n{_CJK_TERM}])"  # lets the regex engine skip to candidate characters quickly
    rf"(?:(?P<cjk>(?:[{_CJK_TERM}]|[!?]+[{_CJK_TERM}])[{_CJK_TERM}!?]*[{_C}]*)"  # Chinese: always a boundary
    # Latin: needs whitespace after, and (checked here for ASCII / Latin-1, in Python for the rest)
    # a line break or a next character that is not lower case
    rf"|(?P<lat>(?:\.\.\.|…|[.!?])+[{_C}]*)(?P<ws>\s*\n\s*|[^\S\n]+(?![a-zß-öø-ÿ]))(?=(?P<nx>\S))"
    rf"|(?P<bang>[!?]+[{_C}]*)(?=[{_CJK_CHARS}])"  # "!"/"?" right before a CJK character
    r"|(?P<para>\n[^\S\n]*\n))"  # blank line
)
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_DOTTED_ACRONYM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")


def _abbreviation_before(text: str, dot: int) -> bool:
    """Whether the ``.`` at ``dot`` closes an abbreviation, an initial or a dotted acronym."""
    m = _WORD_BEFORE.search(text, max(0, dot - 24), dot)
    if m is None:
        return False
    word = m.group(1)
    if len(word) == 1:  # initials: "J. Smith"
        return True
    if _DOTTED_ACRONYM.match(word):  # "U.S", "e.g", "i.e"
        return True
    return word.lower() in ABBREVIATIONS


def sentence_boundaries(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[int]:
    """Start offsets of the sentences of ``text`` (the first is always 0; empty text: ``[]``)."""
    if not text:
        return []
    n = len(text)
    starts = [0]
    for m in _CANDIDATE.finditer(text):
        if m.group("lat") is not None:
            run = m.group("lat")
            # Lower case next: not a sentence start, unless a line break intervenes
            # (one-sentence-per-line text, often lower-cased, like the movie-review corpus).
            if m.group("nx").islower() and "\n" not in m.group("ws"):
                continue
            s = m.start()
            if run[0] == "." and (len(run) == 1 or run[1] in _CLOSERS) and _abbreviation_before(text, s):
                continue
            cut = m.end("lat")
        elif m.group("para") is not None:
            cut = m.start()  # the next sentence starts at the line break
        else:
            cut = m.end()
            if cut >= n:
                continue
        if cut > starts[-1] and not text[starts[-1]:cut].isspace():
            starts.append(cut)
    if max_chars > 0:
        starts = _cap(text, starts, max_chars)
    return starts


def _cap(text: str, starts: list[int], max_chars: int) -> list[int]:
    out: list[int] = []
    ends = starts[1:] + [len(text)]
    for s, e in zip(starts, ends, strict=True):
        out.append(s)
        while e - s > max_chars:
            limit = s + max_chars
            cut = max(text.rfind(" ", s + 1, limit), text.rfind("\n", s + 1, limit))
            if cut <= s + max_chars // 2:
                cut = limit
            out.append(cut)
            s = cut
    return out


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """The sentences of ``text``; their concatenation is ``text``."""
    b = sentence_boundaries(text, max_chars)
    return [text[s:e] for s, e in zip(b, b[1:] + [len(text)], strict=True)] if b else []


def chunk_text(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """``text`` cut at whitespace into pieces of at most ``max_chars`` (cheap; for tokenizer training)."""
    if len(text) <= max_chars:
        return [text] if text else []
    b = _cap(text, [0], max_chars)
    return [text[s:e] for s, e in zip(b, b[1:] + [len(text)], strict=True)]
