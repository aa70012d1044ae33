"""Reads plugins/attngan/reference_keys.txt: the reference implementation's state-dict keys with shapes, in
sections ([generator], [text_encoder], [image_encoder])."""
from __future__ import annotations

from pathlib import Path

KEYS = Path(__file__).resolve().parents[1] / "plugins" / "attngan" / "reference_keys.txt"


def reference_keys(section: str) -> list[tuple[str, list[int]]]:
    out, current = [], None
    for line in KEYS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        if current == section:
            key, shape = line.split(" ", 1)
            out.append((key, [int(x) for x in shape.strip("[]").split(",") if x.strip()]))
    return out
