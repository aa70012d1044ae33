"""`harness train` and `harness run`: train one run (new or resumed), or for each selected method and seed
pretrain → train → evaluate, then write the tables. In `harness run` a run that fails (any error but Ctrl-C) is
recorded with its one line and the session goes on; `harness run --resume` tries it again.

Every config is resolved (and so every name and key validated) before any work starts.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness.build import prepare_config
from harness.config import Config
from harness.contract.plugins import Plugins
from harness.core.rundir import RunDir
from harness.evaluation.metrics.interface import EvalOptions


def train_run(plugins: Plugins, cfg: Config, run: RunDir, *, resume: bool, root: Path) -> None:
    """``harness.train.engine.train_method`` with periodic evaluation (every ``eval.every`` steps:
    ``harness.evaluation.evaluate.evaluate_run`` of that step's checkpoint, non-strict); ``harness train`` and
    ``harness run`` train through this, holding the run's writer lock (``harness.core.rundir.run_lock``)."""
    from harness.core.rundir import run_lock
    from harness.evaluation.evaluate import evaluate_run
    from harness.train.engine import train_method

    def evaluate(step: int) -> None:  # inside this process's lock on the run
        evaluate_run(plugins, run, lock=False, strict=False, root=root, step=step)

    if resume:
        from harness.runs.info import resume_changes

        # a refused edit is one line before anything, the writer lock included, is written
        changes = resume_changes(run, cfg)
    with run_lock(run, "train --resume" if resume else "train"):
        if resume:
            _apply_resume_changes(run, changes)
        train_method(plugins, cfg, run, resume=resume, root=root, evaluate=evaluate)


def _apply_resume_changes(run: RunDir, changes: dict) -> None:
    """Name each key that may change on resume and did (``runs.info.resume_changes``: the rest was refused), and
    record it in run.json's history (the training applies them)."""
    from harness.core.distributed import is_main, on_main
    from harness.runs.info import record_resume, show_value

    if is_main():
        for key, (old, new) in changes.items():
            print(f"resume: {key} {show_value(old)} -> {show_value(new)} (config.yaml; applied)", flush=True)
    on_main(lambda: record_resume(run, changes), share=False)


def train_new(plugins: Plugins, cfg: Config, root: Path) -> RunDir:
    """`harness train`: a new run of ``cfg`` under ``root`` (its data set checked before the directory exists),
    trained and marked finished. Under torchrun rank 0 creates the directory and every rank trains it."""
    from harness.core.distributed import on_main
    from harness.runs.info import create_run, mark_finished

    _check_data([cfg], root)
    run = on_main(lambda: create_run(plugins, cfg, root))
    _train_interruptible(plugins, cfg, run, resume=False, root=root)
    on_main(lambda: mark_finished(run))
    return run


def train_resumed(plugins: Plugins, run: RunDir, root: Path) -> RunDir:
    """`harness train --resume RUN`: continue ``run`` from its last checkpoint with its saved config (checked as a
    new one is: it may have been edited by hand), then mark it finished."""
    from harness.config.rules import check_config
    from harness.core.distributed import on_main
    from harness.runs.info import mark_finished

    cfg = run.load_config(plugins)
    check_config(plugins, cfg)
    _check_data([cfg], root)
    _train_interruptible(plugins, cfg, run, resume=True, root=root)
    on_main(lambda: mark_finished(run))
    return run


def _train_interruptible(plugins: Plugins, cfg: Config, run: RunDir, *, resume: bool, root: Path) -> None:
    """``train_run``; Ctrl-C names the run and the command that continues it."""
    from harness.core.checkpoint import resume_hint

    try:
        train_run(plugins, cfg, run, resume=resume, root=root)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: run {run.path}; {resume_hint(run)}") from None


SESSION_FILE = "session.json"  # what a `harness run` was asked to do, and which runs finished


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with a message naming what was interrupted and how to continue (printed by the CLI)."""


@dataclass
class SessionRequest:
    """What a `harness run` is asked to do; saved (with the finished runs) as ``session.json``.

    methods: comma-separated method names; metrics: comma-separated metric ids (None: every one that applies);
    evaluate: False trains only; metric_options: the metrics' own options by name
    (``harness.evaluation.metrics.interface.EvalOptions``)."""

    methods: str
    dataset: str
    data_dir: Optional[str]
    preset: str
    seeds: list[int]
    overrides: list[str]
    metrics: Optional[str] = None
    evaluate: bool = True
    metric_options: dict = dataclasses.field(default_factory=dict)


def run_benchmark(plugins: Plugins, asked: SessionRequest, *, root: Path) -> Path:
    """Train and evaluate every (method, seed); returns the session directory holding the runs and tables.
    The request is saved as ``session.json`` so that ``resume_benchmark`` can continue an interrupted session."""
    from harness.core.rundir import new_session_dir
    from harness.core.distributed import on_main

    request = dict(dataclasses.asdict(asked), methods=[m.name for m in plugins.select_methods(asked.methods)],
                   seeds=list(asked.seeds), overrides=list(asked.overrides), done=[])
    configs = _session_configs(plugins, request)  # every name, key and value checked before any work
    _check_data(configs, root)  # a data set that cannot be read is refused before the session directory exists

    def create() -> Path:
        session = new_session_dir(root)
        _write_session(session, request)
        return session

    session = on_main(create)  # torchrun: rank 0 creates, every rank gets the path
    return _run_session(plugins, session, request, configs, root)


def resume_benchmark(plugins: Plugins, session: Path, *, root: Path) -> Path:
    """Continue an interrupted `harness run` session: finished runs are kept, the interrupted one and those that
    failed resume from their last checkpoint, the runs not started are made, then the tables are written.
    Raises HarnessError (one line) when ``session`` is not a session directory."""
    request = _read_session(session)
    configs = _session_configs(plugins, request)
    _check_data(configs, root)
    return _run_session(plugins, session, request, configs, root)


def _check_data(configs: list[Config], root: Path) -> None:
    """``check_dataset`` (problems, warnings printed once) before any work, once per data set of ``configs``,
    against the largest batch that trains on it."""
    from harness.data.validate import check_dataset

    by_data: dict[tuple, list[Config]] = {}
    for c in configs:
        by_data.setdefault((c.data.name, c.data.data_dir, c.data.captions_per_image), []).append(c)
    for same in by_data.values():
        check_dataset(same[0].data, root, batch_size=max(c.train.batch_size for c in same))


def _session_configs(plugins: Plugins, request: dict) -> list[Config]:
    configs = [prepare_config(plugins, m, dataset=request["dataset"], data_dir=request["data_dir"],
                              preset=request["preset"], overrides=request["overrides"], seed=s)
               for m in request["methods"] for s in request["seeds"]]
    if request["evaluate"]:
        from harness.evaluation.evaluate import check_metric_names, check_metric_options

        check_metric_names(plugins, request["metrics"])
        check_metric_options(plugins, _eval_options(request))
    return configs


def _eval_options(request: dict) -> EvalOptions:
    # a session saved before metric options were kept has none
    return EvalOptions(metrics=request["metrics"], metric_options=dict(request.get("metric_options") or {}))


def _run_session(plugins: Plugins, session: Path, request: dict, configs: list[Config], root: Path) -> Path:
    from harness.reporting.tables import TableOptions, write_table
    from harness.core.distributed import is_main, on_main

    request.setdefault(FAILED, {})  # a session saved before failures were recorded has none
    runs = []
    for i, cfg in enumerate(configs):
        name = _run_name(cfg)
        if name in request["done"]:
            print(f"== {cfg.method} seed {cfg.seed}: finished earlier -> {session / name}", flush=True)
            runs.append(RunDir(session / name))
            continue
        try:
            run = _session_run(plugins, session, request, cfg, root)
        except _RunFailed as failed:
            request[FAILED][name] = failed.line
            print(f"== {cfg.method} seed {cfg.seed}: failed: {failed.line}", file=sys.stderr, flush=True)
            if failed.run is not None:
                runs.append(failed.run)
        except KeyboardInterrupt:
            from harness.core.checkpoint import last_good

            later = ", ".join(f"({c.method}, {c.seed})" for c in configs[i + 1:]
                              if _run_name(c) not in request["done"]) or "none"
            raise Interrupted(f"interrupted: run {session / name} ({cfg.method}, seed {cfg.seed}), "
                              f"{last_good(RunDir(session / name))}; not started: {later}; "
                              f"continue the session with `harness run --resume {session}`") from None
        else:
            request[FAILED].pop(name, None)
            request["done"].append(name)
            runs.append(run)
        on_main(lambda: _write_session(session, request), share=False)
    if is_main() and runs:
        for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
            # the CSV keeps everything: per-attribute probe columns where a probe ran (shapes)
            columns = ("probe_attributes",) if fmt == "csv" else ()
            write_table(plugins, runs, TableOptions(columns=columns), fmt=fmt, out=session / f"table.{ext}")
        print((session / "table.md").read_text())
        _write_report(plugins, session, runs)
    return session


FAILED = "failed"  # session.json: run name -> the one line of the error that stopped it


class _RunFailed(Exception):
    """One run of a session failed: its directory (None when it was not made) and the error's one line."""

    def __init__(self, run: Optional[RunDir], line: str):
        super().__init__(line)
        self.run, self.line = run, line


def _session_run(plugins: Plugins, session: Path, request: dict, cfg: Config, root: Path) -> RunDir:
    """Make (or resume) one run of the session, train and evaluate it and mark it finished; any error but Ctrl-C
    becomes ``_RunFailed`` (recorded in run.json), so that the session goes on with the other runs."""
    from harness.core.distributed import is_main, on_main
    from harness.runs.info import create_run, mark_failed, mark_finished

    path = session / _run_name(cfg)
    resume = (path / "config.yaml").is_file()
    run: Optional[RunDir] = RunDir(path) if resume else None
    try:
        if run is None:
            run = on_main(lambda: create_run(plugins, cfg, session, name=path.name))
        print(f"== {cfg.method} seed {cfg.seed} on {cfg.data.name} (protocol {cfg.protocol}, preset {cfg.preset})"
              f"{' (resumed)' if resume else ''} -> {run.path}", flush=True)
        train_run(plugins, run.load_config(plugins) if resume else cfg, run, resume=resume, root=root)
        if request["evaluate"]:
            from harness.evaluation.evaluate import evaluate_run

            evaluate_run(plugins, run, _eval_options(request), strict=False, root=root)
        if is_main():
            mark_finished(run)
    except Exception as e:  # noqa: BLE001 (any failure of one method's run is recorded; the session goes on)
        line = _failure_line(e)
        if run is not None and is_main():
            mark_failed(run, line)
        raise _RunFailed(run, line) from e
    return run


def _failure_line(e: BaseException) -> str:
    """A HarnessError's own line; any other error's type and message, on one line."""
    from harness.util.errors import HarnessError, one_line

    return one_line(e) if isinstance(e, HarnessError) else f"{type(e).__name__}: {one_line(e)}"


def failed_runs(session: Path) -> dict[str, str]:
    """The runs of a `harness run` session that failed in its last try, as run name -> the error's line."""
    return dict(_read_session(session).get(FAILED) or {})


def _write_report(plugins, session: Path, runs: list) -> None:
    """``report.html`` beside table.md; a failure to draw it is a warning (training and tables are kept) naming
    how to draw it again."""
    from harness.util.errors import HarnessError
    from harness.reporting.report import REPORT_FILE, write_report
    from harness.core.rundir import warn

    try:
        print(write_report(plugins, runs, session / REPORT_FILE, title=f"t2i-harness report: {session.name}"),
              flush=True)
    except (HarnessError, OSError) as e:
        warn(f"report not written ({e}); write it with `harness report {session}`")


def _run_name(cfg: Config) -> str:
    return f"{cfg.method}-s{cfg.seed}"


def _write_session(session: Path, request: dict) -> None:
    from harness.core.rundir import atomic_write_text

    atomic_write_text(session / SESSION_FILE, json.dumps(request, indent=1))


def _read_session(session: Path) -> dict:
    from harness.util.errors import HarnessError

    path = Path(session) / SESSION_FILE
    if not path.is_file():
        raise HarnessError(f"{session} is not a `harness run` session directory (no {SESSION_FILE}); "
                           f"sessions made before {SESSION_FILE} existed cannot be resumed")
    try:
        request = json.loads(path.read_text())
        keys = ("methods", "dataset", "data_dir", "preset", "seeds", "overrides", "metrics", "evaluate", "done")
        if not isinstance(request, dict) or any(k not in request for k in keys):
            raise ValueError("missing keys")
    except ValueError as e:
        raise HarnessError(f"{path}: not a session file ({e})") from None
    return request


def session_done(session: Path) -> int:
    """End of `harness run`: name the runs that failed (one line on stderr), print the session directory last;
    returns the exit status, 1 when any failed."""
    failed = failed_runs(session)
    if failed:
        print(f"harness: {len(failed)} run(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
              + f"; retry them with `harness run --resume {session}`", file=sys.stderr, flush=True)
    print(session)
    return 1 if failed else 0
