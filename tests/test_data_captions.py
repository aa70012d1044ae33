"""Caption padding/subsampling, length sorting, collation and the vocabulary."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.data.captions import encode_caption_batch, pad_or_subsample, sort_by_length
from harness.data.dataset import TextImageDataset
from harness.data.vocab import Vocabulary, read_words, tokenize
from harness.util.errors import HarnessError


def test_short_caption_is_zero_padded():
    ids, n = pad_or_subsample([5, 3, 9], 6, np.random.default_rng(0))
    assert n == 3 and ids.tolist() == [5, 3, 9, 0, 0, 0] and ids.dtype == np.int64


def test_long_caption_subsampled_keeps_order_and_length():
    tokens = list(range(1, 31))  # strictly increasing: order kept <=> output increasing
    for seed in range(20):
        ids, n = pad_or_subsample(tokens, 18, np.random.default_rng(seed))
        assert n == 18 and len(ids) == 18
        assert np.all(np.diff(ids) > 0)  # a subsequence, in caption order
        assert len(set(ids.tolist())) == 18 and set(ids.tolist()) <= set(tokens)
    # not a truncation: across seeds the later words appear too
    outs = {tuple(pad_or_subsample(tokens, 18, np.random.default_rng(s))[0]) for s in range(10)}
    assert len(outs) > 1 and any(30 in o for o in outs)


def test_subsampling_is_determined_by_the_generator():
    a = pad_or_subsample(list(range(1, 40)), 10, np.random.default_rng(7))[0]
    b = pad_or_subsample(list(range(1, 40)), 10, np.random.default_rng(7))[0]
    assert a.tolist() == b.tolist()


def test_encode_caption_batch_sorts_descending_and_maps_order():
    lists = [[1, 2], [3, 4, 5, 6], [7], [8, 9, 10, 11]]
    caps, lens, order = encode_caption_batch(lists, 18, np.random.default_rng(0))
    assert lens.tolist() == [4, 4, 2, 1]
    assert order.tolist() == [1, 3, 0, 2]  # stable among equal lengths
    assert caps.shape == (4, 4)  # trimmed to the longest
    for k in range(4):
        assert caps[k, : lens[k]].tolist() == lists[order[k]]
        assert caps[k, lens[k]:].sum() == 0


def test_sort_by_length():
    assert sort_by_length(torch.tensor([3, 9, 1, 9])).tolist() == [1, 3, 0, 2]


def _item(length: int, index: int, words_num: int = 6) -> dict:
    cap = torch.zeros(words_num, dtype=torch.long)
    cap[:length] = torch.arange(1, length + 1)
    return {"images": [torch.full((3, 4, 4), float(index)), torch.full((3, 8, 8), float(index))], "caption": cap,
            "length": length, "class_id": 10 + index, "key": f"k{index}", "index": index}


def test_collate_sorts_everything_together_and_trims():
    batch = TextImageDataset.collate([_item(2, 0), _item(5, 1), _item(3, 2)])
    assert batch.lengths.tolist() == [5, 3, 2]
    assert batch.indices.tolist() == [1, 2, 0]
    assert batch.keys == ["k1", "k2", "k0"]
    assert batch.class_ids.tolist() == [11, 12, 10]
    assert batch.captions.shape == (3, 5)
    assert [im.shape for im in batch.images] == [(3, 3, 4, 4), (3, 3, 8, 8)]
    assert batch.images[1][:, 0, 0, 0].tolist() == [1.0, 2.0, 0.0]  # images follow their captions


def test_tokenize_reference_rule():
    assert tokenize("This bird's wing, is RED-ish!  Café") == ["this", "bird", "s", "wing", "is", "red", "ish", "caf"]
    assert tokenize("  ") == []


@pytest.mark.parametrize("caption", [
    "This bird's wing, is RED-ish!  Café", "r\ufffdd and r\ufffd\ufffdd", "a\u00a0nbsp\tand\x1ctab", "ΟΔΟΣ réd",
    "r\udce9d", "İx straße", "",
])
def test_read_words_keep_the_tokenisation(caption):
    """The words as written, each with its tokens: together they are the caption's tokens, in order."""
    words = read_words(caption)
    assert [t for w in words for t in w.tokens] == tokenize(caption)
    assert [w.typed for w in words] == caption.split()


def test_read_word_says_what_was_lost():
    shown = [w.shown() for w in read_words("Red-ish réd r\udce9d r\ufffdd 日本")]
    assert shown == ["Red-ish", "réd (read as 'rd': non-ASCII letters dropped)",
                     "r\\xe9d (read as 'r d': bytes not UTF-8)",  # a command-line word's undecoded byte
                     "r\ufffdd (read as 'r d': bytes not UTF-8)",  # a byte a decoder replaced
                     "日本 (read as '': non-ASCII letters dropped)"]


def test_caption_of_dropped_words_says_how_it_was_read():
    vocab = Vocabulary.from_words(["a", "red"])
    with pytest.raises(HarnessError) as e:
        vocab.encode("日本 ÉÉ")
    assert str(e.value) == ("caption '日本 ÉÉ' has no words: 日本 (read as '': non-ASCII letters dropped), "
                            "ÉÉ (read as '': non-ASCII letters dropped)")
    with pytest.raises(HarnessError, match=r"^caption '  \.' has no words$"):
        vocab.encode("  .")


def test_vocabulary_encode_decode_and_unknown_words():
    vocab = Vocabulary.from_words(["a", "red", "bird", "a"])
    assert vocab.ixtoword == ["<end>", "a", "red", "bird"] and len(vocab) == 4
    assert vocab.encode("A red bird.") == [1, 2, 3]
    assert vocab.decode([1, 2, 3, 0, 0]) == "a red bird"
    with pytest.raises(HarnessError, match="blue.*green|green.*blue"):
        vocab.encode("a blue green bird")


def test_vocabulary_from_reference_dict_keeps_ids():
    vocab = Vocabulary.from_reference({0: "<end>", 2: "wing", 1: "bird"}, {"<end>": 0, "bird": 1, "wing": 2})
    assert vocab.ixtoword == ["<end>", "bird", "wing"] and vocab.wordtoix["wing"] == 2
