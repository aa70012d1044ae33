"""The evaluation loop end to end with a tiny fake method on real (tiny) shapes data: records, skipping,
strict failures, determinism, the probe; plus the Inception path with a randomly initialised extractor."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.contract.plugins import hookimpl
from harness.evaluation.metrics.interface import EvalOptions
from harness.util.errors import HarnessError, MissingWeightsError, UnknownNameError
from harness.evaluation.evaluate import check_metric_names, evaluate_run, generation_schedule, build_caption_bank
from harness.evaluation.metrics.interface import quantize_like_png
from fake_method import random_inception

pytestmark = pytest.mark.usefixtures("one_thread", "no_weights")


def _by_metric(records):
    return {r.metric: r.to_json() for r in records}


def test_auto_metrics_skip_missing_weights_and_record_protocol(setup):
    plugins, run, root = setup
    records = evaluate_run(plugins, run, strict=False, root=root)
    recs = _by_metric(records)
    for m in ("rp", "rp_real", "probe_acc", "probe_fid", "probe_is"):
        assert recs[m]["status"] == "ok", recs[m]
        assert np.isfinite(recs[m]["value"])
    for m in ("is", "fid", "kid", "fid_tv", "clip_rp", "clip_score"):
        assert recs[m]["status"] == "skipped"
        assert "\n" not in recs[m]["reason"] and "put " in recs[m]["reason"]
    assert "is_ft" not in recs and "rp_ext" not in recs  # need options that were not given
    rp = recs["rp"]
    assert rp["std_over"] == "folds" and rp["protocol"]["num_images"] == 40 and rp["step"] == 5
    assert recs["rp_real"]["protocol"]["num_images"] == 24  # the real test images
    assert rp["protocol"]["split"] == "test" and rp["protocol"]["seed"] == 100
    assert "torch" in rp["protocol"]["versions"] and rp["protocol"]["damsm_image_encoder"] == "small_cnn"
    # under attention_mask=reference an image depends on its batch: both are part of the protocol
    assert rp["protocol"]["attention_mask"] == "per_sample"
    assert rp["protocol"]["batch_size"] == run.load_config(plugins).eval.batch_size
    per = recs["probe_acc"]["per_attribute"]
    assert set(per) == {"colour", "shape", "size", "position", "background"}
    assert recs["probe_acc"]["value"] == pytest.approx(np.mean(list(per.values())))
    assert "shapes probe (trained here)" in recs["probe_fid"]["protocol"]["variant"]
    assert len(set(r.eval_id for r in records)) == 1
    assert run.read_records()[-len(records):] == records


class EvaluatedSpy:
    """A cross-cutting plugin that keeps what ``harness_on_evaluated`` hands it."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def harness_on_evaluated(self, run, records):
        self.calls.append((run, records))


def test_plugins_receive_the_new_records_as_the_dicts_records_jsonl_holds(setup):
    plugins, run, root = setup
    spy = EvaluatedSpy()
    plugins.pm.register(spy)
    try:
        records = evaluate_run(plugins, run, EvalOptions(metrics="rp,fid"), strict=False, root=root)
    finally:
        plugins.pm.unregister(spy)
    ((got_run, got),) = spy.calls
    lines = [json.loads(s) for s in run.records_path.read_text().splitlines()][-len(records):]
    assert got_run is run and all(type(r) is dict for r in got) and got == lines
    assert [r["metric"] for r in got] == ["rp", "fid"] and got[1]["status"] == "skipped"


def test_repeatable_and_strict(setup):
    plugins, run, root = setup
    a = _by_metric(evaluate_run(plugins, run, EvalOptions(metrics="rp,probe_acc"), strict=True, root=root))
    b = _by_metric(evaluate_run(plugins, run, EvalOptions(metrics="rp,probe_acc"), strict=True, root=root))
    assert a["rp"]["value"] == b["rp"]["value"] and a["probe_acc"]["value"] == b["probe_acc"]["value"]
    with pytest.raises(MissingWeightsError, match="weights-inception-2015-12-05-6726825d.pth"):
        evaluate_run(plugins, run, EvalOptions(metrics="fid"), strict=True, root=root)
    skipped = evaluate_run(plugins, run, EvalOptions(metrics="fid"), strict=False, root=root)
    assert skipped[0].status == "skipped" and "`harness fetch inception_tf_fid`" in skipped[0].reason
    with pytest.raises(UnknownNameError):
        check_metric_names(plugins, "rp,nope")
    with pytest.raises(HarnessError, match="rp-encoder"):
        evaluate_run(plugins, run, EvalOptions(metrics="rp_ext"), strict=True, root=root)


def test_rp_ext_with_a_damsm_directory(setup):
    plugins, run, root = setup
    from harness.core.checkpoint import read_pretrained

    damsm_dir = Path(read_pretrained(run)["stages"]["damsm"])
    recs = _by_metric(evaluate_run(plugins, run, EvalOptions(metrics="rp,rp_ext",
                                                             metric_options={"rp_encoder": str(damsm_dir)}),
                                   strict=True, root=root))
    assert recs["rp_ext"]["value"] == pytest.approx(recs["rp"]["value"])  # same encoder → same number
    assert "independent" in recs["rp_ext"]["protocol"]["variant"]


def test_schedule_and_quantisation(setup):
    plugins, run, root = setup
    cfg = run.load_config(plugins)
    ds = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    bank = build_caption_bank(ds, 25, 0)
    images, caps = generation_schedule(bank.index, 60, 0)
    assert len(images) == 60 and sorted(images[:24]) == list(range(24))  # whole passes first
    assert (bank.owner[caps] == images).all()  # each caption belongs to its image
    x = torch.tensor([-1.0, -0.99, 0.0, 0.999, 1.0])
    assert quantize_like_png(x).tolist() == [0, 1, 127, 254, 255]  # truncation, as astype(uint8)


