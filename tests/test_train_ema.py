"""EMA of the generator parameters (buffers are not averaged) and the seeding helpers of the training engine."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from harness.train.ema import ParameterEMA
from harness.core.seed import (epoch_batches, epoch_permutation, preserved_rng, rng_state, set_rng_state,
                                step_noise)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_ema_matches_a_plain_loop_and_leaves_buffers_alone():
    net = _net()
    ema = ParameterEMA(net, decay=0.9)
    expected = {n: p.detach().clone() for n, p in net.named_parameters()}
    for k in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net(torch.randn(5, 3))  # BatchNorm running statistics move (buffers)
        ema.update(net)
        for n, p in net.named_parameters():  # avg ← 0.9·avg + 0.1·θ, written out
            expected[n] = 0.9 * expected[n] + 0.1 * p.detach()
    state = ema.state_dict_for(net)
    for n, _ in net.named_parameters():
        torch.testing.assert_close(state[n], expected[n], rtol=0, atol=1e-6)
    # buffers are the live ones, not averaged
    torch.testing.assert_close(state["1.running_mean"], net[1].running_mean, rtol=0, atol=0)
    assert int(state["1.num_batches_tracked"]) == 3


def test_ema_swap_restores_the_live_weights_and_round_trips():
    net = _net()
    ema = ParameterEMA(net, decay=0.5)
    live = {n: p.detach().clone() for n, p in net.named_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    ema.update(net)  # avg = 0.5·θ0 + 0.5·3θ0 = 2θ0
    with ema.swapped_into(net) as m:
        for n, p in m.named_parameters():
            torch.testing.assert_close(p, 2 * live[n])
    for n, p in net.named_parameters():
        torch.testing.assert_close(p, 3 * live[n])
    other = ParameterEMA(_net(), decay=0.5)
    other.load_from(ema.state_dict_for(net))
    for a, b in zip(other.averages, ema.averages):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        ParameterEMA(net, decay=1.5)


def test_data_order_and_noise_are_pure_functions():
    a = epoch_permutation(7, 3, 50)
    assert a == epoch_permutation(7, 3, 50) and sorted(a) == list(range(50))
    assert a != epoch_permutation(7, 4, 50) and a != epoch_permutation(8, 3, 50)
    batches = epoch_batches(7, 3, 50, 16)
    assert [len(b) for b in batches] == [16, 16, 16]  # last incomplete batch dropped
    assert sum(batches, []) == a[:48]
    torch.manual_seed(0)
    z1 = step_noise(1, 10, 4, 5)
    torch.manual_seed(1)  # independent of the global generator
    assert torch.equal(z1, step_noise(1, 10, 4, 5))
    assert not torch.equal(z1, step_noise(1, 11, 4, 5))


def test_rng_state_round_trip_and_weights_only(tmp_path):
    state = rng_state()
    draws = (random.random(), float(np.random.rand()), float(torch.rand(())))
    torch.save(state, tmp_path / "rng.pt")
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == draws
    with preserved_rng():
        torch.rand(10), random.random(), np.random.rand()
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) != draws  # moved on, undisturbed


def test_sample_noise_follows_the_item_not_its_position():
    from harness.core.seed import rank_stream_seed, sample_noise

    z = sample_noise(0, 3, torch.tensor([5, 9, 2]), 4)
    assert z.shape == (3, 4)
    assert torch.equal(sample_noise(0, 3, [2, 5], 4), z[[2, 0]])
    assert not torch.equal(sample_noise(0, 4, [5], 4), z[:1]) and not torch.equal(sample_noise(1, 3, [5], 4), z[:1])
    assert len({rank_stream_seed(0, 3, r) for r in (-1, 0, 1)}) == 3
