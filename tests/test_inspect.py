"""`harness inspect`: parameter counts of the paper presets equal the reference's (REFERENCE.md A1)."""
from __future__ import annotations

import json

from harness.cli import main
from harness.runs.inspect import format_inspection


def test_attngan_paper_parity(capsys):
    assert main(["inspect", "--plugins", "attngan", "--preset", "paper", "--vocab-size", "5450", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "method": "attngan",
        "text_encoder": 2_075_320,
        "image_encoder": 22_506_720,
        "image_encoder_trainable": 721_152,
        "generator": 7_084_592,
        "discriminators": [6_313_730, 19_424_002, 71_858_946],
        "discriminator_parts": [{}, {}, {}],  # AttnGAN's D_NETs name no parts
        "other": {},
    }
    text = format_inspection(report)
    assert "7,084,592" in text and "71,858,946" in text


def test_inspect_text_output_and_overrides(capsys):
    assert main(["inspect", "--plugins", "attngan", "--preset", "test", "--dataset", "shapes",
                 "--set", "model.gf_dim=8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("attngan: parameters") and "generator" in out


def test_inspect_unknown_preset_fails_in_one_line(capsys):
    assert main(["inspect", "--plugins", "attngan", "--preset", "nonexistent"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nonexistent" in err and len(err.splitlines()) == 1
