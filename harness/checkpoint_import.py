"""`harness import-checkpoint`: a run made from a method's released reference generator (e.g. AttnGAN's
``bird_AttnGAN2.pth``, DM-GAN's ``bird_DMGAN.pth``) and the released DAMSM encoders it was trained with.

The generator file is read with ``weights_only=True`` (a file that needs code to load is refused), mapped to
this harness's keys by the method's ``harness_import_generator_state`` hook and loaded strictly (a mismatch names
the first offending key and both shapes; missing BatchNorm ``num_batches_tracked`` is tolerated). Everything is
checked before the run directory is created, including that the text encoder's vocabulary has the size of the
data set's (``captions.pickle``, or the one built from ``text/``). The run then holds ``config.yaml``, ``pretrained.json`` (the DAMSM
cache entry of the imported encoders) and ``checkpoints/step-0.pt`` whose ``generator_ema`` (and ``generator``)
is the released generator, so ``harness sample`` and ``harness evaluate`` work on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional


from harness.errors import HarnessError
from harness.results import RunDir, run_stem


def _vocab_size(text_state: dict, path: Path) -> int:
    weight = text_state.get("encoder.weight")
    if weight is None or weight.dim() != 2:
        raise HarnessError(f"{path}: not a DAMSM text encoder (no 2-d 'encoder.weight' embedding)")
    return int(weight.shape[0])


def import_checkpoint(plugins, method: str, file: Path, *, text_encoder: Optional[str] = None,
                      image_encoder: Optional[str] = None, dataset: str = "cub", data_dir: Optional[str] = None,
                      preset: str = "paper", overrides: Optional[list[str]] = None, root: Path) -> RunDir:
    """Create a run under ``root`` whose EMA generator is the released reference generator ``file``."""
    from harness.build import build_method
    from harness.data.vocab import check_vocabulary_size
    from harness.nn.state_dicts import load_state_strict, load_weights_file, tensor_state
    from harness.run import prepare_config
    from harness.run_info import write_run_info
    from harness.train.checkpoint import save_checkpoint, write_pretrained
    from harness.train.pretrain import import_damsm, load_damsm
    from harness.weights import weight_sha256

    file = Path(file).expanduser()
    cfg = prepare_config(plugins, method, dataset=dataset, data_dir=data_dir, preset=preset,
                         overrides=list(overrides or []), seed=0)
    dc = cfg.pretrain.damsm
    text_file = text_encoder or dc.text_encoder_file
    image_file = image_encoder or dc.image_encoder_file
    if not (text_file and image_file):
        raise HarnessError(f"import-checkpoint needs the DAMSM encoders {file.name} was trained with: "
                           f"--text-encoder FILE --image-encoder FILE (for CUB: text_encoder200.pth and "
                           f"image_encoder200.pth)")
    dc.text_encoder_file, dc.image_encoder_file = str(Path(text_file).expanduser()), str(Path(image_file).expanduser())

    # 1. the generator file: safe load, mapping to our keys, strict check against a freshly built method
    #    (before anything is written)
    released = tensor_state(load_weights_file(file, what="generator file"), file)
    hooks = plugins.method_hooks(method)
    mapped = hooks.harness_import_generator_state(cfg=cfg, state_dict=released)
    if mapped is None:
        raise HarnessError(f"method {method!r} has no importer of reference weights (harness_import_generator_state)")
    text_state = tensor_state(load_weights_file(dc.text_encoder_file, what="DAMSM text encoder file"),
                              dc.text_encoder_file)
    vocab_size = _vocab_size(text_state, Path(dc.text_encoder_file))
    train_set = plugins.dataset(cfg.data.name).build(cfg.data, "train", train=False, seed=0, cache_root=root)
    check_vocabulary_size(vocab_size, train_set, f"--text-encoder {dc.text_encoder_file}")

    modules = build_method(plugins, cfg, vocab_size)
    load_state_strict(modules.generator, mapped, source=str(file))
    state = {k: v.detach().clone() for k, v in modules.generator.state_dict().items()}

    # 2. the DAMSM encoders: a cache entry shared with every later use of the same files, loaded strictly
    pretrained = {"damsm": import_damsm(cfg, dc.text_encoder_file, dc.image_encoder_file, root)}
    load_damsm(modules.damsm, pretrained["damsm"])

    # 3. the run
    run = RunDir.create(root, stem=run_stem(method, cfg.data.name, cfg.seed, "imported"))
    run.save_config(cfg)
    write_run_info(plugins, run, cfg)
    write_pretrained(run, pretrained, vocab_size)
    from harness.data.vocab import VOCAB_FILE, save_vocabulary

    save_vocabulary(train_set.vocab, run.path / VOCAB_FILE)
    save_checkpoint(run, {
        "method": method,
        "vocab_size": vocab_size,
        "generator_ema": state,
        "generator": state,
        "imported": {"file": file.name, "sha256": weight_sha256(file)},
        "epoch": 0,
        "position": 0,
    }, step=0)
    return run
