"""``harness import-checkpoint`` run in this process for the parity benchmarks, its output captured.

    run, line = import_checkpoint(["dmgan", "netG.pth", "--text-encoder", ...], args, tmp, overrides)

``args`` carries the benchmark's ``dataset``, ``preset`` and ``data_dir``; the run goes under ``tmp/results``.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Sequence


def import_checkpoint(given: Sequence[str], args: Any, tmp: Path, overrides: Sequence[str]) -> tuple[Any, str]:
    """(the imported run's ``RunDir``, the import's stderr line); SystemExit with that line when it fails."""
    from harness.cli import main as harness_main
    from harness.core.rundir import RunDir

    argv = ["import-checkpoint", *given, "--dataset", args.dataset, "--preset", args.preset,
            "--results-dir", str(tmp / "results")]
    argv += ["--data-dir", str(args.data_dir)] if args.data_dir else []
    for o in overrides:
        argv += ["--set", o]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = harness_main(argv)
    if rc != 0:
        raise SystemExit(f"reference_parity: harness import-checkpoint failed: {err.getvalue().strip()}")
    return RunDir(Path(out.getvalue().strip().splitlines()[-1])), err.getvalue().strip()
