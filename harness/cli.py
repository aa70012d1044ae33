"""The command line: argument parsing only; every verb calls into the module that does the work.

    harness run       --plugins a,b --dataset D [--preset P] [--seeds 0,1,2]   pretrain → train → evaluate → table
    harness run       --resume SESSION                                         continue an interrupted session
    harness train     --plugins M --dataset D [--preset P] [--seed S] [--set k=v]... [--resume RUN]
    harness evaluate  RUN [--metrics is,fid,...] [--num-images N] [--split test] [--checkpoint STEP]
    harness sample    RUN... --caption "..." | --captions FILE [--seed S]
    harness table     [RUNS... | --all] --format markdown|latex|csv [--out FILE] [--with-paper-numbers]
                      [--metrics is,fid,rp] [--caption TEXT] [--label tab:x] [--latex-siunitx] [--explain]
    harness plugins | datasets | metrics | weights
    harness datasets  write NAME DIR --layout cub|coco  |  inspect NAME [--data-dir DIR] [--json]
    harness datasets  captions NAME [--data-dir DIR] --preset P --out captions.csv   the protocol's captions
    harness evaluate-images DIR --dataset D --preset P --name LABEL [--metrics ...] [--manifest FILE] [--allow-fewer]
    harness inspect   --plugins M [--preset paper] [--dataset cub] [--vocab-size N] [--json]
    harness config    --plugins M --dataset D [--preset P] [--set k=v]... [--json]     resolved config + sources
    harness import-checkpoint METHOD FILE [--text-encoder F --image-encoder F] [--discriminators D0,D1,D2]
                              [--start-epoch N] --dataset D --data-dir DIR
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional, Sequence, TYPE_CHECKING

from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins
    from harness.core.rundir import RunDir


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results-dir", default=None, help="results root (default $HARNESS_RESULTS or ./results)")
    p.add_argument("--weights-dir", default=None, help="where pretrained weight files are looked for first")


def _add_method_config(p: argparse.ArgumentParser, *, seeds: bool) -> None:
    p.add_argument("--plugins", default=None, help="method name(s), comma-separated")
    p.add_argument("--dataset", default="shapes", help="data set name (default: shapes, built in)")
    p.add_argument("--data-dir", default=None, help="data set directory (cub, coco)")
    p.add_argument("--preset", default=None, help="preset of the method's defaults.yaml: paper (= paper-<dataset>), "
                                                  "smoke, test (default: smoke on shapes, else paper)")
    if seeds:
        p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    else:
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.batch_size=16 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Benchmark harness for text-to-image GANs.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("run", help="pretrain → train → evaluate → table, for each method and seed")
    _add_method_config(p, seeds=True)
    p.add_argument("--metrics", default=None, help="metrics to compute (default: every one that applies)")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--resume", default=None, metavar="SESSION",
                   help="continue an interrupted session: finished runs kept, the interrupted one resumed, "
                        "the rest run")
    _add_common(p)

    p = sub.add_parser("train", help="train one method (or resume a run)")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue a run from its last checkpoint")
    p.add_argument("--plugins", default=None)
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--preset", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    _add_common(p)

    p = sub.add_parser("evaluate", help="evaluate a run's EMA generator")
    p.add_argument("run")
    p.add_argument("--metrics", default=None, help="comma-separated metric ids (default: every one that applies)")
    p.add_argument("--num-images", type=int, default=None)
    p.add_argument("--split", default=None)
    p.add_argument("--checkpoint", default=None, help="checkpoint step (default: latest)")
    p.add_argument("--save-images", default=None, metavar="DIR")
    p.add_argument("--rp-encoder", default=None, metavar="RUN_OR_FILE",
                   help="score R-precision with a separately trained DAMSM (a run or a cache directory)")
    p.add_argument("--fid-stats", default=None, metavar="FILE", help="real statistics for fid_tv (pytorch-fid .npz)")
    p.add_argument("--is-classifier", default=None, metavar="FILE", help="fine-tuned classifier for is_ft")
    p.add_argument("--is-classes", type=int, default=None)
    p.add_argument("--is-temperature", type=float, default=None)
    p.add_argument("--clip-model", default=None, metavar="FILE")
    _add_common(p)

    p = sub.add_parser("evaluate-images", help="evaluate a folder of images (any model's) under a protocol")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--dataset", required=True, help="data set of the protocol")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--preset", required=True, help="protocol preset of the data set (paper, smoke, test)")
    p.add_argument("--name", required=True, metavar="LABEL", help="the table row's label (not a method's name)")
    p.add_argument("--metrics", default=None, help="comma-separated metric ids (default: every one that applies)")
    p.add_argument("--manifest", default=None, metavar="FILE", help="default DIR/manifest.csv")
    p.add_argument("--allow-fewer", action="store_true",
                   help="evaluate fewer images than the protocol's count (records marked underpowered)")
    p.add_argument("--ignore-extra", action="store_true", help="ignore images the manifest does not list")
    p.add_argument("--rp-encoder", default=None, metavar="RUN_OR_DIR",
                   help="score R-precision with this DAMSM (a run or a cache directory) instead of the protocol's")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default auto)")
    _add_common(p)

    p = sub.add_parser("sample", help="draw a sample sheet (several runs side by side)")
    p.add_argument("runs", nargs="+")
    p.add_argument("--caption", action="append", default=[])
    p.add_argument("--captions", default=None, metavar="FILE", help="one caption per line")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="PNG path (default: samples/ of the first run)")
    p.add_argument("--checkpoint", default=None)
    _add_common(p)

    p = sub.add_parser("table", help="the results table (Markdown, LaTeX, CSV)")
    p.add_argument("runs", nargs="*")
    p.add_argument("--all", action="store_true", help="every run under the results root")
    p.add_argument("--format", default="markdown", choices=["markdown", "latex", "csv"])
    p.add_argument("--out", default=None)
    p.add_argument("--with-paper-numbers", action="store_true")
    p.add_argument("--columns", default="", help="extra columns: params,speed,probe_attributes")
    p.add_argument("--metrics", default="", help="metric columns to show, in this order, e.g. is,fid,rp "
                   "(default: every metric with a computed value)")
    p.add_argument("--caption", default=None, help="LaTeX caption (the protocol sentence follows it)")
    p.add_argument("--label", default=None, help="LaTeX label (default tab:results)")
    p.add_argument("--latex-siunitx", action="store_true", help="align numbers on the decimal point (siunitx S)")
    p.add_argument("--explain", action="store_true",
                   help="print the full reasons of what was not computed and each column's protocol")
    _add_common(p)

    p = sub.add_parser("report", help="one self-contained HTML page: table, sheets, curves, runs")
    p.add_argument("runs", nargs="+", metavar="SESSION | RUN", help="a session directory, or runs (paths or ids)")
    p.add_argument("--out", default=None, help="HTML path (default: <session>/report.html; required when the "
                                                "runs come from several sessions)")
    _add_common(p)

    p = sub.add_parser("plugins", help="installed methods (--hooks: the hooks each plugin implements)")
    p.add_argument("--hooks", action="store_true", help="list every plugin with the hooks it implements")
    _add_common(p)
    p = sub.add_parser("datasets", help="data sets: list, write, inspect")
    _add_common(p)
    dsub = p.add_subparsers(dest="datasets_verb")
    w = dsub.add_parser("write", help="write a generated data set out in an original layout")
    w.add_argument("name")
    w.add_argument("dir")
    w.add_argument("--layout", default="cub", choices=["cub", "coco"])
    w.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="data config override, e.g. data.shapes.train_images=100")
    _add_common(w)
    i = dsub.add_parser("inspect", help="split sizes, vocabulary, caption statistics, problems, a sample sheet")
    i.add_argument("name")
    i.add_argument("--data-dir", default=None)
    i.add_argument("--json", action="store_true")
    _add_common(i)
    c = dsub.add_parser("captions", help="the manifest of the captions a protocol evaluates (CSV)")
    c.add_argument("name")
    c.add_argument("--data-dir", default=None)
    c.add_argument("--preset", required=True, help="protocol preset (paper, smoke, test)")
    c.add_argument("--out", required=True, metavar="FILE", help="CSV to write (replaced)")
    _add_common(c)
    _add_common(sub.add_parser("metrics", help="available metrics"))
    p = sub.add_parser("weights", help="pretrained weight files: where they go, whether they are present")
    _add_common(p)

    p = sub.add_parser("env", help="versions, devices, optional packages and weight files (for a bug report)")
    p.add_argument("--json", action="store_true")
    _add_common(p)

    p = sub.add_parser("inspect", help="a method's modules and parameter counts")
    p.add_argument("--plugins", required=True)
    p.add_argument("--preset", default="paper")
    p.add_argument("--dataset", default="cub")
    p.add_argument("--vocab-size", type=int, default=None, help="default 5450 (CUB captions.pickle)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    _add_common(p)

    p = sub.add_parser("config", help="the resolved config and where each value came from")
    p.add_argument("--plugins", required=True, help="one method")
    p.add_argument("--dataset", default="shapes")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--preset", default=None, help="paper (= protocol paper + the method's paper-<dataset>), smoke, "
                                                  "test (default: smoke on shapes, else paper)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help='{"config": {...}, "sources": {"a.b": source}}')
    _add_common(p)

    p = sub.add_parser("import-checkpoint", help="make a run from released reference weights")
    p.add_argument("method")
    p.add_argument("file")
    p.add_argument("--text-encoder", default=None)
    p.add_argument("--image-encoder", default=None)
    p.add_argument("--discriminators", default=None, metavar="D0,D1,D2",
                   help="the original's netD0.pth,netD1.pth,... (low → high): the run can be resumed with train")
    p.add_argument("--start-epoch", type=int, default=None,
                   help="epoch a resumed run starts at (default N+1 from netG_epoch_N.pth)")
    p.add_argument("--dataset", default="cub")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--preset", default="paper")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    _add_common(p)
    return parser


def _default_preset(preset: Optional[str], dataset: str) -> str:
    return preset or ("smoke" if dataset == "shapes" else "paper")


def main(argv: Optional[Sequence[str]] = None, *, plugins: Plugins | None = None) -> int:
    """Entry point; ``plugins`` lets tests pass a plugin manager with out-of-tree plugins."""
    args = build_parser().parse_args(argv)
    try:
        code = _dispatch(args, plugins)
        from harness.core.distributed import leave_group

        leave_group(wait=True)  # torchrun: every rank has finished before any leaves the process group
        return code
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"harness: {e}" if str(e) else "harness: interrupted; resume with `harness train --resume RUN`",
              file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.contract.plugins import build_plugins
    from harness.core.rundir import results_root

    weights_dir = Path(args.weights_dir) if getattr(args, "weights_dir", None) else None  # a value, not the env
    if args.verb == "env":  # before the plugins are built: a plugin that fails to load is part of the report
        from harness.runs.environment import env_command

        return env_command(args.json, dataclasses.replace(plugins, weights_dir=weights_dir) if plugins else None)
    plugins = dataclasses.replace(plugins or build_plugins(), weights_dir=weights_dir)
    verb = args.verb

    if verb == "plugins":
        if args.hooks:
            from harness.contract.hook_trace import format_hooks

            print(format_hooks(plugins.pm))
            return 0
        for name, info in sorted(plugins.methods().items()):
            print(f"{name:10s} {info.paper}")
        return 0
    if verb == "metrics":
        for name, m in sorted(plugins.metrics().items()):
            w = f"  [weights: {', '.join(m.weights)}]" if m.weights else ""
            print(f"{name:11s} {m.direction:6s} {m.description}{w}")
        return 0
    if verb == "datasets":
        return _datasets(args, plugins)
    if verb == "weights":
        from harness.core.weights import describe_weights

        print(describe_weights(plugins))
        return 0
    if verb == "inspect":
        from harness.runs.inspect import format_inspection, inspect_method

        methods = plugins.select_methods(args.plugins)
        reports = [inspect_method(plugins, m.name, preset=args.preset, dataset=args.dataset,
                                  vocab_size=args.vocab_size, overrides=args.overrides) for m in methods]
        if args.json:
            print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=1))
        else:
            print("\n\n".join(format_inspection(r) for r in reports))
        return 0
    if verb == "table":
        from harness.core.rundir import find_runs, readable_runs, resolve_run
        from harness.reporting.tables import write_table

        root = results_root(args.results_dir)
        if args.all or not args.runs:
            runs = readable_runs(find_runs([root]), plugins)  # a damaged run is skipped with a warning
        else:  # a path (a run, a `run` session, a results root) or a run id under the root
            runs = []
            for a in args.runs:
                named = (Path(a) / "config.yaml").is_file() or not Path(a).exists()
                found = [resolve_run(a, root)] if named else readable_runs(find_runs([a]), plugins)
                if named:
                    found[0].load_config(plugins)  # a run named alone: its broken config is the error
                runs += found
        options = dict(with_paper_numbers=args.with_paper_numbers, columns=[c for c in args.columns.split(",") if c],
                       metrics=[m for m in args.metrics.split(",") if m] or None)
        if args.explain:
            from harness.reporting.tables import build_table, explain_table

            print(explain_table(build_table(plugins, runs, **options)))
            return 0
        text = write_table(plugins, runs, fmt=args.format, out=args.out, caption=args.caption, label=args.label,
                           siunitx=args.latex_siunitx, **options)
        if not args.out:
            print(text)
        else:
            print(args.out)
        return 0
    if verb == "train":
        return _train(args, plugins)
    if verb == "report":
        from harness.reporting.report import report_command

        print(report_command(plugins, args.runs, results_root(args.results_dir, create=False), args.out))
        return 0
    if verb == "config":
        from harness.config.protocol import format_resolution
        from harness.build import resolve_method_config

        methods = plugins.select_methods(args.plugins)
        if len(methods) != 1:
            raise HarnessError(f"config takes one method, got {', '.join(m.name for m in methods)}")
        res = resolve_method_config(plugins, methods[0].name, dataset=args.dataset, data_dir=args.data_dir,
                                    preset=_default_preset(args.preset, args.dataset), overrides=args.overrides)
        print(json.dumps({"config": res.cfg.to_dict(), "sources": res.sources_of_every_key()}, indent=1)
              if args.json else format_resolution(res))
        return 0
    if verb == "run":
        from harness.session import resume_benchmark, run_benchmark

        if args.resume:
            given = [flag for flag, v, default in (
                ("--plugins", args.plugins, None), ("--set", args.overrides, []), ("--dataset", args.dataset, "shapes"),
                ("--data-dir", args.data_dir, None), ("--preset", args.preset, None), ("--seeds", args.seeds, "0"),
                ("--metrics", args.metrics, None), ("--no-eval", args.no_eval, False)) if v != default]
            if given:
                raise HarnessError(f"--resume continues a session with its saved request (session.json); drop "
                                   f"{', '.join(given)}")
            root = results_root(args.results_dir)
            print(resume_benchmark(plugins, _session_path(args.resume, root), root=root))
            return 0
        if not args.plugins:
            raise HarnessError("run needs --plugins METHOD[,METHOD...] (or --resume SESSION)")
        session = run_benchmark(plugins, methods=args.plugins, dataset=args.dataset, data_dir=args.data_dir,
                                preset=_default_preset(args.preset, args.dataset),
                                seeds=[int(s) for s in args.seeds.split(",") if s.strip()],
                                overrides=args.overrides, root=results_root(args.results_dir, create=False),
                                metrics=args.metrics, evaluate=not args.no_eval)
        print(session)
        return 0
    if verb == "evaluate":
        from harness.evaluation.evaluate import evaluate_run
        from harness.core.rundir import resolve_run

        root = results_root(args.results_dir)
        run = resolve_run(args.run, root)
        records = evaluate_run(plugins, run, metrics=args.metrics, num_images=args.num_images, split=args.split,
                               checkpoint=args.checkpoint, save_images=args.save_images, strict=True,
                               rp_encoder=args.rp_encoder, fid_stats=args.fid_stats,
                               is_classifier=args.is_classifier, is_classes=args.is_classes,
                               is_temperature=args.is_temperature, clip_model=args.clip_model, root=root)
        _print_records(records)
        print(run.path)
        return 0
    if verb == "evaluate-images":
        from harness.runs.images import evaluate_images

        run, records = evaluate_images(plugins, args.folder, dataset=args.dataset, preset=args.preset, name=args.name,
                                       data_dir=args.data_dir, metrics=args.metrics, manifest=args.manifest,
                                       allow_fewer=args.allow_fewer, ignore_extra=args.ignore_extra,
                                       rp_encoder=args.rp_encoder, root=results_root(args.results_dir),
                                       device=args.device)
        _print_records(records)
        print(run.path)
        return 0
    if verb == "sample":
        from harness.core.rundir import resolve_run
        from harness.runs.sample import read_captions, sample_sheet

        root = results_root(args.results_dir)
        runs = [resolve_run(r, root) for r in args.runs]
        captions = read_captions(args.caption, args.captions)
        out = sample_sheet(plugins, runs, captions, seed=args.seed, out=args.out, checkpoint=args.checkpoint)
        print(out)
        return 0
    if verb == "import-checkpoint":
        from harness.runs.import_checkpoint import import_checkpoint

        run = import_checkpoint(plugins, args.method, Path(args.file), text_encoder=args.text_encoder,
                                image_encoder=args.image_encoder, dataset=args.dataset, data_dir=args.data_dir,
                                preset=args.preset, overrides=args.overrides, root=results_root(args.results_dir),
                                discriminators=args.discriminators.split(",") if args.discriminators else None,
                                start_epoch=args.start_epoch)
        print(run.path)
        return 0
    raise HarnessError(f"unknown verb {verb}")  # argparse prevents this


def _print_records(records: list[dict]) -> None:
    for r in records:
        val = "skipped: " + str(r["reason"]) if r["status"] != "ok" else (
            f"{r['value']:.4g}" + (f" ± {r['std']:.2g} ({r['std_over']})" if r.get("std") is not None else ""))
        power = f"  (underpowered: {r['underpowered']})" if r.get("underpowered") else ""
        print(f"{r['metric']:11s} {val}{power}")


def _session_path(arg: str, root: Path) -> Path:
    """A SESSION argument: a session directory's path, else its id under the results root (the run-id rule)."""
    from harness.core.rundir import check_run_id

    p = Path(arg)
    return p if p.is_dir() else check_run_id(arg, root)


