"""harness.load_run / harness.generate (issue 16 item 6) on a run made by `harness train` (attngan, shapes/test)."""
import re
import shutil
import subprocess
from pathlib import Path
import sys

import pytest
import torch

import harness
from harness.util.errors import HarnessError


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small CPU networks on one intra-op thread (conftest ``one_thread``)."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from harness.cli import main

    root = tmp_path_factory.mktemp("api") / "results"
    assert main(["train", "--plugins", "attngan", "--dataset", "shapes", "--preset", "test",
                 "--results-dir", str(root)]) == 0
    (run,) = [p for p in root.iterdir() if p.name.startswith("attngan-")]
    return run


def test_generate_shapes_range_and_reproducibility(trained):
    run = harness.load_run(trained, device="cpu")
    caps = ["a red circle on a blue background", "a small green square", "a yellow plus sign"]
    a = harness.generate(run, caps, seed=3)
    assert a.shape == (3, 3, 32, 32) and a.dtype == torch.float32
    assert a.min() >= -1.0 and a.max() <= 1.0
    assert torch.equal(a, harness.generate(run, caps, seed=3))  # same seed, same images
    assert not torch.allclose(a, harness.generate(run, caps, seed=4))
    # an image does not depend on the other captions of the call (per-item noise and draws)
    torch.testing.assert_close(harness.generate(run, caps[:1], seed=3)[0], a[0], atol=1e-5, rtol=0)
    assert harness.generate(run, caps, seed=3, stage=0).shape[-1] == 32 // 2 ** (run.cfg.data.branch_num - 1)


def test_unknown_words_are_named(trained):
    run = harness.load_run(trained, device="cpu")
    with pytest.raises(HarnessError, match=r"zorb \(caption 0\), quux \(caption 1\)"):
        harness.generate(run, ["a red zorb", "quux circle"])
    with pytest.raises(HarnessError, match=r": zorb \(caption 0\), réd \(read as 'rd': non-ASCII letters dropped\) "
                                           r"\(caption 1\)$"):
        harness.generate(run, ["a zorb circle", "a réd circle"])
    with pytest.raises(HarnessError, match="stage 7"):
        harness.generate(run, ["a red circle"], stage=7)


def test_a_copied_run_generates_without_the_data_set(trained, tmp_path, monkeypatch):
    from harness.data.vocab import load_vocabulary

    copy = tmp_path / "elsewhere" / trained.name
    shutil.copytree(trained, copy)
    assert load_vocabulary(copy / "vocab.json").ixtoword[0] == "<end>"
    expected = harness.generate(harness.load_run(trained, device="cpu"), ["a blue triangle"], seed=1)

    import harness.data.shapes as shapes

    def no_data(*a, **k):
        raise AssertionError("the data set was built")

    monkeypatch.setattr(shapes, "build_shapes", no_data)
    monkeypatch.setattr(shapes.ShapesDataset, "__init__", no_data)
    cache = trained.parent / ".cache"  # nor the pretraining cache: the run keeps its DAMSM in <run>/pretrained/
    assert (cache / "damsm").is_dir()
    cache.rename(trained.parent / ".cache-away")
    try:
        got = harness.generate(harness.load_run(copy, device="cpu"), ["a blue triangle"], seed=1)
    finally:
        (trained.parent / ".cache-away").rename(cache)
    assert torch.equal(got, expected)


def test_not_a_run_and_lazy_import(tmp_path):
    with pytest.raises(HarnessError, match="not a run directory"):
        harness.load_run(tmp_path)
    code = "import sys, harness; assert 'harness.api' not in sys.modules; harness.generate; " \
           "assert 'harness.api' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_under_the_reference_mask_an_image_depends_on_its_batch(trained):
    """Under model.attention_mask=reference (imported released weights) the original's padding-mask pattern gives
    an image's pixels the masks of other captions of the call; under per_sample (the default) it does not."""
    from harness.nn.word_attention import set_attention_mask

    run = harness.load_run(trained, device="cpu")
    caps = ["a red circle", "a small green square on a white background at the top left"]  # unequal lengths
    alone = harness.generate(run, caps[:1], seed=3)[0]
    torch.testing.assert_close(harness.generate(run, caps, seed=3)[0], alone, atol=1e-5, rtol=0)
    set_attention_mask(run.generator, "reference")
    assert torch.equal(harness.generate(run, caps[:1], seed=3)[0], alone)  # one caption: no other mask to take
    assert (harness.generate(run, caps, seed=3)[0] - alone).abs().max() > 1e-3


def test_a_run_id_resolves_under_the_results_root(trained, monkeypatch):
    """``load_run`` takes what the CLI's RUN arguments take: a path, or a run id under --results-dir /
    $HARNESS_RESULTS."""
    by_id = harness.load_run(trained.name, device="cpu", results_dir=trained.parent)
    assert by_id.path == trained
    monkeypatch.setenv("HARNESS_RESULTS", str(trained.parent))
    assert harness.load_run(trained.name, device="cpu").path == trained
    with pytest.raises(HarnessError, match=r"no run 'attngan-shapes-s0-nosuch': not a run directory, and no run "
                                           r"with that id under"):
        harness.load_run("attngan-shapes-s0-nosuch", device="cpu")
    with pytest.raises(HarnessError, match="and no results root .* to look it up as a run id in"):
        harness.load_run("attngan-shapes-s0-nosuch", device="cpu", results_dir=trained.parent / "nowhere")


@pytest.mark.parametrize("call, message", [
    (lambda run: harness.generate(run, ["a red circle"], stage=1.5), r"^stage 1\.5: the generator has 2 stages"),
    (lambda run: harness.generate(run, ["a red circle"], stage=-3), r"^stage -3: .* \(or -2 … -1"),
    (lambda run: harness.generate(run, ["a red circle"], seed=-1), r"^seed=-1: the seed is a non-negative integer"),
    (lambda run: harness.generate(run, ["a red circle"], seed=None), r"^seed=None"),
    (lambda run: harness.generate(run, [3]), r"^captions must be strings; got int 3"),
    (lambda run: harness.generate(run, [""]), r"has no words"),
])
def test_bad_arguments_are_one_line(trained, call, message):
    run = harness.load_run(trained, device="cpu")
    with pytest.raises(HarnessError, match=message) as e:
        call(run)
    assert "\n" not in str(e.value)


def test_bad_load_run_arguments_are_one_line(trained, tmp_path):
    with pytest.raises(HarnessError, match="needs a run directory's path or a run id, got NoneType"):
        harness.load_run(None)
    with pytest.raises(HarnessError, match=r"device='gpu' is not a device; use auto, cpu, cuda or cuda:N"):
        harness.load_run(trained, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(HarnessError, match="device=cuda: CUDA is not available"):
            harness.load_run(trained, device="cuda")
    other = Path(shutil.copytree(trained, tmp_path / "other"))
    config = other / "config.yaml"
    config.write_text(config.read_text().replace("method: attngan", "method: mymethod", 1))
    with pytest.raises(HarnessError, match=r"made by method 'mymethod', which is not registered here \(registered: "
                                           r".*attngan.*\); install its plugin, or pass plugins="):
        harness.load_run(other, device="cpu")
    shutil.rmtree(other / "checkpoints")
    config.write_text(config.read_text().replace("method: mymethod", "method: attngan", 1))
    with pytest.raises(HarnessError, match=rf"checkpoints does not exist\); train it first \(harness train "
                                           rf"--resume {re.escape(str(other))}\)"):
        harness.load_run(other, device="cpu")
