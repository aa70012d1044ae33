"""import-checkpoint with the original's discriminators: the original layouts (manifests read off the original code)
import strictly, problems are refused naming the key, the run is configured as the original evaluates, and
``harness train --resume`` continues from epoch N+1 with the saved G as live G and EMA and fresh optimisers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.runs.import_checkpoint import load_reference_discriminators, start_epoch_of
from harness.cli import main
from harness.config import build_config
from harness.util.errors import HarnessError
from harness.nn.damsm import RNNTextEncoder, SmallCNNImageEncoder
from harness.nn.spectral_norm import to_reference_layout
from harness.contract.plugins import build_plugins
from harness.core.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def _manifest(method: str) -> list[dict[str, list[int]]]:
    """plugins/<method>/reference_discriminator_keys.txt → one {key: shape} per netD file."""
    sections: list[dict[str, list[int]]] = []
    for line in (ROOT / "plugins" / method / "reference_discriminator_keys.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            sections.append({})
            continue
        key, shape = line.split(" ", 1)
        sections[-1][key] = [int(x) for x in shape.strip("[]").split(",") if x.strip()]
    return sections


def _paper_discriminators(method: str) -> torch.nn.ModuleList:
    """The paper-size discriminators of ``method`` without the (slow, orthogonal) initialisation."""
    from harness.config import stage_sizes
    from harness.nn.discriminators import build_discriminators

    info = build_plugins().method(method)
    cfg = build_config(method, info.defaults, preset="paper-cub", dataset="cub")
    return build_discriminators(cfg.model.df_dim, cfg.model.embedding_dim, stage_sizes(cfg),
                                spectral=method == "dmgan")


def _files(tmp_path: Path, method: str, *, drop_nbt: bool) -> list[Path]:
    torch.manual_seed(0)
    files = []
    for i, section in enumerate(_manifest(method)):
        state = {k: torch.randn(s) if s else torch.tensor(3) for k, s in section.items()
                 if not (drop_nbt and k.endswith("num_batches_tracked"))}
        files.append(tmp_path / f"netD{i}.pth")
        torch.save(state, files[-1])
    return files


@pytest.mark.parametrize("method", ["attngan", "dmgan"])
def test_original_layout_imports_strictly_at_paper_size(tmp_path, method):
    discs = _paper_discriminators(method)
    files = _files(tmp_path, method, drop_nbt=method == "attngan")  # PyTorch 0.3 files: no num_batches_tracked
    state = load_reference_discriminators(discs, files)
    saved = torch.load(files[2], weights_only=True)
    if method == "dmgan":
        sn = discs[2].img_code_s64_1[0].parametrizations.weight
        assert torch.equal(sn.original, saved["img_code_s64_1.0.module.weight_bar"])
        assert torch.equal(sn[0]._u, saved["img_code_s64_1.0.module.weight_u"])
        assert torch.equal(discs[2].COND_DNET.jointConv[0].bias, saved["COND_DNET.jointConv.0.module.bias"])
    else:
        assert torch.equal(discs[2].img_code_s64_1[1].weight, saved["img_code_s64_1.1.weight"])
    assert torch.equal(state["0.COND_DNET.outlogits.0.weight"], torch.load(files[0])["COND_DNET.outlogits.0.weight"])


def test_missing_extra_and_misshaped_keys_are_named(tmp_path):
    discs = _paper_discriminators("dmgan")
    files = _files(tmp_path, "dmgan", drop_nbt=False)
    good = torch.load(files[1], weights_only=True)
    cases = {"missing": (lambda s: s.pop("img_code_s32.0.module.weight_v"),
                         "img_code_s32.0.parametrizations.weight.0._v"),
             "extra": (lambda s: s.__setitem__("img_code_s99.weight", torch.zeros(1)), "img_code_s99.weight"),
             "shape": (lambda s: s.__setitem__("img_code_s32.0.module.weight_u", torch.zeros(7)),
                       "img_code_s32.0.parametrizations.weight.0._u")}
    for name, (edit, key) in cases.items():
        state = dict(good)
        edit(state)
        bad = tmp_path / f"{name}.pth"
        torch.save(state, bad)
        with pytest.raises(HarnessError, match=key.replace(".", r"\.")):
            load_reference_discriminators(discs, [files[0], bad, files[2]])
    with pytest.raises(HarnessError, match="3 stage discriminators"):
        load_reference_discriminators(discs, files[:2])


def test_start_epoch():
    assert start_epoch_of(Path("netG_epoch_600.pth"), None) == 601
    assert start_epoch_of(Path("bird_DMGAN.pth"), 12) == 12
    with pytest.raises(HarnessError, match="--start-epoch"):
        start_epoch_of(Path("bird_DMGAN.pth"), None)


def test_imported_run_resumes_from_the_next_epoch(tmp_path, results_root, capsys):
    plugins = build_plugins()
    info = plugins.method("dmgan")
    cfg = build_config("dmgan", info.defaults, preset="test", dataset="shapes")
    hooks = plugins.method_hooks("dmgan")
    torch.manual_seed(0)
    g, discs = hooks.harness_generator(cfg=cfg, aux={}), hooks.harness_discriminators(cfg=cfg)
    from harness.train.engine import _build_datasets

    train_set, _ = _build_datasets(plugins, cfg, results_root)
    vocab, per_epoch = len(train_set.vocab), len(train_set) // cfg.train.batch_size
    text = RNNTextEncoder(vocab, cfg.pretrain.damsm.word_embedding_dim, cfg.model.embedding_dim)
    image = SmallCNNImageEncoder(cfg.model.embedding_dim, 32)
    files = {"g": tmp_path / "netG_epoch_2.pth", "text": tmp_path / "text.pth", "image": tmp_path / "image.pth"}
    torch.save(g.state_dict(), files["g"])
    torch.save(text.state_dict(), files["text"])
    torch.save(image.state_dict(), files["image"])
    d_files = []
    for i, d in enumerate(discs):
        d_files.append(tmp_path / f"netD{i}.pth")
        torch.save(to_reference_layout(d.state_dict()), d_files[-1])
    argv = ["import-checkpoint", "dmgan", str(files["g"]), "--text-encoder", str(files["text"]), "--image-encoder",
            str(files["image"]), "--discriminators", ",".join(map(str, d_files)), "--dataset", "shapes",
            "--preset", "test", "--set", f"train.max_steps={3 * per_epoch + 2}"]  # two steps into epoch 3
    assert main(argv, plugins=plugins) == 0
    out, err = capsys.readouterr()
    run = RunDir(Path(out.strip().splitlines()[-1]))
    assert err.strip().splitlines() == ["import-checkpoint: configured as the original code evaluates: "
                                        "model.attention_mask=reference, eval.batch_size=10; harness train "
                                        "--resume starts at epoch 3"]
    saved_cfg = run.load_config(plugins)
    assert saved_cfg.model.attention_mask == "reference" and saved_cfg.eval.batch_size == 10

    import harness.train.engine as engine

    seen = {}
    original_load = engine.GanTrainer.load_imported

    def spy(self, state, source):
        original_load(self, state, source)
        seen["g"] = {k: v.clone() for k, v in self.generator.state_dict().items()}
        seen["ema"] = [a.clone() for a in self.ema.averages]
        seen["d"] = {k: v.clone() for k, v in self.discriminators.state_dict().items()}
        seen["opt"] = [len(o.state) for o in (self.opt_g, *self.opt_d)]

    engine.GanTrainer.load_imported = spy
    try:
        assert main(["train", "--resume", str(run.path)], plugins=plugins) == 0
    finally:
        engine.GanTrainer.load_imported = original_load
    assert all(torch.equal(seen["g"][k], v) for k, v in g.state_dict().items())  # live G = the saved G
    assert all(torch.equal(a, p) for a, p in zip(seen["ema"], g.parameters()))  # and its EMA
    assert all(torch.equal(seen["d"][k], v) for k, v in discs.state_dict().items())
    assert seen["opt"] == [0] * (1 + len(discs))  # fresh optimisers
    log = [json.loads(line) for line in run.log_path.read_text().splitlines()]
    steps = [(e["step"], e["epoch"]) for e in log if "terms" in e]
    assert steps[0] == (3 * per_epoch + 1, 3) and steps[-1][0] == 3 * per_epoch + 2
