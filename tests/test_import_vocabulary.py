"""A released text encoder whose vocabulary is not the data set's (issue 13, item 2): `import-checkpoint` refuses
it in one line naming both sizes and the matching captions.pickle, leaving no run; `evaluate` refuses a run whose
encoder and data disagree instead of crashing or scoring ids that mean other words."""
from __future__ import annotations

import pytest
import torch

from harness.evaluation.metrics.interface import EvalOptions
from harness.cli import main
from harness.util.errors import HarnessError
from harness.evaluation.evaluate import evaluate_run
from harness.nn.damsm import RNNTextEncoder
from harness.core.rundir import RunDir
from harness.core.checkpoint import save_checkpoint, write_pretrained
from released_attngan import import_argv
from fake_method import ColourGenerator


pytestmark = pytest.mark.usefixtures("one_thread", "no_weights")


@pytest.mark.parametrize("words", [50, 5450])
@pytest.mark.parametrize("layout", ["shapes", "cub"])
def test_import_refuses_an_encoder_of_another_vocabulary(released, results_root, shapes_cub_dir, capsys, words,
                                                         layout):
    plugins, cfg, g, files = released
    text = RNNTextEncoder(words, cfg.pretrain.damsm.word_embedding_dim, cfg.model.embedding_dim)
    torch.save(text.state_dict(), files["text"])
    argv = import_argv(files)
    if layout == "cub":
        argv[argv.index("shapes")] = "cub"
        argv += ["--data-dir", str(shapes_cub_dir)]
    assert main(argv, plugins=plugins) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"has a {words}-word vocabulary but the {layout} data has 70 words" in err
    assert "captions.pickle" in err and "birds.zip" in err
    if layout == "cub":
        assert f"(from {shapes_cub_dir / 'captions.pickle'})" in err
    assert not [p for p in results_root.iterdir() if not p.name.startswith(".")]  # no run directory
    assert not (results_root / ".cache" / "damsm").exists()  # nor a DAMSM cache entry


def test_evaluate_refuses_a_run_whose_encoder_is_not_the_data_sets(setup, tmp_path):
    from harness.nn.damsm import build_damsm

    plugins, run, root = setup
    cfg = run.load_config(plugins)
    bad = RunDir.create(tmp_path / "r", name="mismatch")
    bad.save_config(cfg)
    damsm = build_damsm(cfg, 50)  # a 50-word encoder, as an import before this check could leave
    (tmp_path / "damsm").mkdir()
    torch.save(damsm.text.state_dict(), tmp_path / "damsm" / "text_encoder.pth")
    torch.save(damsm.image.state_dict(), tmp_path / "damsm" / "image_encoder.pth")
    write_pretrained(bad, {"damsm": tmp_path / "damsm"}, 50)
    save_checkpoint(bad, {"generator_ema": ColourGenerator(cfg).state_dict(), "vocab_size": 50}, 1)
    with pytest.raises(HarnessError, match="run mismatch's text encoder has a 50-word vocabulary but the shapes "
                                           "data has 70 words"):
        evaluate_run(plugins, bad, EvalOptions(metrics="probe_acc", num_images=8), strict=True, root=root)
    assert bad.read_records() == []
    from harness.runs.sample import sample_sheet

    ds = plugins.dataset("shapes").build(cfg.data, "test", train=False, seed=0, cache_root=root)
    with pytest.raises(HarnessError, match="run mismatch's text encoder has a 50-word vocabulary"):
        sample_sheet(plugins, [bad], [ds.caption_text(0, 0)], seed=0, out=tmp_path / "s.png", checkpoint=None)