def _train(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.core.rundir import resolve_run, results_root

    root = results_root(args.results_dir, create=bool(args.resume))  # a new run: its config is checked first
    if args.resume:
        if args.plugins or args.overrides:
            raise HarnessError("--resume continues a run with its saved config; drop --plugins/--set")
        from harness.config.rules import check_config

        run = resolve_run(args.resume, root)
        cfg = run.load_config(plugins)
        check_config(plugins, cfg)  # a config.yaml edited by hand is checked as a new one is
        _train_interruptible(plugins, cfg, run, resume=True, root=root)
        from harness.runs.info import mark_finished
        from harness.core.distributed import on_main

        on_main(lambda: mark_finished(run))
        print(run.path)
        return 0
    if not args.plugins:
        raise HarnessError("train needs --plugins METHOD (or --resume RUN)")
    from harness.build import prepare_config

    methods = plugins.select_methods(args.plugins)
    if len(methods) != 1:
        raise HarnessError(f"train takes one method, got {', '.join(m.name for m in methods)} (use `run` for several)")
    method = methods[0]
    cfg = prepare_config(plugins, method.name, dataset=args.dataset, data_dir=args.data_dir,
                         preset=_default_preset(args.preset, args.dataset), overrides=args.overrides, seed=args.seed)
    from harness.data.validate import check_dataset

    check_dataset(cfg.data, root)  # a data set that cannot be read is refused before the run directory exists
    from harness.core.rundir import RunDir, run_stem
    from harness.runs.info import mark_finished, write_run_info
    from harness.core.distributed import on_main

    def create() -> RunDir:  # torchrun: rank 0 creates the run directory, every rank gets its path
        run = RunDir.create(root, stem=run_stem(method.name, cfg.data.name, cfg.seed))
        run.save_config(cfg)
        write_run_info(plugins, run, cfg)
        return run

    run = on_main(create)
    _train_interruptible(plugins, cfg, run, resume=False, root=root)
    on_main(lambda: mark_finished(run))
    print(run.path)
    return 0


def _train_interruptible(plugins: Plugins, cfg, run: RunDir, *, resume: bool, root: Path) -> None:
    """``harness.session.train_run``; Ctrl-C names the run and the command that continues it."""
    from harness.session import Interrupted, train_run
    from harness.core.checkpoint import resume_hint

    try:
        train_run(plugins, cfg, run, resume=resume, root=root)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: run {run.path}; {resume_hint(run)}") from None


def _datasets(args: argparse.Namespace, plugins: Plugins) -> int:
    if args.datasets_verb is None:
        for name, d in sorted(plugins.datasets().items()):
            print(f"{name:8s} {d.description}")
        return 0
    if args.datasets_verb == "write":
        from harness.data.writer import write_dataset

        out = write_dataset(plugins, args.name, Path(args.dir), layout=args.layout, overrides=args.overrides)
        print(out)
        return 0
    if args.datasets_verb == "inspect":
        from harness.data.inspect import format_report, inspect_dataset
        from harness.core.rundir import results_root

        report = inspect_dataset(plugins, args.name, data_dir=args.data_dir, root=results_root(args.results_dir))
        print(json.dumps(report, indent=1) if args.json else format_report(report))
        return 0 if not report.get("problems") else 1
    if args.datasets_verb == "captions":
        from harness.runs.images import export_captions
        from harness.core.rundir import results_root

        out, n = export_captions(plugins, args.name, args.preset, args.out, data_dir=args.data_dir,
                                 root=results_root(args.results_dir))
        print(f"{out} ({n} captions)")
        return 0
    raise HarnessError(f"unknown datasets verb {args.datasets_verb}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
