"""openai-clip without pkg_resources, loading from a local file, clip_rp / clip_score through the loop
(a tiny randomly initialised CLIP made here)."""
import pytest
import torch


pytestmark = pytest.mark.usefixtures("one_thread")



def test_import_clip_works_without_pkg_resources():
    from harness.evaluation.metrics.clip_score import import_clip

    clip = import_clip()
    assert clip.tokenize(["a red circle"]).shape == (1, 77)


def _tiny_clip_file(path):
    from harness.evaluation.metrics.clip_score import import_clip

    clip = import_clip()
    model = clip.model.CLIP(embed_dim=16, image_resolution=32, vision_layers=1, vision_width=64,
                            vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=64,
                            transformer_heads=1, transformer_layers=1)
    torch.save(model.state_dict(), path)
    return path


def test_clip_metrics_through_the_loop(setup, tmp_path, monkeypatch):  # noqa: F811
    import harness.evaluation.metrics.clip_score as cs
    from harness.evaluation.evaluate import evaluate_run
    from harness.evaluation.metrics.interface import EvalOptions

    plugins, run, root = setup
    path = _tiny_clip_file(tmp_path / "tiny-clip.pt")
    monkeypatch.setattr(cs, "find_weight", lambda plugins, name: path)
    recs = {r.metric: r.to_json() for r in evaluate_run(plugins, run, EvalOptions(metrics="clip_rp,clip_score"),
                                                 strict=True, root=root)}
    assert 0 <= recs["clip_rp"]["value"] <= 100 and recs["clip_rp"]["std_over"] == "folds"
    assert 0 <= recs["clip_score"]["value"] <= 100
    assert path.name in recs["clip_score"]["protocol"]["weights"]
    # --clip-model FILE: a user-given model, labelled unverified
    recs = {r.metric: r.to_json() for r in evaluate_run(plugins, run, EvalOptions(metrics="clip_score",
                                                                           metric_options={"clip_model": str(path)}),
                                                 strict=True, root=root)}
    assert "unverified" in recs["clip_score"]["protocol"]["variant"]
