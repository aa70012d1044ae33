"""R-precision on constructed embeddings: known answers, the other-class rule, the fold fix, repeatability."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.evaluation.metrics.r_precision import (
    CaptionIndex,
    RPrecision,
    draw_mismatched,
    fold_mean_std,
    retrieval_hits,
)


def _score(image_codes, sent, index, query_images, caption_ids, seed=0, candidates=100):
    rng = np.random.default_rng(seed)
    wrong = draw_mismatched(index, query_images, candidates - 1, rng)
    hits = retrieval_hits(image_codes, sent[caption_ids], sent[torch.as_tensor(wrong)])
    return hits.float().mean().item() * 100


def _setup(n_images=300, n_classes=30, caps=5, dim=64, seed=0):
    rng = np.random.default_rng(seed)
    class_ids = np.arange(n_images) % n_classes
    index = CaptionIndex.from_counts(class_ids, [caps] * n_images)
    return rng, class_ids, index


def test_perfect_embeddings_give_100():
    rng, class_ids, index = _setup()
    sent = F.normalize(torch.randn(len(class_ids) * 5, 64), dim=1)
    queries = np.arange(len(class_ids))
    caps = index.random_caption(queries, rng)
    assert _score(sent[caps] * 3.0, sent, index, queries, caps) == 100.0


def test_random_embeddings_give_chance():
    rng, class_ids, index = _setup(n_images=3000, n_classes=200, caps=2)
    sent = torch.randn(6000, 128)
    queries = np.arange(3000)
    caps = index.random_caption(queries, rng)
    rp = _score(torch.randn(3000, 128), sent, index, queries, caps)
    assert 0.4 <= rp <= 1.8  # chance = 1 % with 100 candidates


def test_other_class_rule_changes_the_answer():
    """Captions of one class share a direction; the true caption is a noisy copy of it and every other caption
    of the class matches the image perfectly. Drawing mismatches from other classes only → 100 %; drawing
    from every image (each image its own class, as COCO) lets same-class captions win → far lower."""
    rng, class_ids, index = _setup(n_images=300, n_classes=3, caps=5)
    directions = torch.linalg.qr(torch.randn(64, 3)).Q.T  # orthonormal class directions
    owner = np.repeat(np.arange(300), 5)
    sent = directions[class_ids[owner]].clone()
    queries = np.arange(300)
    true_caps = index.random_caption(queries, rng)
    sent[true_caps] = F.normalize(sent[true_caps] + 0.03 * torch.randn(300, 64), dim=1)
    codes = directions[class_ids]
    assert _score(codes, sent, index, queries, true_caps) == 100.0
    own_class = CaptionIndex.from_counts(np.arange(300), [5] * 300)
    assert _score(codes, sent, own_class, queries, true_caps) < 5.0


def test_mismatches_are_other_class_and_uniform():
    rng, class_ids, index = _setup(n_images=60, n_classes=3, caps=4)
    wrong = draw_mismatched(index, np.zeros(2000, dtype=int), 99, rng)
    owner = np.repeat(np.arange(60), 4)
    assert (class_ids[owner[wrong]] != class_ids[0]).all()
    counts = np.bincount(owner[wrong].ravel(), minlength=60)[class_ids != class_ids[0]]
    assert counts.min() > 0.8 * counts.mean()  # uniform over the other-class images
    with pytest.raises(ValueError, match="two classes"):
        draw_mismatched(CaptionIndex.from_counts([1, 1], [2, 2]), np.array([0]), 5, rng)


def test_folds_average_every_item_and_are_repeatable():
    hits = np.zeros(3000)
    hits[-1] = 1  # the reference's R[i*3000:(i+1)*3000-1] would miss this one whenever it ends a fold
    mean, std = fold_mean_std(hits, folds=1, seed=0)
    assert mean == pytest.approx(100 / 3000) and std == 0.0
    h = np.random.default_rng(0).random(30000) < 0.3
    assert fold_mean_std(h, 10, 5) == fold_mean_std(h, 10, 5)
    m1, s1 = fold_mean_std(h, 10, 5)
    m2, s2 = fold_mean_std(h, 10, 6)
    assert m1 == pytest.approx(m2) and m1 == pytest.approx(h.mean() * 100)  # equal folds: mean of all hits
    assert s1 != s2
    assert fold_mean_std(h[:1005], 10, 0)[0] == pytest.approx(h[:1005].mean() * 100, abs=0.2)  # uneven folds


def test_streaming_metric_is_seeded():
    _, class_ids, index = _setup(n_images=100, n_classes=10, caps=3)
    sent = torch.randn(300, 32)
    cfg = SimpleNamespace(eval=SimpleNamespace(rp_candidates=100, rp_folds=10))

    def run(seed):
        ctx = SimpleNamespace(cfg=cfg, seed=seed, bank=SimpleNamespace(index=index), device=torch.device("cpu"))
        m = RPrecision(ctx, "rp", lambda x: x, sent, variant="test")
        queries = np.arange(100)
        caps = index.random_caption(queries, np.random.default_rng(1))
        noisy = sent[caps] + 1.5 * torch.randn(100, 32, generator=torch.Generator().manual_seed(2))
        m.update(SimpleNamespace(images=noisy, image_indices=queries, caption_ids=caps, index=0))
        (r,) = m.finish()
        return r.value, r.std

    assert run(3) == run(3)
    assert 0 < run(3)[0] < 100 and run(3)[1] > 0
