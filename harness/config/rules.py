"""What each config value may be: rules kept as metadata on the config dataclass fields, checked on the fully
resolved config before any directory exists or any work starts (README "Presets and configuration").

A field declares its rule with ``value(default, rule)`` (or ``value(factory=..., rule=...)``)::

    batch_size: int = value(20, at_least(1))
    split: str = value("test", one_of("train", "test"))

Rules check one value (for a list, each item; ``None`` of an ``Optional`` field is always allowed). Constraints
that tie several keys together or depend on a method's networks (stage sizes 4·2ⁿ, at least two items per
process under BatchNorm) are answered by the method's ``harness_check_config`` hook; names that only the
installed plugins know (data set, metrics) are checked against them (``check_config``). A violation raises
``ConfigError`` with one line: the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, TYPE_CHECKING

from harness.util.errors import ConfigError

if TYPE_CHECKING:  # type hints only
    from _typeshed import DataclassInstance  # a Config or one of its section dataclasses (a method's own included)

    from harness.config import Config
    from harness.contract.plugins import Plugins

RULE = "rule"  # the metadata key of a field's Rule


@dataclass(frozen=True)
class Rule:
    """What a config value may be.

    allowed: the words the error message uses, e.g. ">= 1" or "one of train, test".
    ok:      the test of one value (None: checked against the installed plugins, see ``registry``, or free).
    bad:     example values outside the rule (the parametrized config test sets each one and expects a refusal).
    registry: "datasets" | "metrics" | "methods": a name the installed plugins must know.
    """

    allowed: str
    ok: Optional[Callable[[Any], bool]] = None
    bad: tuple = ()
    registry: Optional[str] = None


def value(default: Any = dataclasses.MISSING, rule: Optional[Rule] = None, *,
          factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with ``default`` (or ``factory``) whose allowed values are ``rule``."""
    if rule is None:
        raise TypeError("value() needs a rule")
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={RULE: rule})
    return field(default=default, metadata={RULE: rule})


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def at_least(lo: float) -> Rule:
    """``v >= lo`` (finite)."""
    return Rule(f">= {lo}", lambda v: _number(v) and v >= lo, bad=(lo - 1,))


def above(lo: float) -> Rule:
    """``v > lo`` (finite), e.g. a learning rate."""
    return Rule(f"> {lo}", lambda v: _number(v) and v > lo, bad=(lo, "nan"))


