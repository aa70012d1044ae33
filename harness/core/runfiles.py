"""The typed contents of a run's JSON files: ``Record`` (one line of ``records.jsonl``) and ``RunInfo``
(``run.json``).

Each is read and checked once, where its file is read (``harness.core.rundir.RunDir.read_records`` and
``harness.core.rundir.read_run_info``); everything after that uses attributes, not dictionary look-ups.
``from_json`` takes the parsed JSON object and raises ``ValueError`` naming the key that does not fit;
``to_json`` gives the object back. Keys the harness does not know are kept (``extra``) and written back in their
place, and keys an older file lacks take their defaults, so the files on disk keep the layout README "Run layout
and records" describes and old runs still read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from harness.util.errors import HarnessError

RECORD_FIELDS = ("method", "dataset", "seed", "metric", "value", "std", "std_over", "status", "reason",
                 "eval_id", "protocol")


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "an object",
             list: "a list"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _check(obj: dict, key: str, types: tuple[type, ...], *, optional: bool = True) -> None:
    """``obj[key]`` is one of ``types`` (or null / absent when ``optional``; a bool never counts as a number)."""
    v = obj.get(key)
    if v is None and optional:
        return
    if isinstance(v, types) and not (isinstance(v, bool) and bool not in types):
        return
    got = "null" if v is None else type(v).__name__
    raise ValueError(f"'{key}' is not {_type_name(types)} (got {got})")


def _object(d: Any, what: str) -> dict:
    if not isinstance(d, dict):
        raise ValueError(f"not {what} (a JSON {type(d).__name__}, not an object)")
    return d


NUMBER = (int, float)
# keys beyond RECORD_FIELDS that the harness reads, with their types (others are kept as they are)
RECORD_EXTRA_TYPES: dict[str, tuple[type, ...]] = {
    "step": (int,), "variant": (str,), "underpowered": (str,), "real": (bool,), "resized": (dict,),
    "images": (int,), "per_attribute": (dict,),
}


@dataclass
class Record:
    """One metric of one evaluation of a run: a line of ``records.jsonl``.

    ``status`` is ``ok`` (``value``, and ``std`` over ``std_over`` when the metric has a spread) or ``skipped``
    (``reason``); ``eval_id`` is shared by the records of one evaluation; ``protocol`` holds what the value was
    measured under. ``extra`` holds every further key in file order, e.g. ``step`` (the checkpoint scored),
    ``variant``, ``underpowered`` or a metric's own (``per_attribute``, ``candidates``)."""

    method: str
    dataset: str
    seed: Optional[int]
    metric: str
    value: Optional[float] = None
    std: Optional[float] = None
    std_over: Optional[str] = None
    status: str = "ok"
    reason: Optional[str] = None
    eval_id: Optional[str] = None
    protocol: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = [k for k in self.extra if k in RECORD_FIELDS]
        if clash:
            raise ValueError(f"record extra keys {clash} are record fields; pass them as fields")

    def to_json(self) -> dict:
        """The record as records.jsonl holds it: ``RECORD_FIELDS`` in order, then ``extra``."""
        return {**{k: getattr(self, k) for k in RECORD_FIELDS}, **self.extra}

    @classmethod
    def from_json(cls, d: Any) -> "Record":
        """The record of a parsed records.jsonl line. Raises ValueError naming the key that does not fit: the
        line must be an object with a string ``metric``; the other keys may be absent (defaults) but not of the
        wrong type."""
        d = _object(d, "a record")
        _check(d, "metric", (str,), optional=False)
        for key, types in [("method", (str,)), ("dataset", (str,)), ("seed", (int,)), ("value", NUMBER),
                           ("std", NUMBER), ("std_over", (str,)), ("status", (str,)), ("reason", (str,)),
                           ("eval_id", (str,)), ("protocol", (dict,)), *RECORD_EXTRA_TYPES.items()]:
            _check(d, key, types)
        return cls(method=d.get("method") or "", dataset=d.get("dataset") or "", seed=d.get("seed"),
                   metric=d["metric"], value=d.get("value"), std=d.get("std"), std_over=d.get("std_over"),
                   status=d.get("status") or "ok", reason=d.get("reason"), eval_id=d.get("eval_id"),
                   protocol=d.get("protocol") or {}, extra={k: v for k, v in d.items() if k not in RECORD_FIELDS})

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def step(self) -> Optional[int]:
        """The training step of the checkpoint it scored (None for an image run or an older record)."""
        return self.extra.get("step")

    @property
    def variant(self) -> Optional[str]:
        """The metric's protocol text (e.g. ``"100 candidates, 10 folds"``), from the record or its protocol."""
        return self.extra.get("variant") or self.protocol.get("variant")

    @property
    def underpowered(self) -> Optional[str]:
        """Why the value rests on too few images; None when it does not."""
        return self.extra.get("underpowered") or None

    @property
    def real(self) -> bool:
        """A value measured on the real images (``"real": true``)."""
        return bool(self.extra.get("real"))


