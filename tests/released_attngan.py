"""Files in the layout of the original AttnGAN release (a DataParallel-prefixed generator, DAMSM encoders) for the
`test` preset, and the import-checkpoint command line that reads them; the files are the conftest fixture
``released``."""
from __future__ import annotations

from pathlib import Path

import torch

from harness.config import build_config
from harness.contract.plugins import build_plugins
from harness.nn.damsm import RNNTextEncoder, SmallCNNImageEncoder

VOCAB = 70  # the shapes vocabulary of the test preset: import refuses an encoder of another size


def _no_nbt(state: dict) -> dict:
    return {k: v.clone() for k, v in state.items() if not k.endswith("num_batches_tracked")}


def import_argv(files: dict, g_file: Path | None = None) -> list[str]:
    return ["import-checkpoint", "attngan", str(g_file or files["g"]), "--text-encoder", str(files["text"]),
            "--image-encoder", str(files["image"]), "--dataset", "shapes", "--preset", "test"]


def write_released(tmp_path: Path) -> tuple:
    """Reference-style files for the `test` preset: G (DataParallel prefix, no num_batches_tracked), encoders."""
    plugins = build_plugins()
    info = plugins.method("attngan")
    cfg = build_config("attngan", info.defaults, preset="test", dataset="shapes")
    torch.manual_seed(0)
    g = plugins.method_hooks("attngan").harness_generator(cfg=cfg, aux={})
    text = RNNTextEncoder(VOCAB, cfg.pretrain.damsm.word_embedding_dim, cfg.model.embedding_dim)
    image = SmallCNNImageEncoder(cfg.model.embedding_dim, 32)
    files = {"g": tmp_path / "bird_AttnGAN2.pth", "text": tmp_path / "text_encoder200.pth",
             "image": tmp_path / "image_encoder200.pth"}
    torch.save({"module." + k: v for k, v in _no_nbt(g.state_dict()).items()}, files["g"])
    torch.save(text.state_dict(), files["text"])
    torch.save(_no_nbt(image.state_dict()), files["image"])
    return plugins, cfg, g, files