def between(lo: float, hi: float, *, hi_open: bool = False, lo_open: bool = False) -> Rule:
    """``lo <= v <= hi`` (either end open when asked)."""
    def ok(v: Any) -> bool:
        return _number(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    text = f"{'>' if lo_open else '>='} {lo} and {'<' if hi_open else '<='} {hi}"
    return Rule(text, ok, bad=(lo - 1, hi + 1) if not hi_open else (lo - 1, hi))


def odd_at_least(lo: int) -> Rule:
    """An odd integer ``>= lo`` (a centred convolution kernel)."""
    return Rule(f"an odd integer >= {lo}", lambda v: _number(v) and v >= lo and v % 2 == 1, bad=(lo + 1, lo - 2))


def even_at_least(lo: int) -> Rule:
    """An even integer ``>= lo`` (e.g. a BiLSTM feature split into two directions)."""
    return Rule(f"an even integer >= {lo}", lambda v: _number(v) and v >= lo and v % 2 == 0, bad=(lo + 1, lo - 2))


MAX_SEED = 2 ** 63 - 1  # torch, numpy and Python generators all take a seed in 0 … 2^63 − 1
MAX_EVAL_IMAGES = 200_000  # four times FID's customary 50,000; each image keeps features for every metric
MAX_CAPTION_WORDS = 256  # word attention is quadratic in it; the reference captions have at most ~80 words


def seed_range() -> Rule:
    """A seed every generator of the harness accepts: ``0 <= v <= 2^63 − 1``."""
    return between(0, MAX_SEED)


def caption_words() -> Rule:
    """A caption length in words: ``1 <= v <= MAX_CAPTION_WORDS`` (it sizes every text batch and attention map)."""
    return between(1, MAX_CAPTION_WORDS)


def one_of(*choices: str) -> Rule:
    """One of the given strings."""
    return Rule(f"one of {', '.join(choices)}", lambda v: v in choices, bad=("nosuch",))


def matches(pattern: str, allowed: str, bad: tuple = ()) -> Rule:
    """A string matching the regular expression ``pattern`` in full."""
    rx = re.compile(pattern)
    return Rule(allowed, lambda v: isinstance(v, str) and rx.fullmatch(v) is not None, bad=bad)


def installed(registry: str) -> Rule:
    """A name the installed plugins provide (checked by ``check_config``, which has the plugins)."""
    return Rule(f"an installed {registry[:-1]} name", None, bad=("nosuch",), registry=registry)


def existing_file() -> Rule:
    """A path to an existing file (``~`` expanded)."""
    return Rule("an existing file", lambda v: os.path.isfile(os.path.expanduser(str(v))),
                bad=("/nonexistent/file.pth",))


def free(why: str) -> Rule:
    """Any value of the field's type; ``why`` says why (or where it is checked instead)."""
    return Rule(f"any value ({why})", lambda v: True)


# ------------------------------------------------------------------------------------------------------
# Walking and checking
# ------------------------------------------------------------------------------------------------------
def leaf_fields(obj: DataclassInstance, prefix: str = "") -> Iterator[tuple[str, DataclassInstance, dataclasses.Field]]:
    """Every value field of a (nested) config dataclass: (dotted key, owning object, field)."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            yield from leaf_fields(v, f"{prefix}{f.name}.")  # type: ignore[arg-type]  # a section, not a class
        else:
            yield f"{prefix}{f.name}", obj, f


def field_problem(key: str, v: Any, rule: Optional[Rule]) -> Optional[str]:
    """One line naming ``key``, the value and what is allowed when ``v`` breaks ``rule``; None when it keeps it."""
    if rule is None or rule.ok is None or v is None:
        return None
    items = v if isinstance(v, list) else [v]
    for item in items:
        if not rule.ok(item):
            shown = f"{item!r} in {v!r}" if isinstance(v, list) else repr(v)
            return f"{key}={shown} is not allowed; {key} must be {rule.allowed}"
    return None


def key_problem(cfg: DataclassInstance, dotted: str, v: Any, given_as: Optional[str] = None) -> Optional[str]:
    """``field_problem`` of value ``v`` for the field at ``dotted`` of ``cfg`` (e.g. a command-line option that
    replaces ``eval.num_images``, named ``given_as`` in the line)."""
    *sections, name = dotted.split(".")
    owner: Any = cfg
    for part in sections:
        owner = getattr(owner, part)
    rule = {f.name: f for f in dataclasses.fields(owner)}[name].metadata.get(RULE)
    problem = field_problem(dotted, v, rule)
    return problem if problem is None or given_as is None else f"{given_as} ({problem})"


def check_fields(cfg: Config) -> None:
    """Check every field against its rule (metadata); raises ``ConfigError`` on the first violation."""
    for key, owner, f in leaf_fields(cfg):
        problem = field_problem(key, getattr(owner, f.name), f.metadata.get(RULE))
        if problem:
            raise ConfigError(problem)


def check_config(plugins: Plugins, cfg: Config) -> None:
    """The whole check of a resolved config, before any work: field rules, names the installed plugins must know,
    then the method's own ``harness_check_config`` hook. Raises ``ConfigError`` (one line) on the first problem."""
    check_fields(cfg)
    known = {"datasets": plugins.datasets, "metrics": plugins.metrics, "methods": plugins.methods}
    for key, owner, f in leaf_fields(cfg):
        rule = f.metadata.get(RULE)
        v = getattr(owner, f.name)
        if rule is None or rule.registry is None or v is None:
            continue
        names = set(known[rule.registry]())
        if rule.registry == "metrics":
            names.add("auto")
        for item in (v if isinstance(v, list) else [v]):
            if item not in names:
                raise ConfigError(f"{key}={item!r} is not allowed; {key} must be one of "
                                  f"{', '.join(sorted(names)) or '(none installed)'}")
    for problem in core_problems(cfg):
        raise ConfigError(problem)
    for problems in plugins.method_hooks(cfg.method).harness_check_config(cfg=cfg):
        for problem in problems or []:
            raise ConfigError(problem)


def core_problems(cfg: Config) -> list[str]:
    """Constraints across keys that hold for every method: the global batch splits evenly over the processes
    of a torchrun launch and fits in the training split where the config states its size (the built-in shapes
    set), and an evaluation has enough images for its R-precision folds and IS splits."""
    problems = []
    n = world_size()
    if cfg.train.batch_size % n:
        problems.append(f"train.batch_size={cfg.train.batch_size} is not allowed on {n} processes; it is the global "
                        f"batch and must be divisible by {n}")
    shapes = cfg.data.shapes
    if cfg.data.name == "shapes" and cfg.train.batch_size > shapes.train_images:  # its split size is a config key
        problems.append(f"train.batch_size={cfg.train.batch_size} is not allowed; the training split has "
                        f"data.shapes.train_images={shapes.train_images} items, fewer than one batch")
    e = cfg.eval
    least = max(2, e.rp_folds, e.is_splits)
    if e.num_images < least:
        problems.append(f"eval.num_images={e.num_images} is not allowed; R-precision folds (eval.rp_folds="
                        f"{e.rp_folds}) and IS splits (eval.is_splits={e.is_splits}) need at least {least} images")
    return problems


# ------------------------------------------------------------------------------------------------------
# Constraints shared by the built-in methods (their harness_check_config hooks call these)
# ------------------------------------------------------------------------------------------------------
def doublings_from_4x4(size: int) -> Optional[int]:
    """n with ``size`` = 4·2ⁿ (n ≥ 0), or None when ``size`` is not such a side: a generator starts from a 4×4 map
    and doubles it n times; a stage discriminator halves its input down to 4×4."""
    n = int(round(math.log2(size / 4))) if size >= 4 else -1
    return n if n >= 0 and 4 * 2 ** n == size else None


def stage_size_problems(cfg: Config, min_doublings: int = 1) -> list[str]:
    """The first stage's side must be 4·2ⁿ (n ≥ ``min_doublings``): the generator starts from a 4×4 map and
    doubles it; each discriminator halves its input down to 4×4."""
    size = cfg.data.base_size
    n = doublings_from_4x4(size)
    if n is None or n < min_doublings:
        allowed = ", ".join(str(4 * 2 ** k) for k in range(min_doublings, min_doublings + 5))
        d = cfg.data
        stages = f"data.image_size={d.image_size} over data.branch_num={d.branch_num} stages starts at "
        return [f"{stages}data.base_size={size}, which is not allowed; {cfg.method} needs a first stage of 4·2^n "
                f"(n >= {min_doublings}): {allowed}, ... (stages are base_size·2^i)"]
    return []


def world_size() -> int:
    """Processes of this launch: torchrun's ``WORLD_SIZE`` (1 without it). Raises ConfigError (one line) for a value
    that is not an integer, before any work."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        return max(1, int(raw))
    except ValueError:
        raise ConfigError(f"$WORLD_SIZE={raw!r} is not an integer (torchrun sets it)") from None


def batchnorm_batch_problems(cfg: Config) -> list[str]:
    """BatchNorm in training mode needs at least 2 items per normalised batch: per process, or across all
    processes with ``train.sync_bn``."""
    n = world_size()
    per_process = cfg.train.batch_size // n
    if cfg.train.batch_size < 2 or (per_process < 2 and not (n > 1 and cfg.train.sync_bn)):
        where = f" over {n} processes ({per_process} per process; train.sync_bn=true normalises across them)" \
            if n > 1 else ""
        return [f"train.batch_size={cfg.train.batch_size} is not allowed{where}; {cfg.method}'s networks use "
                f"BatchNorm, which needs at least 2 items per batch{' per process' if n > 1 else ''}"]
    return []


def reference_gan_problems(cfg: Config) -> list[str]:
    """The constraints every AttnGAN-family generator and discriminator set shares: stage sides 4·2ⁿ (n >= 1)
    and BatchNorm's two items per batch."""
    return stage_size_problems(cfg) + batchnorm_batch_problems(cfg)
