"""DAMSM encoders: the BiLSTM against an independent per-caption computation and torch's packed sequences, reference
key layout, image encoders' shapes, Inception trunk loading, build_damsm, and the safe/strict state-dict loading."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.config import Config, stage_sizes
from harness.util.errors import HarnessError
from harness.nn.damsm import (INCEPTION_TRUNK, InceptionImageEncoder, RNNTextEncoder, SmallCNNImageEncoder,
                              build_damsm, load_text_encoder_file)
from harness.core.state_dicts import load_state_strict, load_weights_file

from reference_manifest import reference_keys


def test_text_encoder_matches_per_caption_lstm():
    torch.manual_seed(0)
    enc = RNNTextEncoder(50, word_dim=12, hidden=8).eval()
    captions = torch.tensor([[5, 6, 7, 8, 9], [3, 4, 2, 0, 0], [11, 12, 0, 0, 0]])
    lengths = torch.tensor([5, 3, 2])
    out = enc(captions, lengths)
    assert out.words.shape == (3, 8, 5) and out.sent.shape == (3, 8)
    assert out.mask.tolist() == (captions == 0).tolist()
    for i in range(3):
        L = int(lengths[i])
        emb = enc.encoder(captions[i:i + 1, :L])
        y, (h, _) = enc.rnn(emb)  # this caption alone, no packing
        assert torch.allclose(out.words[i, :, :L], y[0].t(), atol=1e-6)
        assert torch.all(out.words[i, :, L:] == 0)
        assert torch.allclose(out.sent[i], torch.cat((h[0, 0], h[1, 0])), atol=1e-6)


def test_text_encoder_keeps_extra_padding_and_accepts_unsorted():
    torch.manual_seed(0)
    enc = RNNTextEncoder(20, word_dim=6, hidden=4).eval()
    captions = torch.tensor([[3, 4, 0, 0, 0, 0], [5, 6, 7, 0, 0, 0]])
    out = enc(captions, torch.tensor([2, 3]))
    assert out.words.shape == (2, 4, 6) and out.mask.shape == (2, 6)
    assert torch.all(out.words[:, :, 3:] == 0) and out.mask[:, 3:].all()
    trimmed = enc(captions[:, :3], torch.tensor([2, 3]))  # extra padding changes nothing
    torch.testing.assert_close(out.words[:, :, :3], trimmed.words, rtol=0, atol=1e-7)
    torch.testing.assert_close(out.sent, trimmed.sent, rtol=0, atol=1e-7)
    sorted_out = enc(captions.flip(0), torch.tensor([3, 2]))
    assert torch.allclose(out.sent, sorted_out.sent.flip(0), atol=1e-6)


def test_text_encoder_equals_the_packed_lstm_with_gradients():
    """The unpacked computation (no host copy of the lengths) equals torch's packed sequences, values and
    gradients, including a one-word caption and padding beyond the longest caption."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    enc = RNNTextEncoder(50, word_dim=12, hidden=16, dropout=0.0)
    captions = torch.randint(1, 50, (5, 10))
    lengths = torch.tensor([4, 9, 1, 6, 3])
    for i, n in enumerate(lengths):
        captions[i, n:] = 0
    out = enc(captions, lengths)
    grads = torch.autograd.grad(out.words.square().sum() + out.sent.sum(), list(enc.parameters()))
    emb = enc.encoder(captions)
    packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
    y, (h, _) = enc.rnn(packed)
    y, _ = pad_packed_sequence(y, batch_first=True, total_length=10)
    words, sent = y.transpose(1, 2), h.transpose(0, 1).reshape(5, 16)
    torch.testing.assert_close(out.words, words, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.sent, sent, rtol=0, atol=1e-6)
    ref_grads = torch.autograd.grad(words.square().sum() + sent.sum(), list(enc.parameters()))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_text_encoder_runs_fp32_under_cpu_bf16_autocast():
    """train.amp=bf16 on a CPU: oneDNN has no bf16 LSTM on CPUs without native bf16 (it raised "could not create a
    primitive descriptor"), so the LSTM runs in fp32 there, giving the fp32 forward's features on every CPU."""
    torch.manual_seed(0)
    enc = RNNTextEncoder(30, word_dim=10, hidden=6).eval()
    captions = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    lengths = torch.tensor([4, 2])
    expected = enc(captions, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(captions, lengths)
    assert out.words.dtype == torch.float32 and out.sent.dtype == torch.float32
    assert torch.equal(out.words, expected.words) and torch.equal(out.sent, expected.sent)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # gradients flow through the fp32 LSTM
        enc.train()(captions, lengths).sent.sum().backward()
    assert enc.rnn.weight_hh_l0.grad is not None and torch.isfinite(enc.rnn.weight_hh_l0.grad).all()


def test_encoder_keys_equal_reference():
    text = RNNTextEncoder(5450)
    assert [(k, list(v.shape)) for k, v in text.state_dict().items()] == reference_keys("text_encoder")
    with torch.device("meta"):
        image = InceptionImageEncoder(256)
    assert [(k, list(v.shape)) for k, v in image.state_dict().items()] == reference_keys("image_encoder")
    trainable = sum(p.numel() for p in image.parameters() if p.requires_grad)
    assert trainable == 721_152


def test_inception_encoder_shapes_and_trunk_loading(tmp_path):
    torch.manual_seed(0)
    enc = InceptionImageEncoder(256).eval()
    with torch.no_grad():
        regions, code = enc(torch.rand(2, 3, 256, 256) * 2 - 1)
    assert regions.shape == (2, 256, 17, 17) and code.shape == (2, 256)
    # a torchvision-style file: trunk + AuxLogits + fc, without num_batches_tracked (older files)
    state = {k: v.clone() for k, v in enc.trunk().state_dict().items() if not k.endswith("num_batches_tracked")}
    state["Mixed_7c.branch_pool.conv.weight"].fill_(0.5)
    state["AuxLogits.fc.weight"] = torch.zeros(3, 4)
    state["fc.weight"], state["fc.bias"] = torch.zeros(5, 6), torch.zeros(5)
    path = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    torch.save(state, path)
    enc.load_imagenet_trunk(path)
    assert torch.all(enc.Mixed_7c.branch_pool.conv.weight == 0.5)
    del state["Mixed_5b.branch1x1.conv.weight"]
    torch.save(state, path)
    with pytest.raises(HarnessError, match="Mixed_5b.branch1x1.conv.weight"):
        enc.load_imagenet_trunk(path)
    assert not any(p.requires_grad for name in INCEPTION_TRUNK for p in getattr(enc, name).parameters())


def test_small_cnn_shapes():
    for size, region in ((64, 8), (32, 8), (16, 4), (128, 8)):
        enc = SmallCNNImageEncoder(16, size)
        regions, code = enc(torch.randn(2, 3, size, size))
        assert regions.shape == (2, 16, region, region) and code.shape == (2, 16)
    enc = SmallCNNImageEncoder(16, 32)
    assert enc(torch.randn(2, 3, 64, 64))[0].shape == (2, 16, 8, 8)  # resized to 32 first


def test_build_damsm_choice():
    cfg = Config()
    cfg.pretrain.damsm.image_encoder = "small_cnn"
    cfg.data.base_size, cfg.data.branch_num = 32, 2
    cfg.model.embedding_dim = 16
    damsm = build_damsm(cfg, vocab_size=30)
    assert isinstance(damsm.image, SmallCNNImageEncoder) and damsm.image.image_size == stage_sizes(cfg)[-1] == 64
    assert damsm.text.encoder.weight.shape == (30, 300)
    cfg.pretrain.damsm.image_encoder = "inception_v3"
    with torch.device("meta"):
        assert isinstance(build_damsm(cfg, 30).image, InceptionImageEncoder)


def test_weights_only_refuses_code(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(nn.Linear(2, 2), path)  # a pickled module needs code to load
    with pytest.raises(HarnessError) as e:
        load_weights_file(path)
    assert "weights_only" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(HarnessError, match="does not exist"):
        load_weights_file(tmp_path / "missing.pth")


def test_strict_loading_names_key_and_shapes(tmp_path):
    enc = RNNTextEncoder(40, word_dim=6, hidden=4)
    state = enc.state_dict()
    bad = dict(state, **{"encoder.weight": torch.zeros(41, 6)})
    with pytest.raises(HarnessError, match=r"'encoder\.weight' has shape \[41, 6\].*\[40, 6\]"):
        load_state_strict(enc, bad)
    missing = {k: v for k, v in state.items() if k != "rnn.bias_hh_l0"}
    with pytest.raises(HarnessError, match=r"missing key 'rnn\.bias_hh_l0'"):
        load_state_strict(enc, missing)
    with pytest.raises(HarnessError, match=r"unexpected key 'extra'"):
        load_state_strict(enc, dict(state, extra=torch.zeros(1)))
    # a released-style file (possibly saved from DataParallel) loads
    path = tmp_path / "text_encoder200.pth"
    torch.save({"module." + k: v for k, v in state.items()}, path)
    other = RNNTextEncoder(40, word_dim=6, hidden=4)
    load_text_encoder_file(other, path)
    assert torch.equal(other.encoder.weight, enc.encoder.weight)


def test_missing_num_batches_tracked_tolerated():
    bn = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    state = {k: v for k, v in bn.state_dict().items() if "num_batches_tracked" not in k}
    load_state_strict(nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)), state)


