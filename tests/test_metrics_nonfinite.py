"""Non-finite images, features and embeddings (issue 13, item 1): every metric raises in one line naming the
caption (split, image key, caption index, words); a NaN is never black pixels, never an R-precision hit, never
part of a statistic."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from harness.util.errors import HarnessError
from harness.evaluation.evaluate import evaluate_run, make_context
from harness.evaluation.metrics.clip_score import ClipEncoders
from harness.evaluation.metrics.features import FeatureStream
from harness.evaluation.metrics.frechet import gaussian_stats, inception_score, kernel_distance
from harness.evaluation.metrics.interface import EvalOptions, GeneratedBatch, NonFiniteError, quantize_like_png
from harness.evaluation.metrics.r_precision import RPrecision, retrieval_hits


pytestmark = pytest.mark.usefixtures("one_thread", "no_weights")


# ---- the pure functions ---------------------------------------------------------------------------------------
def test_nan_is_never_a_retrieval_hit():
    codes = torch.tensor([[1.0, 0.0], [float("nan"), 0.0]])
    true = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    mism = torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]]])
    assert retrieval_hits(codes[:1], true[:1], mism[:1]).tolist() == [True]
    with pytest.raises(ValueError, match=r"non-finite similarities in rows \[1\]"):
        retrieval_hits(codes, true, mism)


def test_nan_image_is_never_black_pixels():
    images = torch.zeros(3, 3, 4, 4)
    images[1, 0, 2, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="image 1 of the batch"):
        quantize_like_png(images)
    images[1, 0, 2, 2] = float("inf")
    with pytest.raises(NonFiniteError):
        quantize_like_png(images)


@pytest.mark.parametrize("compute", [
    lambda x: gaussian_stats(x),
    lambda x: inception_score(x, splits=2),
    lambda x: kernel_distance(x, x[::-1].copy(), subsets=2, subset_size=4),
    lambda x: kernel_distance(np.ones_like(x), x, subsets=2, subset_size=4),
])
def test_statistics_refuse_non_finite_features(compute):
    x = np.random.default_rng(0).normal(size=(6, 3))
    compute(x)  # finite: fine
    x[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) hold NaN or inf \(first: row 4\)"):
        compute(x)


# ---- the streaming metrics, on a real caption bank -----------------------------------------------------------
@pytest.fixture
def ctx(setup, tmp_path):
    plugins, run, root = setup
    cfg = run.load_config(plugins)
    ds = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    return make_context(plugins, SimpleNamespace(cfg=cfg), ds, EvalOptions(split="test", num_images=8), device="cpu",
                        root=tmp_path)


def _batch(ctx, caption_ids: list[int]) -> GeneratedBatch:
    ids = np.asarray(caption_ids)
    owners = ctx.bank.owner[ids]
    caps, lengths = ctx.bank.batch(ids)
    images = torch.zeros(len(ids), 3, 32, 32)
    return GeneratedBatch(images, quantize_like_png(images), caps, lengths, ids, owners,
                          ctx.bank.index.class_ids[owners], index=0)


def _named(ctx, caption_id: int) -> str:
    image = int(ctx.bank.owner[caption_id])
    j = caption_id - int(ctx.bank.index.offsets[image])
    words = ctx.dataset.vocab.decode(ctx.bank.raw[caption_id])
    return f"test image '{ctx.dataset.keys[image]}' caption {j} ('{words}')"


def _nan_rows(rows: list[int], n: int, d: int) -> torch.Tensor:
    out = torch.ones(n, d)
    out[rows] = float("nan")
    return out


def test_feature_stream_names_the_caption(ctx):
    batch = _batch(ctx, [3, 25, 41])
    stream = FeatureStream(ctx, "probe", lambda x: {"f": _nan_rows([1], len(x), 4)}, ["f"], {})
    with pytest.raises(NonFiniteError) as e:
        stream.process(batch)
    assert "probe feature 'f'" in str(e.value) and _named(ctx, 25) in str(e.value)


def test_feature_stream_names_the_real_image(ctx):
    from harness.evaluation.metrics.interface import real_to_uint8

    seen = []

    def extract(x):
        seen.append(x[2].clone())
        return {"f": _nan_rows([2], len(x), 4)}

    stream = FeatureStream(ctx, "probe", extract, ["f"], {})
    with pytest.raises(NonFiniteError, match="real test image") as e:
        stream.real("f")
    [index] = [i for i in range(len(ctx.dataset))
               if torch.equal(real_to_uint8(ctx.dataset[i]["images"][-1]), seen[0])]
    assert f"real test image '{ctx.dataset.keys[index]}'" in str(e.value)


def test_r_precision_names_the_caption_of_a_nan_code(ctx):
    sent = torch.randn(len(ctx.bank.lengths), 4)
    rp = RPrecision(ctx, "rp", lambda x: _nan_rows([2], len(x), 4), sent, variant="test")
    with pytest.raises(NonFiniteError, match="rp image code") as e:
        rp.update(_batch(ctx, [3, 25, 41]))
    assert _named(ctx, 41) in str(e.value)
    real = RPrecision(ctx, "rp_real", lambda x: _nan_rows([0], len(x), 4), sent, variant="test", real=True)
    first = next(iter(ctx.real_batches())).keys[0]  # row 0 of the first real batch (sorted by caption length)
    with pytest.raises(NonFiniteError, match=f"real test image '{first}'"):
        real.finish()


def test_clip_image_embedding_names_the_caption(ctx):
    model = SimpleNamespace(visual=SimpleNamespace(input_resolution=8),
                            encode_image=lambda x: _nan_rows([0], len(x), 4))
    enc = ClipEncoders(model, torch.device("cpu"), "clip", {})
    with pytest.raises(NonFiniteError, match="CLIP image embedding") as e:
        enc.batch_images(_batch(ctx, [7, 8]), ctx.describe_caption)
    assert _named(ctx, 7) in str(e.value)


# ---- end to end: a generator that gives NaN for one caption ------------------------------------------------
class PoisonedText(nn.Module):
    """The run's text encoder, with NaN sentence features for captions starting with ``first_token``."""

    def __init__(self, inner: nn.Module, first_token: int):
        super().__init__()
        self.inner, self.first_token = inner, first_token

    def forward(self, captions, lengths):
        out = self.inner(captions, lengths)
        out.sent[captions[:, 0] == self.first_token] = float("nan")
        return out


