"""`harness import-checkpoint attngan`: a run whose EMA generator is a reference-layout generator file."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from harness.cli import main
from released_attngan import VOCAB, import_argv
from harness.core.rundir import RunDir
from harness.contract.types import TextFeatures

def test_import_creates_run_with_identical_generator(released, results_root, capsys):
    plugins, cfg, g, files = released
    assert main(import_argv(files), plugins=plugins) == 0
    run = RunDir(Path(capsys.readouterr().out.strip().splitlines()[-1]))
    assert run.path.parent == results_root and (run.checkpoints / "step-0.pt").is_file()
    from harness.build import load_inference_models

    models = load_inference_models(plugins, run)
    assert models.vocab_size == VOCAB
    g.eval()
    d = cfg.model.embedding_dim
    text = TextFeatures(torch.randn(2, d, 5), torch.randn(2, d), torch.zeros(2, 5, dtype=torch.bool),
                        torch.tensor([5, 5]))
    noise = torch.randn(2, cfg.model.z_dim)
    torch.manual_seed(3)
    a = g(noise, text)
    torch.manual_seed(3)
    b = models.modules.generator(noise, text)
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))
    saved = torch.load(files["text"], weights_only=True)
    assert torch.equal(models.modules.damsm.text.encoder.weight, saved["encoder.weight"])


def test_import_refuses_code_and_mismatch_without_creating_a_run(released, results_root, tmp_path, capsys):
    plugins, cfg, g, files = released
    pickled = tmp_path / "pickled.pth"
    torch.save(nn.Linear(2, 2), pickled)
    assert main(import_argv(files, pickled), plugins=plugins) == 2
    err = capsys.readouterr().err.strip()
    assert "weights_only" in err and len(err.splitlines()) == 1
    state = torch.load(files["g"], weights_only=True)
    state["module.img_net2.img.0.weight"] = torch.zeros(3, 5, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    assert main(import_argv(files, bad), plugins=plugins) == 2
    err = capsys.readouterr().err
    assert "img_net2.img.0.weight" in err and "[3, 5, 3, 3]" in err and "[3, 4, 3, 3]" in err
    assert not [p for p in results_root.iterdir() if not p.name.startswith(".")]


def test_import_needs_encoders(released, capsys):
    plugins, cfg, g, files = released
    assert main(["import-checkpoint", "attngan", str(files["g"]), "--dataset", "shapes", "--preset", "test"],
                plugins=plugins) == 2
    assert "--text-encoder" in capsys.readouterr().err


def test_import_declares_the_original_evaluation_as_deviations(released, results_root, capsys):
    """import-checkpoint sets the original's padding mask and evaluation batch (issue 14) and declares both as
    deviations from the protocol with the reason "the original's evaluation" (issue 15): run.json, label, config."""
    import json

    from harness.config.protocol import ORIGINAL_EVALUATION

    plugins, cfg, g, files = released
    assert main(import_argv(files), plugins=plugins) == 0
    run = RunDir(Path(capsys.readouterr().out.strip().splitlines()[-1]))
    info = json.loads((run.path / "run.json").read_text())
    assert info["deviations"] == {"eval.batch_size": {"value": 100, "reason": ORIGINAL_EVALUATION},
                                  "model.attention_mask": {"value": "reference", "reason": ORIGINAL_EVALUATION}}
    # named once, as a deviation (model.attention_mask is an ablation key too)
    assert info["label"] == "attngan (deviates: eval.batch_size=100, model.attention_mask=reference)"
    saved = run.load_config(plugins)
    assert saved.model.attention_mask == "reference" and saved.eval.batch_size == 100
    assert set(saved.deviations) == {"eval.batch_size", "model.attention_mask"}

    # a value the user sets wins and is their own deviation
    assert main(import_argv(files) + ["--set", "eval.batch_size=4"], plugins=plugins) == 0
    run = RunDir(Path(capsys.readouterr().out.strip().splitlines()[-1]))
    info = json.loads((run.path / "run.json").read_text())
    assert info["deviations"]["eval.batch_size"]["value"] == 4
    assert info["deviations"]["eval.batch_size"]["reason"] != ORIGINAL_EVALUATION
