"""`harness run`: for each selected method and seed, pretrain → train → evaluate, then write the tables.

Every config is resolved (and so every name and key validated) before any work starts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from harness.config import Config, build_config


def prepare_config(plugins, method: str, *, dataset: str, data_dir: Optional[str], preset: str,
                   overrides: list[str], seed: int) -> Config:
    """Resolve one method's config; fails on an unknown method, data set, preset or key before any work."""
    info = plugins.method(method)
    plugins.dataset(dataset)
    return build_config(method, info.defaults, preset=preset, dataset=dataset, data_dir=data_dir,
                        overrides=overrides, seed=seed, section_types=info.config_sections)


def run_benchmark(plugins, *, methods: str, dataset: str, data_dir: Optional[str], preset: str, seeds: list[int],
                  overrides: list[str], root: Path, metrics: Optional[str] = None, evaluate: bool = True) -> Path:
    """Train and evaluate every (method, seed); returns the session directory holding the runs and tables."""
    from harness.results import new_session_dir
    from harness.tables import write_table
    from harness.train.engine import train_method

    infos = plugins.select_methods(methods)
    configs = [prepare_config(plugins, m.name, dataset=dataset, data_dir=data_dir, preset=preset,
                              overrides=overrides, seed=s) for m in infos for s in seeds]
    if evaluate:
        from harness.evaluate import check_metric_names

        check_metric_names(plugins, metrics)
    from harness.train.distributed import is_main, on_main

    session = on_main(lambda: new_session_dir(root))  # torchrun: rank 0 creates, every rank gets the path
    runs = []
    for cfg in configs:
        run = on_main(lambda: _new_run(session, cfg))
        print(f"== {cfg.method} seed {cfg.seed} on {cfg.data.name} ({cfg.preset}) -> {run.path}", flush=True)
        train_method(plugins, cfg, run, resume=False, root=root)
        if evaluate:
            from harness.evaluate import evaluate_run

            evaluate_run(plugins, run, metrics=metrics, strict=False, root=root)
        runs.append(run)
    if is_main():
        for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
            # the CSV keeps everything: per-attribute probe columns where a probe ran (shapes)
            write_table(plugins, runs, fmt=fmt, out=session / f"table.{ext}",
                        columns=["probe_attributes"] if fmt == "csv" else [])
        print((session / "table.md").read_text())
    return session


def _new_run(session: Path, cfg: Config):
    from harness.results import RunDir

    run = RunDir.create(session, name=f"{cfg.method}-s{cfg.seed}")
    run.save_config(cfg)
    return run
