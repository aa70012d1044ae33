"""Run directories and records (README "Run layout and records").

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

import fcntl
import json
import os
import re
import secrets
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TYPE_CHECKING

import yaml

from harness.core.runfiles import Record, RunInfo, RunInfoError
from harness.util.atomic import ensure_dir, removed_on_failure, write_file
from harness.util.errors import HarnessError
from harness.util.yamlio import safe_load

if TYPE_CHECKING:  # type hints only
    from harness.config import Config
    from harness.contract.plugins import Plugins



def results_root(arg: Optional[str | Path] = None, *, create: bool = True) -> Path:
    """--results-dir, else $HARNESS_RESULTS, else ./results; created unless ``create`` is False (a verb that
    checks its config first leaves it to the run or session directory it makes)."""
    root = Path(arg) if arg else Path(os.environ.get("HARNESS_RESULTS") or "results")
    if root.exists() and not root.is_dir():
        named = "--results-dir" if arg else ("HARNESS_RESULTS" if os.environ.get("HARNESS_RESULTS") else "results")
        raise HarnessError(f"the results root {root} ({named}) exists and is not a directory")
    if create:
        ensure_dir(root)
    return root


def exclusive_dir(parent: Path, stem: str) -> Path:
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


def run_stem(method: str, dataset: str, seed: int, tag: str = "") -> str:
    """``<method>-<dataset>-s<seed>[-<tag>]-<YYYYmmdd-HHMMSS>`` (the directory adds ``-<4 hex>``): the id of a
    `harness train` or `import-checkpoint` run (README "Run layout")."""
    return "-".join([method, dataset, f"s{seed}", *([tag] if tag else []), time.strftime("%Y%m%d-%H%M%S")])


def new_session_dir(root: Path) -> Path:
    """``<root>/<YYYYmmdd-HHMMSS>-<4 hex>/`` for one `harness run`."""
    return exclusive_dir(root, time.strftime("%Y%m%d-%H%M%S"))


IMAGE_RUN_METHOD = "images"  # the method and the run.json kind of an image run (harness evaluate-images)


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
            path = exclusive_dir(parent, stem or time.strftime("%Y%m%d-%H%M%S"))
        run = cls(path)
        with removed_on_failure(path):
            run.checkpoints.mkdir()
            run.samples.mkdir()
        return run

    # ---- config -----------------------------------------------------------------------------------
    def save_config(self, cfg: Config) -> None:
        atomic_write_text(self.config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    def config_dict(self) -> dict:
        """config.yaml as a dict, read with ``harness.util.yamlio.safe_load`` (a ``!!python/...`` tag never runs
        code, aliases are limited).
        Raises ``RunConfigError`` (one line naming the file) when it is missing, not YAML or not a mapping."""
        if not self.config_path.exists():
            raise RunConfigError(f"{self.path} is not a run directory (no config.yaml)")
        try:
            d = safe_load(self.config_path.read_text(), str(self.config_path))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise RunConfigError(f"{self.config_path}: not a readable run config ({_first_line(e)})") from None
        if not isinstance(d, dict) or not isinstance(d.get("method"), str):
            raise RunConfigError(f"{self.config_path}: not a run config (expected a mapping with a 'method' key, "
                                 f"got {type(d).__name__})")
        return d

    def load_config(self, plugins: Plugins) -> Config:
        """The resolved config, with the method's own section types (an image run's, ``method: images``, has the
        default sections); a config.yaml that does not fit them raises ``RunConfigError`` naming the file and the
        key."""
        from harness.config import config_from_dict
        from harness.util.errors import ConfigError

        d = self.config_dict()
        sections = None if d["method"] == IMAGE_RUN_METHOD else plugins.method(d["method"]).config_sections
        try:
            return config_from_dict(d, sections)
        except ConfigError as e:
            raise RunConfigError(f"{self.config_path}: {e}") from None

    # ---- logs and records ---------------------------------------------------------------------------
    def append_log(self, entry: dict) -> None:
        _append_jsonl(self.log_path, [entry])

    def read_log(self) -> list[dict]:
        return read_jsonl(self.log_path)

    def append_records(self, records: Iterable[Record]) -> None:
        records = list(records)
        try:
            _append_jsonl(self.records_path, [r.to_json() for r in records])
        except OSError as e:
            raise HarnessError(f"could not save this evaluation's {len(records)} records to {self.records_path}: "
                               f"{e.strerror or e}; nothing was written (free space, then run `harness evaluate "
                               f"{self.path}` again)") from None

    def read_records(self) -> list[Record]:
        """The records of ``records.jsonl`` in file order. A line that is not JSON, or not a record (no string
        ``metric``, a key of the wrong type), is skipped with one warning line naming the file and line."""
        out = []
        for i, obj in _jsonl_objects(self.records_path):
            try:
                out.append(Record.from_json(obj))
            except ValueError as e:
                warn(f"{self.records_path}:{i}: skipped a line that is not a record ({e})")
        return out


LOCK_FILE = ".writer.lock"  # holds the pid and verb of the process writing the run; locked with flock


class RunBusyError(HarnessError):
    """Another process is writing the run (training, resuming or evaluating it); the message names its pid."""


@contextmanager
def run_lock(run: RunDir, verb: str) -> Iterator[None]:
    """Hold the run's exclusive writer lock while the block runs: ``train``, ``train --resume`` and ``evaluate``
    of one run never run at once. The lock is an ``flock`` on ``<run>/.writer.lock``, released by the OS when the
    process ends however it ends, so a killed writer never leaves the run locked. A second writer raises
    ``RunBusyError`` naming the holder's pid and verb. Under torchrun only rank 0 (the rank that writes) takes it."""
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks (read before the process group exists)
        yield
        return
    path = Path(run.path) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise HarnessError(f"cannot lock run {run.path} for {verb} ({path}: {e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split() or ["?"]
            raise RunBusyError(f"run {run.path} is in use by process {holder[0]} ({' '.join(holder[1:]) or 'a writer'}"
                               f"); wait for it to end or stop it, then run {verb} again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {verb}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


class RunConfigError(HarnessError):
    """A run's config.yaml is missing, not YAML (or tagged with a type safe_load refuses) or does not fit the
    config; the message names the file."""


def _first_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


def warn(message: str) -> None:
    """One warning line on stderr (``harness: warning: ...``)."""
    print(f"harness: warning: {message}", file=sys.stderr, flush=True)


def cut_torn_tail(path: Path) -> Optional[Path]:
    """A JSON-lines file whose last line lacks its newline was torn (a killed process, a full disk): cut it at
    the last newline and keep the cut bytes beside the file as ``<name>.torn-<YYYYmmdd-HHMMSS>``. A last line
    that is complete JSON only gets its newline. Returns the file of cut bytes (None when nothing was cut)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        end, chunk = size, 1 << 16
        while end > 0:  # the last newline, read backwards in chunks
            start = max(0, end - chunk)
            f.seek(start)
            i = f.read(end - start).rfind(b"\n")
            if i >= 0:
                end = start + i + 1
                break
            end = start
        f.seek(end)
        tail = f.read()
        try:
            json.loads(tail)
            f.seek(size)
            f.write(b"\n")  # complete JSON without its newline: nothing torn
            return None
        except ValueError:
            pass
        keep = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
        while keep.exists():
            keep = keep.with_name(f"{keep.name}-{secrets.token_hex(2)}")
        write_file(keep, tail)
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    warn(f"{path}: its last line was torn ({len(tail)} bytes, an interrupted write); cut and kept in {keep}")
    return keep


def _append_jsonl(path: Path, entries: list[dict]) -> None:
    """Append ``entries`` as JSON lines with one write, then fsync; a torn tail is cut first (``cut_torn_tail``).
    A failed write (e.g. a full disk) is rolled back to the previous end of the file and its OSError raised."""
    blob = "".join(json.dumps(e, default=_json_default) + "\n" for e in entries).encode()
    cut_torn_tail(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, start)  # nothing half-written stays behind
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_jsonl(path: Path) -> list[dict]:
    """The JSON values of a JSON-lines file ([] when it does not exist). A line that is not JSON (a torn last
    line of an interrupted write, or one glued to a torn line) is skipped with a warning naming file and line."""
    return [obj for _, obj in _jsonl_objects(path)]


def _jsonl_objects(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) of each line of ``path`` that is JSON, as ``read_jsonl`` reads them."""
    if not path.exists():
        return
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            torn = i == len(lines)  # no newline after it
            what = "a torn last line (an interrupted write)" if torn else "a line that is not JSON"
            warn(f"{path}:{i}: skipped {what} ({len(line)} bytes)")
            continue
        yield i, obj


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` through the one writer (``harness.util.atomic.write_file``): beside ``path``, then renamed
    into place; a failed write (a full disk) removes the temporary file and leaves ``path`` as it was."""
    write_file(path, text)


def new_eval_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


RUN_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def check_run_id(arg: str, root: Path) -> Path:
    """``root/arg`` for a run id: ``^[\\w.-]+(/[\\w.-]+)?$`` (a name, or session/name), no ``..``, and resolving
    inside the results root; anything else raises HarnessError (one line)."""
    rule = "letters, digits, '_', '.', '-', at most one '/', no '..'"
    if not RUN_ID.match(arg) or ".." in arg:
        raise HarnessError(f"no run {arg!r}: not a run directory, and not a run id ({rule})")
    path = root / arg
    if not path.resolve().is_relative_to(root.resolve()):
        raise HarnessError(f"no run {arg!r}: the id resolves outside the results root {root}")
    return path


def resolve_run(arg: str | Path, root: Path) -> RunDir:
    """A RUN argument: an existing run directory's path, else a run id under the root (``check_run_id``; a bare
    name is also looked up one level down, inside each `run` session). No id ever goes into a glob pattern."""
    p = Path(arg)
    if (p / "config.yaml").is_file():
        return RunDir(p)
    q = check_run_id(str(arg), root)
    if (q / "config.yaml").is_file():
        return RunDir(q)
    matches = []
    if "/" not in str(arg):
        matches = [d / str(arg) for d in sorted(root.iterdir()) if d.is_dir() and d.name != ".cache"
                   and (d / str(arg) / "config.yaml").is_file()]
    if len(matches) == 1:
        return RunDir(matches[0])
    if len(matches) > 1:
        raise HarnessError(f"run id {arg!r} is ambiguous under {root}: " + ", ".join(str(m) for m in matches))
    raise HarnessError(f"no run {arg!r}: not a run directory, and no run with that id under {root}")


def session_path(arg: str | Path, root: Path) -> Path:
    """A SESSION argument: a session directory's path, else its id under the results root (the run-id rule:
    ``check_run_id``), e.g. the ``20261207-023935-83ce`` that `harness run` prints."""
    p = Path(arg)
    return p if p.is_dir() else check_run_id(str(arg), root)


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


def readable_runs(runs: Iterable[RunDir], plugins: Plugins) -> list[RunDir]:
    """The runs whose config.yaml loads and whose run.json (where there is one) reads; each other one is skipped
    with a warning line naming its file and why
    (``harness table --all`` on a results root where one run was damaged)."""
    out = []
    for run in runs:
        try:
            run.load_config(plugins)
            read_run_info(run)
        except HarnessError as e:
            warn(f"skipped run {run.path}: {e}")
            continue
        out.append(run)
    return out


def select_runs(plugins: Plugins, names: Iterable[str | Path], root: Path) -> list[RunDir]:
    """The runs ``harness table`` and ``report`` mean by their arguments: none given, every readable run under
    ``root``; else each a run (by path or id: its broken config or run.json is the error) or a directory holding runs
    (a `run` session, a results root: damaged runs there are skipped with a warning)."""
    names = list(names)
    if not names:
        return readable_runs(find_runs([root]), plugins)
    runs = []
    for a in names:
        if not Path(a).exists() and is_session_id(a, root):  # a session named by its id
            a = root / str(a)
        if (Path(a) / "config.yaml").is_file() or not Path(a).exists():
            run = resolve_run(a, root)
            run.load_config(plugins)
            read_run_info(run)
            runs.append(run)
        else:
            runs += readable_runs(find_runs([a]), plugins)
    return runs


def is_session_id(arg: str | Path, root: Path) -> bool:
    """``arg`` names a directory right under ``root`` that holds runs but is not one (a `run` session's id)."""
    try:
        d = check_run_id(str(arg), root)
    except HarnessError:
        return False
    return d.is_dir() and not (d / "config.yaml").exists() and any(d.glob("*/config.yaml"))


# ``run.json`` (written by harness.runs.info.write_run_info; read here so that tables need not import it)
RUN_INFO = "run.json"


def read_run_info(run: "RunDir") -> Optional[RunInfo]:
    """The run's ``run.json``, or None for a run made before it existed. Raises ``RunInfoError`` (one line naming
    the file) when it is not JSON or does not fit (``RunInfo.from_json``)."""
    path = run.path / RUN_INFO
    if not path.exists():
        return None
    try:
        return RunInfo.from_json(json.loads(path.read_bytes()))
    except (ValueError, UnicodeDecodeError) as e:
        raise RunInfoError(f"{path}: not a readable run.json ({_first_line(e)}); repair or delete it (a run "
                           f"without run.json takes its label and protocol from config.yaml)") from None
