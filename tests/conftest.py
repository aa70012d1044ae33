"""Shared test set-up: small thread counts, and every path the harness writes to or reads weights from points
into a per-test temporary directory, so tests never write into the repository and behave the same on any
machine (no real weight file is ever found)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """$HARNESS_RESULTS, $HARNESS_WEIGHTS and $TORCH_HOME → empty temporary directories; ~/.cache/clip is not
    looked at either because $HOME points to an empty directory too."""
    base = tmp_path_factory.mktemp("env")
    paths = {name: base / name for name in ("results", "weights", "torch_home", "home")}
    for p in paths.values():
        p.mkdir()
    monkeypatch.setenv("HARNESS_RESULTS", str(paths["results"]))
    monkeypatch.setenv("HARNESS_WEIGHTS", str(paths["weights"]))
    monkeypatch.setenv("TORCH_HOME", str(paths["torch_home"]))
    monkeypatch.setenv("HOME", str(paths["home"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(paths["home"] / ".cache"))
    return paths


@pytest.fixture
def results_root(isolated_paths: dict[str, Path]) -> Path:
    """The results root every harness command of this test uses ($HARNESS_RESULTS)."""
    return isolated_paths["results"]


@pytest.fixture(scope="session")
def shapes_cub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shapes data set written out once in the CUB layout."""
    from harness.data import writer
    from harness.contract.plugins import build_plugins

    out = tmp_path_factory.mktemp("shapes_cub") / "cub"
    writer.write_dataset(build_plugins(), "shapes", out, layout="cub",
                         overrides=["data.shapes.train_images=24", "data.shapes.test_images=12"])
    return out


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: the CI machine's 2 cores are shared, and oversubscribed OpenMP threads
    make small CPU networks tens of times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def cub_written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small shapes data set (``data_fixtures.SMALL``) written once in the CUB layout; never modified."""
    from data_fixtures import SMALL, data_plugins
    from harness.data.writer import write_dataset

    return write_dataset(data_plugins(), "shapes", tmp_path_factory.mktemp("w") / "cub", layout="cub",
                         overrides=SMALL)


@pytest.fixture
def cub(cub_written: Path, tmp_path: Path) -> Path:
    """A fresh copy of ``cub_written`` for a test that edits the data directory."""
    return Path(shutil.copytree(cub_written, tmp_path / "cub"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A finished run of the fake evaluation method (``fake_method``): (plugins, run, results root)."""
    from fake_method import make_fake_run

    return make_fake_run(tmp_path_factory.mktemp("eval"))


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No weight directory: $HARNESS_WEIGHTS unset, TORCH_HOME and HOME empty."""
    monkeypatch.delenv("HARNESS_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def released(tmp_path: Path) -> tuple:
    """Original-layout AttnGAN files for the `test` preset (``released_attngan``): (plugins, cfg, G, files)."""
    from released_attngan import write_released

    return write_released(tmp_path)