class RunInfoError(HarnessError):
    """A run's run.json is not JSON or does not fit what run.json holds; the message names the file."""


# run.json keys with their types (null allowed): the order a trained run's run.json has them
_INFO_TYPES: dict[str, tuple[type, ...]] = {
    "version": (int,), "kind": (str,), "method": (str,), "dataset": (str,), "seed": (int,), "label": (str,),
    "ablation": (dict,), "deviations": (dict,), "params": (dict,), "protocol": (dict,), "device": (str,),
    "precision": (str,), "started": (str,), "finished": (str,), "environment": (dict,), "config": (dict,),
    "history": (list,), "source": (str,), "manifest": (dict,), "images": (int,),
}


@dataclass
class RunInfo:
    """What a run is (``run.json``, written by ``harness.runs.info.write_run_info`` when the run is created, and
    by ``harness.runs.images.write_image_run`` for an image run, ``kind`` ``images``).

    ``label`` is its row label (method ids, ``harness.runs.info.row_label``); ``ablation`` the ablation keys that
    differ from the method's preset; ``deviations`` the protocol keys it deviates in, with why; ``params`` the
    parameter counts per module; ``protocol`` ``{"name", "id", "values"}``; ``config`` the resolved config it
    trains under (None for a run made before run.json held it); ``history`` the resume events. An image run adds
    ``source`` (its folder), ``manifest`` (``{"path", "sha256"}``) and ``images``. ``extra`` holds keys the
    harness does not know; ``keys`` the file's key order (kept when the file is written back)."""

    version: Optional[int] = None
    kind: Optional[str] = None
    method: Optional[str] = None
    dataset: Optional[str] = None
    seed: Optional[int] = None
    label: Optional[str] = None
    ablation: dict = field(default_factory=dict)
    deviations: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    protocol: dict = field(default_factory=dict)
    device: Optional[str] = None
    precision: Optional[str] = None
    started: Optional[str] = None
    finished: Optional[str] = None
    environment: dict = field(default_factory=dict)
    config: Optional[dict] = None
    history: list = field(default_factory=list)
    source: Optional[str] = None
    manifest: Optional[dict] = None
    images: Optional[int] = None
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Any) -> "RunInfo":
        """The run info of parsed run.json text. Raises ValueError naming the key that does not fit: every key
        may be absent (its default) or null, none of the wrong type."""
        d = _object(d, "a run.json object")
        for key, types in _INFO_TYPES.items():
            _check(d, key, types)
        known = {k: v for k, v in d.items() if k in _INFO_TYPES and v is not None}
        return cls(**known, extra={k: v for k, v in d.items() if k not in _INFO_TYPES}, keys=tuple(d))

    def to_json(self) -> dict:
        """run.json's object: the keys the file had, in its order (with their current values), then the known
        keys set since (those that differ from their defaults), then the unknown keys added since."""
        defaults = RunInfo()
        values = {k: getattr(self, k) for k in _INFO_TYPES}
        out: dict[str, Any] = {}
        for k in self.keys:
            if k in values:
                out[k] = values[k]
            elif k in self.extra:
                out[k] = self.extra[k]
        out.update({k: v for k, v in values.items() if k not in out and v != getattr(defaults, k)})
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @property
    def protocol_values(self) -> Optional[dict]:
        """The protocol's ``{key: value}``; None when run.json does not hold them."""
        values = self.protocol.get("values")
        return dict(values) if isinstance(values, dict) else None

