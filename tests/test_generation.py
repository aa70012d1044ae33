"""One caption → image convention: `harness sample`'s sheet and the report's attention sheet draw what
`harness.generate` draws (per item: noise, conditioning augmentation's ε, caption subsample), for every built-in
method; a sheet's row does not depend on the other rows; generation runs in batches of eval.batch_size."""
import numpy as np
import pytest
import torch

import harness
from harness.build import build_method, prepare_config
from harness.contract.plugins import build_plugins
from harness.core.checkpoint import save_checkpoint, write_pretrained
from harness.core.rundir import RunDir
from harness.data.vocab import VOCAB_FILE, save_vocabulary
from harness.evaluation.generation import generate_images

METHODS = ["attngan", "dmgan", "ecagan", "caegan"]
CAPTIONS = ["a red circle", "a small green square on a white background", "a blue triangle"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small CPU networks on one intra-op thread (conftest ``one_thread``)."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run directory per built-in method (shapes/test sizes, fresh weights): config, DAMSM stage, checkpoint with
    the EMA generator and every auxiliary module's state, vocabulary."""
    plugins = build_plugins()
    root = tmp_path_factory.mktemp("generation") / "results"
    out = {}
    for method in METHODS:
        # ECAGAN's perceptual network is used by its loss only: left out, the checkpoint stays small
        extra = ["loss.perceptual.weight=0"] if method == "ecagan" else []
        # the sheet generates on train.device: the CPU, as harness.load_run(device="cpu") below
        cfg = prepare_config(plugins, method, dataset="shapes", data_dir=None, preset="test", seed=0,
                             overrides=["train.device=cpu", *extra])
        vocab = plugins.dataset("shapes").build(cfg.data, "train", train=False, seed=0, cache_root=root).vocab
        torch.manual_seed(0)
        modules = build_method(plugins, cfg, len(vocab))
        run = RunDir.create(root, name=f"{method}-s0")
        run.save_config(cfg)
        damsm_dir = root / f"damsm-{method}"
        damsm_dir.mkdir()
        torch.save(modules.damsm.text.state_dict(), damsm_dir / "text_encoder.pth")
        torch.save(modules.damsm.image.state_dict(), damsm_dir / "image_encoder.pth")
        write_pretrained(run, {"damsm": damsm_dir}, len(vocab))
        save_checkpoint(run, {"generator_ema": modules.generator.state_dict(), "vocab_size": len(vocab), "step": 1,
                              "aux": {k: m.state_dict() for k, m in modules.aux.items()}}, 1)
        save_vocabulary(vocab, run.path / VOCAB_FILE)
        out[method] = run
    return plugins, out


def _sheet_rows(monkeypatch, plugins, runs, captions, seed, tmp_path):
    """The image rows `harness sample` puts on its sheet, at the generator's resolution."""
    import harness.core.sheets as sheets
    from harness.runs.sample import sample_sheet

    seen = {}

    def capture(rows, *args, **kwargs):
        seen["rows"] = rows
        return tmp_path / "sheet.png"

    monkeypatch.setattr(sheets, "save_sheet", capture)
    sample_sheet(plugins, runs, captions, seed=seed, out=tmp_path / "sheet.png", checkpoint=None)
    size = harness.load_run(runs[0].path, device="cpu").cfg.data.base_size * 2 ** 1  # shapes/test: 2 stages
    rows = []
    for row in seen["rows"]:
        factor = row[0].shape[-1] // size  # enlarged by an integer factor, nearest: every factor-th pixel
        rows.append(torch.stack([t[:, ::factor, ::factor] for t in row]))
    return rows


def _long_caption():
    return " ".join(["a red circle on a blue background"] * 5)  # 35 words: subsampled to eval.words_num


@pytest.mark.parametrize("method", METHODS)
def test_a_sheet_row_is_what_generate_draws(runs, method, monkeypatch, tmp_path):
    plugins, by_method = runs
    run = by_method[method]
    captions = CAPTIONS + [_long_caption()]
    loaded = harness.load_run(run.path, device="cpu")
    assert len(loaded.vocab.tokens_of(captions[-1])) > loaded.cfg.eval.words_num
    (row,) = _sheet_rows(monkeypatch, plugins, [run], captions, 5, tmp_path)
    expected = torch.cat([harness.generate(loaded, [caption], seed=5) for caption in captions])
    assert row.shape == expected.shape
    torch.testing.assert_close(row.clamp(-1, 1), expected, atol=1e-5, rtol=0)  # each image: generate(run, [X], 5)
    # drawn twice: the same; with another run's row above it: the same (no draw leaks from row to row)
    other = by_method[METHODS[(METHODS.index(method) + 1) % len(METHODS)]]
    assert torch.equal(_sheet_rows(monkeypatch, plugins, [run], captions, 5, tmp_path)[0], row)
    torch.manual_seed(123)  # the global generators play no part
    torch.testing.assert_close(_sheet_rows(monkeypatch, plugins, [other, run], captions, 5, tmp_path)[1], row,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["attngan", "dmgan"])
def test_the_report_attention_sheet_shows_what_generate_draws(runs, method, monkeypatch):
    import harness.train.samples as samples
    from harness.reporting.report import final_attention_sheet

    plugins, by_method = runs
    loaded = harness.load_run(by_method[method].path, device="cpu")
    seen = {}

    def capture(images, captions, words, attn, path):
        seen.update(images=images, captions=captions, words=words, attn=attn)
        raise RuntimeError("captured")

    monkeypatch.setattr(samples, "write_training_sheets", capture)
    with pytest.raises(RuntimeError, match="captured"):
        final_attention_sheet(plugins, by_method[method], CAPTIONS, loaded.vocab, seed=2, count=2)
    assert seen["captions"] == CAPTIONS[:2]
    expected = torch.cat([harness.generate(loaded, [caption], seed=2) for caption in CAPTIONS[:2]])
    torch.testing.assert_close(seen["images"][-1].clamp(-1, 1), expected, atol=1e-5, rtol=0)
    assert seen["words"] == [c.split() for c in CAPTIONS[:2]]
    assert seen["attn"][-1].shape[:2] == (2, len(CAPTIONS[1].split()))


def test_generation_runs_in_batches_of_eval_batch_size(runs):
    plugins, by_method = runs
    loaded = harness.load_run(by_method["dmgan"].path, device="cpu")
    captions = CAPTIONS + [_long_caption(), "a yellow plus sign", "a big circle"]
    sizes = []
    hook = loaded.generator.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    try:
        loaded.cfg.eval.batch_size = len(captions)
        whole = harness.generate(loaded, captions, seed=7)
        assert sizes == [len(captions)]
        sizes.clear()
        loaded.cfg.eval.batch_size = 4
        batched = harness.generate(loaded, captions, seed=7)
    finally:
        hook.remove()
    assert sizes == [4, 2]
    torch.testing.assert_close(batched, whole, atol=1e-5, rtol=0)


def test_a_long_caption_is_subsampled_from_its_own_draws(runs):
    """The subsample of a caption longer than eval.words_num depends on (seed, its index) only, not on whether
    an earlier caption of the call was subsampled too."""
    plugins, by_method = runs
    loaded = harness.load_run(by_method["attngan"].path, device="cpu")
    long = [loaded.vocab.encode(_long_caption())]
    short = [loaded.vocab.encode("a red circle")]
    a = generate_images(loaded, long + long, seed=1)
    b = generate_images(loaded, short + long, seed=1)
    assert a.tokens[1] == b.tokens[1] and len(a.tokens[1]) == loaded.cfg.eval.words_num
    assert a.tokens[0] != a.tokens[1]  # each item its own subsample
    torch.testing.assert_close(a.images[1], b.images[1], atol=1e-5, rtol=0)


def test_eval_truncation_maps_each_items_noise_to_the_truncated_normal(runs):
    """With eval.truncation t the generator gets t·F⁻¹(Φ(z)) of the very draws it gets without (F: the normal
    truncated to [−2, 2], from scipy here)."""
    from scipy import stats

    plugins, by_method = runs
    loaded = harness.load_run(by_method["dmgan"].path, device="cpu")
    seen = []
    hook = loaded.generator.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    try:
        harness.generate(loaded, CAPTIONS, seed=3)
        loaded.cfg.eval.truncation = 0.88
        harness.generate(loaded, CAPTIONS, seed=3)
    finally:
        hook.remove()
    plain, cut = seen
    expected = 0.88 * stats.truncnorm.ppf(stats.norm.cdf(plain.double().numpy()), -2, 2)
    np.testing.assert_allclose(cut.numpy(), expected, rtol=0, atol=1e-6)
