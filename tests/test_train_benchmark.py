"""benchmarks/train_speed.py runs end to end at a tiny size, and its baseline words loss (the reference's
per-caption loop) agrees with the vectorised one the engine uses."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_looped_words_loss_equals_the_vectorised_one():
    from harness.nn.damsm_loss import words_loss

    torch.manual_seed(0)
    regions, words = torch.randn(5, 16, 4, 4), torch.randn(5, 16, 7)
    lengths, class_ids = torch.tensor([7, 6, 4, 4, 2]), torch.tensor([1, 2, 1, 3, 4])
    a = words_loss(regions, words, lengths, class_ids, 4.0, 5.0, 10.0)
    b = _script().looped_words_loss(regions, words, lengths, class_ids, 4.0, 5.0, 10.0)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    torch.testing.assert_close(a[2], b[2])


def test_the_benchmark_prints_its_table(capsys, tmp_path):
    threads = torch.get_num_threads()
    try:
        assert _script().main(["--preset", "test", "--batch", "4", "--warmup", "0", "--reps", "1", "--threads", "1",
                               "--vocab-size", "50", "--json", str(tmp_path / "out.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "optimised / baseline (same process)" in out and "random-weight" in out and "25.67" in out
    assert (tmp_path / "out.json").is_file()
