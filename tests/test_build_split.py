"""One data split builder (harness.build.build_split): the run's seed everywhere, and `harness.load_run` of a run
made before vocab.json reads its data set's vocabulary through the results root's cache, as training built it."""
import shutil

import pytest
import torch

import harness
from harness.build import build_method, build_split, prepare_config
from harness.contract.plugins import build_plugins
from harness.core.checkpoint import save_checkpoint, write_pretrained
from harness.core.rundir import RunDir


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small CPU networks on one intra-op thread (conftest ``one_thread``)."""


def test_a_split_draws_its_items_with_the_run_seed():
    plugins = build_plugins()
    cfg = prepare_config(plugins, "attngan", dataset="shapes", data_dir=None, preset="test", seed=3, overrides=[])
    info = plugins.dataset("shapes")
    got = build_split(plugins, cfg, "train", train=True, cache_root=None)
    same = info.build(cfg.data, "train", train=True, seed=3)
    other = info.build(cfg.data, "train", train=True, seed=0)
    items = range(8)
    assert [got[i]["caption"].tolist() for i in items] == [same[i]["caption"].tolist() for i in items]
    assert [got[i]["caption"].tolist() for i in items] != [other[i]["caption"].tolist() for i in items]


def test_a_run_without_vocab_json_reads_the_vocabulary_from_the_cache(shapes_cub_dir, tmp_path, monkeypatch):
    """The data set has only text/ (no captions.pickle): training built its vocabulary into the results root's
    cache; loading the run later reads that entry instead of reading every caption file again."""
    import harness.data.attngan_layout as layout

    data = tmp_path / "cub"
    shutil.copytree(shapes_cub_dir, data)
    (data / "captions.pickle").unlink()
    root = tmp_path / "results"
    plugins = build_plugins()
    cfg = prepare_config(plugins, "attngan", dataset="cub", data_dir=str(data), preset="test", seed=0, overrides=[])
    vocab = build_split(plugins, cfg, "train", train=True, cache_root=root).vocab  # as training builds it
    assert list((root / ".cache" / "data-captions").iterdir())
    modules = build_method(plugins, cfg, len(vocab))
    run = RunDir.create(root, name="attngan-old")
    run.save_config(cfg)
    damsm = tmp_path / "damsm"
    damsm.mkdir()
    torch.save(modules.damsm.text.state_dict(), damsm / "text_encoder.pth")
    torch.save(modules.damsm.image.state_dict(), damsm / "image_encoder.pth")
    write_pretrained(run, {"damsm": damsm}, len(vocab))
    save_checkpoint(run, {"generator_ema": modules.generator.state_dict(), "vocab_size": len(vocab)}, 1)
    assert not (run.path / "vocab.json").exists()

    def no_text(*args, **kwargs):
        raise AssertionError("text/ was read again")

    monkeypatch.setattr(layout, "read_text_captions", no_text)
    loaded = harness.load_run(run.path.name, device="cpu", results_dir=root)
    assert loaded.vocab.ixtoword == vocab.ixtoword