def test_a_file_that_is_not_a_torch_file_is_named_as_such(tmp_path):
    """Junk bytes are "not a torch file", not a safety refusal (which is kept for files that pickle code)."""
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00\x01not a checkpoint at all" * 10)
    with pytest.raises(HarnessError) as e:
        load_weights_file(junk, what="classifier file")
    assert "is not a torch file" in str(e.value) and "refusing" not in str(e.value) and "\n" not in str(e.value)
    code = tmp_path / "module.pth"
    torch.save(nn.Linear(2, 2), code)
    with pytest.raises(HarnessError, match="refusing .* needs arbitrary code to load"):
        load_weights_file(code)


@pytest.mark.parametrize("data, expected", [
    (bytes(range(7, 256)) * 20, "is not a torch file (neither a torch zip archive nor a torch pickle)"),
    (b"PK\x03\x04 not really a zip", "is not a readable torch file: damaged or truncated (RuntimeError: "),
    (b"\x80\x02 then junk", "is not a readable torch file: damaged or truncated (UnpicklingError: Unsupported operand"),
])
def test_junk_is_named_damaged_without_torchs_advice_or_warnings(tmp_path, data, expected, recwarn):
    f = tmp_path / "state_epoch_1.pth"
    f.write_bytes(data)
    with pytest.raises(HarnessError) as e:
        load_weights_file(f, what="checkpoint")
    text = str(e.value)
    assert expected in text and "\n" not in text
    assert "weights_only" not in text and "refusing" not in text  # torch's advice to load unsafely is not repeated
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
