"""`harness inspect`: a method's modules and their parameter counts, built exactly as training builds them
(``harness.build.build_method``) but without any weight file.

The modules are built on PyTorch's ``meta`` device when the method allows it (shapes only, no memory, no
initialisation cost: the paper-size discriminators' orthogonal init alone takes seconds), else on the CPU.
"""
from __future__ import annotations

from typing import Optional, TYPE_CHECKING

from harness.build import DEFAULT_VOCAB_SIZE, build_for_counting, count_parameters, prepare_config

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins


def inspect_method(plugins: Plugins, method: str, *, preset: str = "paper", dataset: str = "cub",
                   vocab_size: Optional[int] = None, overrides: Optional[list[str]] = None) -> dict:
    """Parameter counts of ``method`` under ``preset``: ``{"method", "text_encoder", "image_encoder",
    "image_encoder_trainable", "generator", "discriminators": [...], "discriminator_parts": [{name: n}, ...],
    "other": {name: n}}``.

    Counts are ``parameters()`` totals (frozen ones included; "trainable" = requires_grad as constructed);
    the generator's count leaves out auxiliary modules it holds (listed under ``other``)."""
    cfg = prepare_config(plugins, method, dataset=dataset, data_dir=None, preset=preset,
                         overrides=list(overrides or []), seed=0)
    modules = build_for_counting(plugins, cfg, vocab_size or DEFAULT_VOCAB_SIZE)
    aux = list(modules.aux.values())
    return {
        "method": method,
        "text_encoder": count_parameters(modules.text_encoder),
        "image_encoder": count_parameters(modules.image_encoder),
        "image_encoder_trainable": sum(p.numel() for p in modules.image_encoder.parameters() if p.requires_grad),
        "generator": count_parameters(modules.generator, exclude=aux),
        "discriminators": [count_parameters(d) for d in modules.discriminators],
        # a discriminator made of several networks names them (``parts``: its children's names)
        "discriminator_parts": [{name: count_parameters(getattr(d, name)) for name in getattr(d, "parts", ())}
                                for d in modules.discriminators],
        "other": {name: count_parameters(m) for name, m in modules.aux.items()},
    }


def format_inspection(report: dict) -> str:
    """The report as an aligned, human-readable block."""
    rows = [
        ("text encoder", report["text_encoder"]),
        ("image encoder", report["image_encoder"]),
        ("  trainable", report["image_encoder_trainable"]),
        ("generator", report["generator"]),
    ]
    parts = report.get("discriminator_parts") or [{} for _ in report["discriminators"]]
    for i, (n, named) in enumerate(zip(report["discriminators"], parts)):
        rows += [(f"discriminator {i}", n)] + [(f"  {name}", m) for name, m in named.items()]
    rows.append(("discriminators (sum)", sum(report["discriminators"])))
    rows += [(f"other: {name}", n) for name, n in report.get("other", {}).items()]
    width = max(len(r[0]) for r in rows)
    lines = [f"{report['method']}: parameters"]
    lines += [f"  {name:<{width}}  {n:>13,}" for name, n in rows]
    return "\n".join(lines)
