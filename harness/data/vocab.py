"""Caption tokenisation and the word vocabulary, as the original AttnGAN ``code/datasets.py``
(``load_captions``, ``build_dictionary``) does them.

Tokenisation: ``RegexpTokenizer(r'\\w+')`` on the lower-cased caption, each token reduced to ASCII (non-ASCII
characters dropped), empty tokens dropped. Index 0 is ``<end>`` (padding); real words start at 1.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from harness.util.errors import HarnessError

RELEASED_ENCODERS_HINT = ("Released AttnGAN / DM-GAN encoders go with the captions.pickle of AttnGAN's "
                          "preprocessed metadata (birds.zip for cub: 5,450 words; coco.zip for coco): put it into the "
                          "data directory")


def check_vocabulary_size(model_words: int, dataset: object, model: str) -> None:
    """Raise HarnessError in one line when ``model`` (e.g. "--text-encoder FILE") embeds ``model_words`` token ids
    but ``dataset``'s vocabulary (``dataset.vocab``) has another size: its ids would index past the embedding or
    mean other words. Only sizes can be compared: two vocabularies of one size in another order pass."""
    n = len(dataset.vocab)  # type: ignore[attr-defined]
    if n == int(model_words):
        return
    name = getattr(dataset, "name", "") or "the data set"
    source = getattr(getattr(dataset, "layout", None), "captions_source", "")
    raise HarnessError(f"{model} has a {int(model_words)}-word vocabulary but the {name} data has {n} words"
                       + (f" (from {source})" if source else "") + "; its token ids would mean other words. "
                       + RELEASED_ENCODERS_HINT)


END_TOKEN = "<end>"
_WORD = re.compile(r"\w+")


def tokenize(caption: str) -> list[str]:
    """The reference tokenisation of one caption."""
    caption = caption.replace("\ufffd\ufffd", " ")
    tokens = []
    for t in _WORD.findall(caption.lower()):
        t = t.encode("ascii", "ignore").decode("ascii")
        if t:
            tokens.append(t)
    return tokens


# U+FFFD (bytes a decoder replaced) or a lone surrogate (bytes Python kept undecoded, e.g. in a command-line word)
_NOT_UTF8 = re.compile("[\ufffd\ud800-\udfff]")


@dataclass(frozen=True)
class ReadWord:
    """One whitespace-separated word of a caption as written, and the tokens ``tokenize`` reads from it."""

    typed: str
    tokens: tuple[str, ...]

    @property
    def loss(self) -> Optional[str]:
        """What the tokeniser drops of the word beyond case and punctuation, or None."""
        if _NOT_UTF8.search(self.typed):
            return "bytes not UTF-8"
        if any(ord(c) > 127 and _WORD.match(c) for c in self.typed):
            return "non-ASCII letters dropped"
        return None

    def shown(self) -> str:
        """The word as written (undecodable bytes as ``\\xNN``), with how it was read when letters were lost:
        ``réd (read as 'rd': non-ASCII letters dropped)``."""
        try:
            typed = self.typed.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate no decoder makes
            typed = ascii(self.typed)[1:-1]
        loss = self.loss
        return typed if loss is None else f"{typed} (read as {' '.join(self.tokens)!r}: {loss})"


def read_words(caption: str) -> list[ReadWord]:
    """The words of ``caption`` as written with their tokens; all their tokens, in order, are
    ``tokenize(caption)`` (a token never spans whitespace)."""
    return [ReadWord(w, tuple(tokenize(w))) for w in caption.split()]


@dataclass
class Vocabulary:
    """``ixtoword[i]`` is the word of token id i (``ixtoword[0] == "<end>"``); ``wordtoix`` the inverse."""

    ixtoword: list[str]
    wordtoix: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.wordtoix:
            self.wordtoix = {w: i for i, w in enumerate(self.ixtoword)}

    def __len__(self) -> int:
        return len(self.ixtoword)

    @classmethod
    def from_words(cls, words: Iterable[str]) -> "Vocabulary":
        """``<end>`` followed by the words in first-seen order (duplicates ignored)."""
        seen: dict[str, None] = {END_TOKEN: None}
        for w in words:
            seen.setdefault(w, None)
        return cls(list(seen))

    @classmethod
    def from_reference(cls, ixtoword: Mapping[int, str] | Sequence[str], wordtoix: Mapping[str, int],
                       source: str = "captions.pickle") -> "Vocabulary":
        """From the reference pickle's ``ixtoword`` (a dict {id: word}, or a list) and ``wordtoix``, unchanged."""
        from harness.util.errors import DataError

        if isinstance(ixtoword, Mapping):
            n = len(ixtoword)
            try:
                words = [str(ixtoword[i]) for i in range(n)]
            except KeyError as e:
                raise DataError(f"{source}: ixtoword has no entry for id {e.args[0]} "
                                f"(ids must be 0..{n - 1})") from None
        else:
            words = [str(w) for w in ixtoword]
        w2i = {str(w): int(i) for w, i in wordtoix.items()}
        return cls(words, w2i)

    def fingerprint(self) -> str:
        """sha256 (first 16 hex digits) of the words in id order: two vocabularies of the same size whose words
        or order differ get different fingerprints (cache keys use it, not the size alone)."""
        import hashlib

        return hashlib.sha256("\n".join(self.ixtoword).encode("utf-8")).hexdigest()[:16]

    def tokens_of(self, caption: str) -> list[str]:
        return tokenize(caption)

    def unknown_words(self, caption: str) -> list[str]:
        """The words of ``caption`` whose tokens are not in the vocabulary, once each: the token, or the word as
        written with how it was read when the tokeniser dropped letters of it (``ReadWord.shown``)."""
        out: dict[str, None] = {}
        for w in read_words(caption):
            for t in w.tokens:
                if t not in self.wordtoix:
                    out.setdefault(t if w.loss is None else w.shown(), None)
        return list(out)

    def encode(self, text: str) -> list[int]:
        """Token ids of a caption; unknown words raise HarnessError naming them (``unknown_words``)."""
        tokens = tokenize(text)
        unknown = self.unknown_words(text)
        if unknown:
            raise HarnessError(f"caption {text!r}: words not in the vocabulary ({len(self)} words): "
                               f"{', '.join(unknown)}")
        if not tokens:
            lost = [w.shown() for w in read_words(text) if w.loss is not None]
            raise HarnessError(f"caption {text!r} has no words" + (f": {', '.join(lost)}" if lost else ""))
        return [self.wordtoix[t] for t in tokens]

    def encode_known(self, tokens: Sequence[str]) -> list[int]:
        """Ids of the tokens that are in the vocabulary (the reference silently drops the others)."""
        return [self.wordtoix[t] for t in tokens if t in self.wordtoix]

    def decode(self, ids: Iterable[int]) -> str:
        """Words of the ids, padding (0) skipped."""
        return " ".join(self.ixtoword[int(i)] for i in ids if int(i) != 0)


VOCAB_FILE = "vocab.json"  # a run's vocabulary (``harness.api``: a copied run generates without its data set)


def save_vocabulary(vocab: Vocabulary, path: "str | object") -> None:
    """Write ``{"ixtoword": [...], "fingerprint": ...}`` to ``path`` (JSON, replaced atomically)."""
    import json
    from pathlib import Path

    from harness.core.rundir import atomic_write_text

    atomic_write_text(Path(path), json.dumps({"ixtoword": list(vocab.ixtoword), "fingerprint": vocab.fingerprint()}))


def load_vocabulary(path: "str | object") -> Vocabulary:
    """The vocabulary ``save_vocabulary`` wrote. Raises HarnessError (one line) for a file that is not one, or
    whose words do not match its fingerprint."""
    import json
    from pathlib import Path

    try:
        blob = json.loads(Path(path).read_text())
        vocab = Vocabulary([str(w) for w in blob["ixtoword"]])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HarnessError(f"{path}: not a vocabulary file ({type(e).__name__}: {e})") from None
    if blob.get("fingerprint") not in (None, vocab.fingerprint()):
        raise HarnessError(f"{path}: its words do not match its fingerprint (edited or damaged)")
    return vocab