def test_save_images(setup, tmp_path):
    plugins, run, root = setup
    evaluate_run(plugins, run, EvalOptions(metrics="probe_acc", num_images=5, save_images=str(tmp_path / "png")),
                 strict=True, root=root)
    assert len(list((tmp_path / "png").glob("*.png"))) == 5
    lines = (tmp_path / "png" / "manifest.csv").read_text().splitlines()
    assert lines[0] == "file,image_key,caption_index,caption,caption_tokens" and len(lines) == 1 + 5


@pytest.mark.slow
def test_inception_metrics_with_a_random_extractor(setup, tmp_path, monkeypatch):
    """The torch-fidelity path end to end (random weights made here, only to exercise the plumbing)."""
    path = random_inception(tmp_path, monkeypatch)
    plugins, run, root = setup
    recs = _by_metric(evaluate_run(plugins, run, EvalOptions(metrics="is,fid,kid", num_images=12),
                                   strict=True, root=root))
    assert recs["is"]["value"] >= 1.0 and recs["is"]["std_over"] == "splits"
    assert recs["fid"]["value"] > 0 and recs["kid"]["kid_subset_size"] == 10
    sha = __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert recs["fid"]["protocol"]["weights"] == {path.name: sha}
    assert list((root / ".cache" / "real-features").glob("*/features.npz"))  # real features cached


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.script's deprecation notice (the test's classifier)
def test_fid_tv_with_published_statistics_and_is_ft(setup, tmp_path, monkeypatch):
    """fid_tv against a pytorch-fid .npz, and is_ft with a TorchScript classifier (random weights made here)."""
    from torchvision.models import inception_v3

    import harness.evaluation.metrics.inception as inc
    from harness.evaluation.metrics.frechet import GaussianStats

    plugins, run, root = setup
    tv = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), tv)
    monkeypatch.setattr(inc, "find_weight", lambda plugins, name: tv)
    stats = tmp_path / "bird_val.npz"
    GaussianStats(np.zeros(2048), np.eye(2048), 10).save(stats)
    recs = _by_metric(evaluate_run(plugins, run, EvalOptions(metrics="fid_tv", num_images=4,
                                                             metric_options={"fid_stats": str(stats)}),
                                   strict=True, root=root))
    assert np.isfinite(recs["fid_tv"]["value"]) and "bird_val.npz" in recs["fid_tv"]["protocol"]["variant"]

    classifier = torch.jit.script(nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 7)))
    clf = tmp_path / "clf.pt"
    classifier.save(str(clf))
    recs = _by_metric(evaluate_run(plugins, run, EvalOptions(metrics="is_ft",
                                                             metric_options={"is_classifier": str(clf), "is_classes": 6,
                                                                             "is_temperature": 0.5}),
                                   strict=True, root=root))
    assert 1.0 <= recs["is_ft"]["value"] <= 6.0  # background logit dropped: at most 6 classes
    assert "IS*" in recs["is_ft"]["protocol"]["variant"] and "clf.pt" in recs["is_ft"]["protocol"]["weights"]
    with pytest.raises(HarnessError, match="is-classes"):
        evaluate_run(plugins, run, EvalOptions(metrics="is_ft", metric_options={"is_classifier": str(clf)}),
                     strict=True, root=root)


def test_rp_ext_with_a_run_id(setup, tmp_path, monkeypatch):
    """`--rp-encoder RUN` takes a run id under the results root, as a RUN argument does (README)."""
    plugins, run, root = setup
    monkeypatch.chdir(tmp_path)  # the id is no path from here
    recs = _by_metric(evaluate_run(plugins, run, EvalOptions(metrics="rp,rp_ext",
                                                             metric_options={"rp_encoder": run.id}),
                                   strict=True, root=root))
    assert recs["rp_ext"]["value"] == pytest.approx(recs["rp"]["value"])  # the run's own DAMSM → the same number


def test_eval_truncation_truncates_the_evaluations_noise_and_is_recorded(setup, monkeypatch):
    """harness evaluate under eval.truncation t feeds t·F⁻¹(Φ(z)) of the draws it feeds without (F: the normal
    truncated to [−2, 2], from scipy here), and the records' protocol values carry t."""
    import harness.build
    from scipy import stats

    plugins, run, root = setup
    load = harness.build.load_inference_models
    seen: dict[float, list] = {}
    truncation = [0.0]

    def load_with_truncation(*args, **kwargs):
        models = load(*args, **kwargs)
        models.cfg.eval.truncation = truncation[0]
        calls = seen.setdefault(truncation[0], [])
        models.modules.generator.register_forward_pre_hook(lambda m, a: calls.append(a[0].clone()))
        return models

    monkeypatch.setattr(harness.build, "load_inference_models", load_with_truncation)
    records = {}
    for t in (0.0, 0.7):
        truncation[0] = t
        records[t] = evaluate_run(plugins, run, EvalOptions(metrics="rp"), strict=True, root=root)[0]
    plain, cut = torch.cat(seen[0.0]), torch.cat(seen[0.7])
    expected = 0.7 * stats.truncnorm.ppf(stats.norm.cdf(plain.double().numpy()), -2, 2)
    np.testing.assert_allclose(cut.numpy(), expected, rtol=0, atol=1e-6)
    # at 0 the key is left out of the protocol values (it joined the protocol later; earlier runs had 0)
    assert "eval.truncation" not in records[0.0].protocol["values"]
    assert records[0.7].protocol["values"]["eval.truncation"] == 0.7
