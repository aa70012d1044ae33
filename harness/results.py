"""Run directories and records (DESIGN.md §10 "Run layout" and "Records").

    <root>/                                  --results-dir, else $HARNESS_RESULTS, else ./results
      <YYYYmmdd-HHMMSS>-<4 hex>/             one `harness run` (exclusive mkdir)
        <method>-s<seed>/                    one run directory per method and seed
        table.md, table.tex, table.csv
      <method>-<dataset>-s<seed>-<time>-<4 hex>/   `harness train` / `import-checkpoint`
      .cache/<kind>/<key>/                   DAMSM, real-image statistics, probes, data verdicts

A run directory holds config.yaml (resolved), log.jsonl (losses per step), checkpoints/, samples/ and
records.jsonl. Nothing here ever writes into a directory it did not create.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from harness.errors import HarnessError

RECORD_FIELDS = ("method", "dataset", "seed", "metric", "value", "std", "std_over", "status", "reason",
                 "eval_id", "protocol")


def results_root(arg: Optional[str | Path] = None) -> Path:
    """--results-dir, else $HARNESS_RESULTS, else ./results."""
    root = Path(arg) if arg else Path(os.environ.get("HARNESS_RESULTS") or "results")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _exclusive_dir(parent: Path, stem: str) -> Path:
    """Create ``parent/<stem>-<4 hex>`` exclusively (two runs started at once never share a directory)."""
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = parent / f"{stem}-{secrets.token_hex(2)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise HarnessError(f"could not create a new directory under {parent}")


def new_session_dir(root: Path) -> Path:
    """``<root>/<YYYYmmdd-HHMMSS>-<4 hex>/`` for one `harness run`."""
    return _exclusive_dir(root, time.strftime("%Y%m%d-%H%M%S"))


@dataclass
class RunDir:
    """One run: one method, one data set, one seed."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def records_path(self) -> Path:
        return self.path / "records.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    # ---- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, parent: Path, name: Optional[str] = None, stem: Optional[str] = None) -> "RunDir":
        """A new run directory: ``parent/name`` exactly (mkdir fails if it exists) or ``parent/<stem>-<hex>``."""
        if name is not None:
            path = parent / name
            parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir()
            except FileExistsError:
                raise HarnessError(f"run directory {path} exists already; a run never writes into another run's "
                                   f"directory") from None
        else:
            path = _exclusive_dir(parent, stem or time.strftime("%Y%m%d-%H%M%S"))
        run = cls(path)
        run.checkpoints.mkdir()
        run.samples.mkdir()
        return run

    # ---- config -----------------------------------------------------------------------------------
    def save_config(self, cfg: Any) -> None:
        atomic_write_text(self.config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    def config_dict(self) -> dict:
        if not self.config_path.exists():
            raise HarnessError(f"{self.path} is not a run directory (no config.yaml)")
        return yaml.safe_load(self.config_path.read_text())

    def load_config(self, plugins: Any) -> Any:
        """The resolved config, with the method's own section types."""
        from harness.config import config_from_dict

        d = self.config_dict()
        info = plugins.method(d["method"])
        return config_from_dict(d, info.config_sections)

    # ---- logs and records ---------------------------------------------------------------------------
    def append_log(self, entry: dict) -> None:
        _append_jsonl(self.log_path, [entry])

    def read_log(self) -> list[dict]:
        return read_jsonl(self.log_path)

    def append_records(self, records: Iterable[dict]) -> None:
        records = list(records)
        for r in records:
            missing = [k for k in RECORD_FIELDS if k not in r]
            if missing:
                raise ValueError(f"record lacks {missing}: {r}")
        _append_jsonl(self.records_path, records)

    def read_records(self) -> list[dict]:
        return read_jsonl(self.records_path)


def _append_jsonl(path: Path, entries: list[dict]) -> None:
    with open(path, "a") as f:
        for e in entries:
            f.write(json.dumps(e, default=_json_default) + "\n")
        f.flush()


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            out.append(json.loads(line))
    return out


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(3)}")
    tmp.write_text(text)
    os.replace(tmp, path)


def new_eval_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def make_record(*, method: str, dataset: str, seed: int, metric: str, value: Optional[float] = None,
                std: Optional[float] = None, std_over: Optional[str] = None, status: str = "ok",
                reason: Optional[str] = None, eval_id: str, protocol: Optional[dict] = None,
                **extra: Any) -> dict:
    """One record as DESIGN.md §10 fixes it (extra keys, e.g. ``step`` or ``variant``, are kept)."""
    rec = {"method": method, "dataset": dataset, "seed": seed, "metric": metric, "value": value, "std": std,
           "std_over": std_over, "status": status, "reason": reason, "eval_id": eval_id,
           "protocol": protocol or {}}
    rec.update(extra)
    return rec


def resolve_run(arg: str | Path, root: Path) -> RunDir:
    """A RUN argument: a path, or a run id under the root (also one level down, inside a `run` session)."""
    p = Path(arg)
    if (p / "config.yaml").exists():
        return RunDir(p)
    q = root / arg
    if (q / "config.yaml").exists():
        return RunDir(q)
    matches = [c.parent for c in root.glob(f"*/{arg}/config.yaml")]
    if len(matches) == 1:
        return RunDir(matches[0])
    if len(matches) > 1:
        raise HarnessError(f"run id {arg!r} is ambiguous under {root}: " + ", ".join(str(m) for m in matches))
    raise HarnessError(f"no run {arg!r}: not a run directory, and no run with that id under {root}")


def find_runs(paths: Iterable[str | Path]) -> list[RunDir]:
    """Every run directory at or below the given paths (a run, a `run` session, or a results root)."""
    runs = []
    for p in map(Path, paths):
        if (p / "config.yaml").exists():
            runs.append(RunDir(p))
            continue
        for cfg in sorted(p.glob("**/config.yaml")):
            if ".cache" not in cfg.parts:
                runs.append(RunDir(cfg.parent))
    return runs
