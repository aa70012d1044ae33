"""``harness datasets inspect NAME [--data-dir DIR] [--json]``: sizes, vocabulary, caption statistics, every
problem found, warnings (empty captions left out, a ``captions.pickle`` older than ``text/``, captions whose words
lose letters to bytes that are not UTF-8 or to the tokeniser's drop of non-ASCII letters), and a sample sheet of
test images with their first captions."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, TYPE_CHECKING

import numpy as np
import torch

from harness.config import DataConfig
from harness.util.hashing import stable_hash
from harness.data.validate import LAYOUT_SPECS, find_problems, find_warnings
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.data.dataset import TextImageDataset
    from harness.contract.plugins import Plugins

SHEET_IMAGES = 8


def inspect_dataset(plugins: Plugins, name: str, *, data_dir: Optional[str], root: Path) -> dict:
    """The report of data set ``name``: counts, caption statistics, ``problems`` and the sample sheet path."""
    info = plugins.dataset(name)
    cfg = DataConfig(name=name, data_dir=str(data_dir) if data_dir is not None else None)
    report: dict[str, Any] = {"dataset": name, "data_dir": cfg.data_dir, "train_images": None, "test_images": None,
                              "classes": None, "vocab_size": None, "captions_per_image": None, "problems": [],
                              "warnings": []}
    spec = LAYOUT_SPECS.get(name)
    if spec is not None:
        report["problems"] = find_problems(spec, data_dir, decode_images=True)
        report["warnings"] = find_warnings(spec, data_dir)
    try:
        sets = {s: info.build(cfg, s, train=False, seed=0, cache_root=Path(root)) for s in ("train", "test")}
    except HarnessError as e:
        if str(e) not in report["problems"]:
            report["problems"].append(str(e))
        return report
    train, test = sets["train"], sets["test"]
    if spec is not None and not spec.has_class_info:
        classes = len(train) + len(test)  # every image its own class
    else:
        classes = len(set(train.class_ids.tolist()) | set(test.class_ids.tolist()))
    lengths = np.array([len(c) for ds in (train, test) for i in range(len(ds)) for c in ds.captions(i)] or [0])
    report.update({
        "train_images": len(train), "test_images": len(test), "classes": classes,
        "train_classes": train.num_classes, "test_classes": test.num_classes,
        "vocab_size": len(train.vocab), "captions_per_image": train.captions_per_image,
        "caption_length": {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 2),
                           "median": float(np.median(lengths)), "max": int(lengths.max()),
                           f"over_words_num_{cfg.words_num}": round(float((lengths > cfg.words_num).mean()), 4)},
        "stage_sizes": train.stage_sizes,
    })
    if not report["problems"]:
        report["sample_sheet"] = str(_sample_sheet(test if len(test) else train, name, cfg, Path(root)))
    return report


def _sample_sheet(ds: TextImageDataset, name: str, cfg: DataConfig, root: Path) -> Path:
    from harness.core.sheets import save_sheet

    n = min(SHEET_IMAGES, len(ds))
    idx = np.linspace(0, len(ds) - 1, n).round().astype(int).tolist()
    images = torch.stack([ds[i]["images"][-1] for i in idx])
    captions = [ds.caption_text(i, 0) for i in idx]
    key = stable_hash({"dataset": name, "data_dir": str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None})
    return save_sheet(images, captions, root / ".cache" / "inspect" / f"{name}-{key}" / "samples.png", ncols=4)


def format_report(report: dict) -> str:
    """The report as readable lines (problems listed one per line)."""
    lines = [f"data set   {report['dataset']}" + (f"  ({report['data_dir']})" if report.get("data_dir") else "")]
    if report.get("train_images") is not None:
        cl = report.get("caption_length", {})
        lines += [
            f"images     train {report['train_images']}, test {report['test_images']}",
            f"classes    {report['classes']} (train {report.get('train_classes')}, test {report.get('test_classes')})",
            f"vocabulary {report['vocab_size']} words",
            f"captions   {report['captions_per_image']} per image; length min {cl.get('min')}, "
            f"mean {cl.get('mean')}, median {cl.get('median')}, max {cl.get('max')}",
        ]
    if report.get("sample_sheet"):
        lines.append(f"samples    {report['sample_sheet']}")
    problems = report.get("problems") or []
    warnings = report.get("warnings") or []
    if warnings:
        lines.append(f"warnings   {len(warnings)}")
        lines += [f"  - {w}" for w in warnings]
    lines.append(f"problems   {len(problems) or 'none'}")
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)