def test_evaluation_refuses_a_nan_image_naming_its_caption(setup, tmp_path, monkeypatch):
    import harness.build as ckpt

    plugins, run, root = setup
    load = ckpt.load_inference_models
    token = {}

    def poisoned(*a, **k):
        models = load(*a, **k)
        models.modules.text_encoder = PoisonedText(models.modules.text_encoder, token["id"])
        return models

    cfg = run.load_config(plugins)
    ds = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    token["id"] = ds.captions(0)[0][0]
    monkeypatch.setattr(ckpt, "load_inference_models", poisoned)
    before = run.read_records()
    with pytest.raises(HarnessError, match=r"non-finite \(NaN or inf\) generated image for test image '") as e:
        evaluate_run(plugins, run, EvalOptions(metrics="rp,probe_acc", num_images=24,
                                               save_images=str(tmp_path / "png")),
                     strict=True, root=root)
    assert "\n" not in str(e.value) and "caption" in str(e.value)
    assert run.read_records() == before  # nothing recorded
    from PIL import Image

    for png in (tmp_path / "png").glob("*.png"):  # batches before the NaN one: real images, no black one
        assert np.asarray(Image.open(png)).max() > 0


def test_sample_sheet_refuses_a_nan_image_naming_its_caption(setup, tmp_path, monkeypatch):
    import harness.build as ckpt
    from harness.runs.sample import sample_sheet

    plugins, run, root = setup
    cfg = run.load_config(plugins)
    ds = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    good = ds.caption_text(1, 0)
    # a caption short enough not to be subsampled to eval.words_num (its first token then always reaches the
    # encoder), starting with another word than the good one
    i, j = next((i, j) for i in range(len(ds)) for j, c in enumerate(ds.captions(i))
                if len(c) <= cfg.eval.words_num and c[0] != ds.captions(1)[0][0])
    bad, first = ds.caption_text(i, j), ds.captions(i)[j][0]
    load = ckpt.load_inference_models

    def poisoned(*a, **k):
        models = load(*a, **k)
        models.modules.text_encoder = PoisonedText(models.modules.text_encoder, first)
        return models

    monkeypatch.setattr(ckpt, "load_inference_models", poisoned)
    with pytest.raises(NonFiniteError, match=f"generated image of run fakegan-s0 for caption '{bad}'"):
        sample_sheet(plugins, [run], [good, bad], seed=0, out=tmp_path / "sheet.png", checkpoint=None)
    assert not (tmp_path / "sheet.png").exists()
