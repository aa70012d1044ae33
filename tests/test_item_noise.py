"""Per-item draws inside networks: an item's draw depends on (seed, step, item index, draw number) only; and the
batch bookkeeping they rely on (indices stay on the host, pinned batches for a GPU)."""
from __future__ import annotations

import pytest
import torch

from harness.nn.conditioning import CANet
from harness.nn.item_noise import item_randn, per_item_draws


def test_an_items_draw_does_not_depend_on_its_position_or_batch():
    like = torch.empty(4, 3, 2)
    with per_item_draws(seed=7, step=3, indices=torch.tensor([10, 11, 12, 13])):
        whole = item_randn(like)
    with per_item_draws(seed=7, step=3, indices=[13, 11]):  # another rank's half, in another order
        half = item_randn(like[:2])
    torch.testing.assert_close(half[0], whole[3], rtol=0, atol=0)
    torch.testing.assert_close(half[1], whole[1], rtol=0, atol=0)
    assert whole.shape == like.shape and whole.dtype == like.dtype
    assert abs(float(whole.mean())) < 1.0 and 0.3 < float(whole.std()) < 2.0


def test_draws_differ_by_step_seed_item_and_draw_number():
    like = torch.empty(2, 16)
    with per_item_draws(seed=0, step=1, indices=[0, 1]):
        first, second = item_randn(like), item_randn(like)
    with per_item_draws(seed=0, step=2, indices=[0, 1]):
        other_step = item_randn(like)
    with per_item_draws(seed=1, step=1, indices=[0, 1]):
        other_seed = item_randn(like)
    with per_item_draws(seed=0, step=1, indices=[0, 1]):
        again = item_randn(like)
    assert torch.equal(first, again)
    for other in (second, other_step, other_seed):
        assert not torch.allclose(first, other)
    assert not torch.allclose(first[0], first[1])


def test_outside_the_block_it_is_the_global_generator():
    like = torch.empty(3, 5)
    torch.manual_seed(4)
    a = item_randn(like)
    torch.manual_seed(4)
    torch.testing.assert_close(a, torch.randn_like(like), rtol=0, atol=0)


def test_a_row_count_that_does_not_match_the_indices_is_an_error():
    with per_item_draws(seed=0, step=0, indices=[1, 2, 3]), pytest.raises(ValueError, match="3 item indices"):
        item_randn(torch.empty(2, 4))


def test_conditioning_augmentation_is_per_item_in_training():
    torch.manual_seed(0)
    ca = CANet(embedding_dim=6, condition_dim=4)
    sent = torch.randn(4, 6)
    perm = torch.tensor([2, 0, 3, 1])
    with per_item_draws(seed=5, step=9, indices=torch.arange(4)):
        c, mu, logvar = ca(sent)
    with per_item_draws(seed=5, step=9, indices=perm):  # the same items, shuffled
        c_perm, _, _ = ca(sent[perm])
    torch.testing.assert_close(c_perm, c[perm], rtol=0, atol=1e-6)
    assert not torch.allclose(c, mu)  # ε was drawn: c = μ + σ·ε


def test_a_batch_pins_and_moves_every_tensor_but_its_indices(monkeypatch):
    """For a GPU the loader pins each batch (``Batch.pin_memory``) so its copy to the device is asynchronous;
    the item indices stay on the host (per-item draws read them without a device → host copy). Pinning is
    replaced by a marking clone and the DataLoader by a recorder here: this machine may have no CUDA (where
    torch's DataLoader turns pinning off)."""
    import torch.utils.data

    from harness.core.runtime import batch_loader
    from harness.contract.types import Batch

    pinned = []

    def fake_pin(self):
        out = self.clone()
        pinned.append(out)
        return out

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    n = 3
    batch = Batch([torch.full((n, 3, 4, 4), float(i)) for i in range(2)], torch.ones(n, 5, dtype=torch.long),
                  torch.full((n,), 5), torch.arange(n), ["a", "b", "c"], torch.tensor([7, 8, 9]))
    p = batch.pin_memory()
    ids = {id(t) for t in pinned}
    assert all(id(t) in ids for t in (*p.images, p.captions, p.lengths, p.class_ids)) and len(pinned) == 5
    assert p.indices is batch.indices and p.keys == batch.keys
    assert torch.equal(p.images[1], batch.images[1]) and torch.equal(p.lengths, batch.lengths)
    moved = p.to("cpu")
    assert moved.indices is batch.indices and torch.equal(moved.captions, batch.captions)

    seen = {}
    monkeypatch.setattr(torch.utils.data, "DataLoader", lambda *a, **k: seen.update(k) or "loader")
    dataset = type("Items", (), {"collate": staticmethod(lambda items: items)})()
    assert batch_loader(dataset, [[0]], pin_memory=True) == "loader" and seen["pin_memory"] is True
