"""The cached data-validation verdict is keyed by the version of the checks: a verdict made by earlier checks
(a key without the version, or with another one) is not reused, so newly added checks run on a directory that
passed before."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.data.validate as validate
from data_fixtures import small_cfg
from harness.core.cache import cached
from harness.util.errors import DataError

NEW_PROBLEM = "a problem only the newer checks find"


def _new_checks(monkeypatch) -> None:
    """The checks as a later version has them: one more problem than the directory had before."""
    older = validate.find_problems
    monkeypatch.setattr(validate, "find_problems", lambda *a, **kw: older(*a, **kw) + [NEW_PROBLEM])


def test_a_verdict_cached_without_the_checks_version_is_not_reused(cub: Path, tmp_path, monkeypatch):
    root = tmp_path / "results"
    cfg = small_cfg("cub", cub)
    ddir = cub.resolve()
    old_key = {"dataset": "cub", "data_dir": str(ddir), "captions_per_image": 10,  # the key as it was written
               "files": validate.file_listing_hash(ddir)}
    cached(root, "data-validation", old_key,
           lambda tmp: (tmp / "verdict.json").write_text(json.dumps({"problems": [], "warnings": []})))
    _new_checks(monkeypatch)
    with pytest.raises(DataError, match=NEW_PROBLEM):
        validate.check_dataset(cfg, root)


def test_a_new_checks_version_makes_the_verdict_again(cub: Path, tmp_path, monkeypatch):
    root = tmp_path / "results"
    cfg = small_cfg("cub", cub)
    validate.check_dataset(cfg, root)  # clean, and cached
    _new_checks(monkeypatch)
    validate.check_dataset(cfg, root)  # the same checks' version: the cached verdict stands
    monkeypatch.setattr(validate, "CHECKS_VERSION", validate.CHECKS_VERSION + 1)
    with pytest.raises(DataError, match=NEW_PROBLEM):
        validate.check_dataset(cfg, root)
