"""The command line: parse, then call. Each verb is a parser (its options) registered with its handler
(``set_defaults(func=cmd_<verb>)``); a handler turns the parsed options into one call of the module that does
the work and prints what it returns. ``harness --help`` and ``harness VERB --help`` list the options; the
README's "Commands" section shows them in use.

A new verb is two functions: ``_<verb>(sub)``, which adds the verb's parser with ``_verb`` (its handler
registered there) and its options and returns it, listed in ``VERBS``; and ``cmd_<verb>(args, plugins) -> int``.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional, Sequence, TYPE_CHECKING

from harness.util.atomic import check_target, os_error_line
from harness.util.errors import HarnessError
from harness.util.interrupt import sigterm_as_ctrl_c, was_terminated

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins
    from harness.contract.types import MetricOption
    from harness.evaluation.metrics.interface import EvalOptions

FORCE = "replace a symbolic link at --out (by the file itself; the file it points to is left alone)"
METRIC_OPTION = "metric_option:"  # the namespace prefix of the metrics' own options (not an identifier: no clash)


# ------------------------------------------------------------------------------------------------------
# Options several verbs share
# ------------------------------------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--results-dir", default=None, help="results root (default $HARNESS_RESULTS or ./results)")
    p.add_argument("--weights-dir", default=None, help="where pretrained weight files are looked for first")
    return p


def _verb(sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace, Plugins], int],
          help: str) -> argparse.ArgumentParser:
    """The parser of verb ``name`` (with --results-dir and --weights-dir), calling ``func`` once parsed."""
    p = sub.add_parser(name, help=help, parents=[_common()])
    p.set_defaults(func=func)
    return p


def _handler(module: str, name: str) -> Callable[[argparse.Namespace, Plugins], int]:
    """The verb handler ``module.name``, imported when the verb runs (not at start-up)."""
    return lambda args, plugins: getattr(importlib.import_module(module), name)(args, plugins)


def _add_method_config(p: argparse.ArgumentParser, *, seeds: bool, required: bool = False) -> None:
    """--plugins, the config choice (``_add_config_choice``) and --seed (one run) or --seeds (a session)."""
    p.add_argument("--plugins", default=None, required=required, help="method name(s), comma-separated")
    _add_config_choice(p)
    if seeds:
        p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    else:
        p.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")


def _add_config_choice(p: argparse.ArgumentParser, dataset: str = "shapes", preset: Optional[str] = None) -> None:
    p.add_argument("--dataset", default=dataset, help=f"data set name (default: {dataset}, built in)")
    p.add_argument("--data-dir", default=None, help="data set directory (cub, coco)")
    p.add_argument("--preset", default=preset, help="preset of the method's defaults.yaml: paper (= paper-<dataset>), "
                                                    "smoke, test (default: "
                                                    + (preset or "smoke on shapes, else paper") + ")")
    _add_overrides(p)


def _add_overrides(p: argparse.ArgumentParser, what: str = "config") -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"{what} override, e.g. train.batch_size=16 (repeatable)")


def _default_preset(preset: Optional[str], dataset: str) -> str:
    return preset or ("smoke" if dataset == "shapes" else "paper")


def _one_method(plugins: Plugins, names: Optional[str], verb: str, hint: str = "") -> str:
    methods = plugins.select_methods(names or "")
    if len(methods) != 1:
        raise HarnessError(f"{verb} takes one method, got {', '.join(m.name for m in methods)}{hint}")
    return methods[0].name


def _add_metric_options(p: argparse.ArgumentParser, options: Sequence[MetricOption]) -> None:
    """Every metric's own options (``MetricInfo.options``), each parsed into ``metric_option:<name>`` (read back by
    ``_eval_options``)."""
    group = p.add_argument_group("metric options", "options the metrics declare (a metric not asked for "
                                                   "ignores its options)")
    for o in options:
        try:
            group.add_argument(o.flag, dest=f"{METRIC_OPTION}{o.name}", type=o.type, default=None,
                               metavar=o.metavar or o.name.upper(), help=o.help)
        except argparse.ArgumentError:
            raise HarnessError(f"metric option {o.flag} clashes with an option of `harness {p.prog.split()[-1]}`; "
                               f"the metric that declares it needs another name") from None


def _eval_options(args: argparse.Namespace, **asked: object) -> EvalOptions:
    """The evaluation options of a verb: ``asked`` (metrics, num_images, ...) and the metric options given."""
    from harness.evaluation.metrics.interface import EvalOptions

    given = {k[len(METRIC_OPTION):]: v for k, v in vars(args).items() if k.startswith(METRIC_OPTION) and v is not None}
    return EvalOptions(metric_options=given, **asked)


def _root(args: argparse.Namespace, create: bool = True) -> Path:
    from harness.core.rundir import results_root

    return results_root(args.results_dir, create=create)


# ------------------------------------------------------------------------------------------------------
# The verbs
# ------------------------------------------------------------------------------------------------------
def _run(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "run", cmd_run, "pretrain → train → evaluate → table, for each method and seed")
    _add_method_config(p, seeds=True)
    p.add_argument("--metrics", default=None, help="metrics to compute (default: every one that applies)")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--resume", default=None, metavar="SESSION",
                   help="continue an interrupted session: finished runs kept, the interrupted one resumed, "
                        "the rest run")
    return p


def cmd_run(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.core.rundir import session_path
    from harness.session import SessionRequest, resume_benchmark, run_benchmark, session_done

    evaluation = _eval_options(args, metrics=args.metrics)
    if args.resume:
        given = [flag for flag, v, default in (
            ("--plugins", args.plugins, None), ("--set", args.overrides, []), ("--dataset", args.dataset, "shapes"),
            ("--data-dir", args.data_dir, None), ("--preset", args.preset, None), ("--seeds", args.seeds, "0"),
            ("--metrics", args.metrics, None), ("--no-eval", args.no_eval, False)) if v != default]
        given += ["--" + name.replace("_", "-") for name in evaluation.metric_options]
        if given:
            raise HarnessError(f"--resume continues a session with its saved request (session.json); drop "
                               f"{', '.join(given)}")
        root = _root(args)
        return session_done(resume_benchmark(plugins, session_path(args.resume, root), root=root))
    if not args.plugins:
        raise HarnessError("run needs --plugins METHOD[,METHOD...] (or --resume SESSION)")
    request = SessionRequest(methods=args.plugins, dataset=args.dataset, data_dir=args.data_dir,
                             preset=_default_preset(args.preset, args.dataset),
                             seeds=[int(s) for s in args.seeds.split(",") if s.strip()], overrides=args.overrides,
                             metrics=args.metrics, evaluate=not args.no_eval,
                             metric_options=dict(evaluation.metric_options))
    return session_done(run_benchmark(plugins, request, root=_root(args, create=False)))


def _train(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "train", cmd_train, "train one method (or resume a run)")
    _add_method_config(p, seeds=False)
    p.add_argument("--resume", default=None, metavar="RUN", help="continue a run from its last checkpoint")
    return p


def cmd_train(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.session import train_new, train_resumed

    if args.resume:
        if args.plugins or args.overrides:
            raise HarnessError("--resume continues a run with its saved config; drop --plugins/--set")
        from harness.core.rundir import resolve_run

        root = _root(args)
        print(train_resumed(plugins, resolve_run(args.resume, root), root).path)
        return 0
    if not args.plugins:
        raise HarnessError("train needs --plugins METHOD (or --resume RUN)")
    from harness.build import prepare_config

    method = _one_method(plugins, args.plugins, "train", " (use `run` for several)")
    cfg = prepare_config(plugins, method, dataset=args.dataset, data_dir=args.data_dir,
                         preset=_default_preset(args.preset, args.dataset), overrides=args.overrides, seed=args.seed)
    print(train_new(plugins, cfg, _root(args, create=False)).path)  # the config is checked before any directory
    return 0


def _evaluate(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "evaluate", cmd_evaluate, "evaluate a run's EMA generator")
    p.add_argument("run")
    p.add_argument("--metrics", default=None, help="comma-separated metric ids (default: every one that applies)")
    p.add_argument("--num-images", type=int, default=None, help="images to generate (default: eval.num_images)")
    p.add_argument("--split", default=None, help="evaluation split (default: eval.split)")
    p.add_argument("--checkpoint", type=int, default=None, metavar="STEP", help="checkpoint step (default: latest)")
    p.add_argument("--save-images", default=None, metavar="DIR", help="also save the images and their manifest")
    return p


def cmd_evaluate(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.core.rundir import resolve_run
    from harness.evaluation.evaluate import evaluate_run, record_lines

    root = _root(args)
    run = resolve_run(args.run, root)
    options = _eval_options(args, metrics=args.metrics, num_images=args.num_images, split=args.split,
                            save_images=args.save_images)
    records = evaluate_run(plugins, run, options, strict=True, root=root, step=args.checkpoint)
    print(*record_lines(records), run.path, sep="\n")
    return 0


def _evaluate_images(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "evaluate-images", cmd_evaluate_images, "evaluate a folder of images (any model's) under a protocol")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--dataset", required=True, help="data set of the protocol")
    p.add_argument("--data-dir", default=None, help="data set directory (cub, coco)")
    p.add_argument("--preset", required=True, help="protocol preset of the data set (paper, smoke, test)")
    p.add_argument("--name", required=True, metavar="LABEL", help="the table row's label (not a method's name)")
    p.add_argument("--metrics", default=None, help="comma-separated metric ids (default: every one that applies)")
    p.add_argument("--manifest", default=None, metavar="FILE", help="default DIR/manifest.csv")
    p.add_argument("--allow-fewer", action="store_true",
                   help="evaluate fewer images than the protocol's count (records marked underpowered)")
    p.add_argument("--ignore-extra", action="store_true", help="ignore images the manifest does not list")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default auto)")
    return p  # its --rp-encoder (a metric option) also replaces the protocol's DAMSM for rp and rp_real


def cmd_evaluate_images(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.evaluation.evaluate import record_lines
    from harness.runs.images import ImageFolder, evaluate_images

    images = ImageFolder(args.folder, name=args.name, dataset=args.dataset, preset=args.preset, data_dir=args.data_dir,
                         manifest=args.manifest, allow_fewer=args.allow_fewer, ignore_extra=args.ignore_extra,
                         device=args.device)
    run, records = evaluate_images(plugins, images, _eval_options(args, metrics=args.metrics), root=_root(args))
    print(*record_lines(records), run.path, sep="\n")
    return 0


def _sample(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "sample", cmd_sample, "draw a sample sheet (several runs side by side)")
    p.add_argument("runs", nargs="+")
    p.add_argument("--caption", action="append", default=[], help="a caption (repeatable)")
    p.add_argument("--captions", default=None, metavar="FILE", help="one caption per line")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--out", default=None, help="PNG path (default: samples/ of the first run)")
    p.add_argument("--force", action="store_true", help=FORCE)
    p.add_argument("--checkpoint", default=None, help="checkpoint step (default: latest)")
    return p


def cmd_sample(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.core.rundir import resolve_run
    from harness.runs.sample import read_captions, sample_sheet

    root = _root(args)
    runs = [resolve_run(r, root) for r in args.runs]
    captions = read_captions(args.caption, args.captions)
    print(sample_sheet(plugins, runs, captions, seed=args.seed, out=args.out, checkpoint=args.checkpoint,
                       force=args.force))
    return 0


def _table(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "table", cmd_table, "the results table (Markdown, LaTeX, CSV)")
    p.add_argument("runs", nargs="*", help="runs (paths or ids), sessions or results roots (default: every run)")
    p.add_argument("--all", action="store_true", help="every run under the results root")
    p.add_argument("--format", default="markdown", choices=["markdown", "latex", "csv"])
    p.add_argument("--out", default=None, help="write the table there (and print its path)")
    p.add_argument("--force", action="store_true", help=FORCE)
    p.add_argument("--with-paper-numbers", action="store_true", help="the published numbers as rows")
    p.add_argument("--columns", default="", help="extra columns: params,speed,probe_attributes")
    p.add_argument("--metrics", default="", help="metric columns to show, in this order, e.g. is,fid,rp "
                   "(default: every metric with a computed value)")
    p.add_argument("--caption", default=None, help="LaTeX caption (the protocol sentence follows it)")
    p.add_argument("--label", default=None, help="LaTeX label (default tab:results)")
    p.add_argument("--latex-siunitx", action="store_true", help="align numbers on the decimal point (siunitx S)")
    p.add_argument("--explain", action="store_true",
                   help="print the full reasons of what was not computed and each column's protocol")
    return p


def cmd_table(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.core.rundir import select_runs, warn
    from harness.reporting.table_render import latex_label_notice
    from harness.reporting.tables import TableOptions, build_table, explain_table, write_table
    from harness.util.atomic import write_file

    runs = select_runs(plugins, [] if args.all else args.runs, _root(args))
    if args.format == "latex" and (notice := latex_label_notice(args.label)):
        warn(notice)
    options = TableOptions(with_paper_numbers=args.with_paper_numbers,
                           columns=tuple(c for c in args.columns.split(",") if c),
                           metrics=tuple(m for m in args.metrics.split(",") if m) or None,
                           caption=args.caption, label=args.label, siunitx=args.latex_siunitx)
    if args.explain:
        print(explain_table(build_table(plugins, runs, options)))
        return 0
    text = write_table(plugins, runs, options, fmt=args.format)
    if args.out:
        write_file(Path(args.out), text, force=args.force)
    print(args.out or text)
    return 0


def _report(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "report", cmd_report, "one self-contained HTML page: table, sheets, curves, runs")
    p.add_argument("runs", nargs="+", metavar="SESSION | RUN", help="a session (path or id), or runs (paths or ids)")
    p.add_argument("--out", default=None, help="HTML path (default: report.html beside the runs; required when "
                                                "they lie in several directories)")
    p.add_argument("--force", action="store_true", help=FORCE)
    return p


def cmd_report(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.reporting.report import report_command

    print(report_command(plugins, args.runs, _root(args, create=False), args.out, force=args.force))
    return 0


def _plugins(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "plugins", cmd_plugins, "installed methods (--hooks: the hooks each plugin implements)")
    p.add_argument("--hooks", action="store_true", help="list every plugin with the hooks it implements")
    return p


def cmd_plugins(args: argparse.Namespace, plugins: Plugins) -> int:
    if args.hooks:
        from harness.contract.hook_trace import format_hooks

        print(format_hooks(plugins.pm))
        return 0
    for name, info in sorted(plugins.methods().items()):
        print(f"{name:10s} {info.paper}")
    for b in plugins.broken:
        print(f"broken     {b.source} of {b.distribution}: {b.reason}")
    return 0


def _datasets(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "datasets", cmd_datasets, "data sets: list, write, inspect")
    dsub = p.add_subparsers(dest="datasets_verb", metavar="{write,inspect,captions}")
    w = _verb(dsub, "write", cmd_datasets_write, "write a generated data set out in an original layout")
    w.add_argument("name")
    w.add_argument("dir")
    w.add_argument("--layout", default="cub", choices=["cub", "coco"])
    _add_overrides(w, "data config")
    i = _verb(dsub, "inspect", cmd_datasets_inspect,
              "split sizes, vocabulary, caption statistics, problems, a sample sheet")
    i.add_argument("name")
    i.add_argument("--data-dir", default=None, help="data set directory (cub, coco)")
    i.add_argument("--json", action="store_true")
    c = _verb(dsub, "captions", cmd_datasets_captions, "the manifest of the captions a protocol evaluates (CSV)")
    c.add_argument("name")
    c.add_argument("--data-dir", default=None, help="data set directory (cub, coco)")
    c.add_argument("--preset", required=True, help="protocol preset (paper, smoke, test)")
    c.add_argument("--out", required=True, metavar="FILE", help="CSV to write (replaced)")
    c.add_argument("--force", action="store_true", help=FORCE)
    return p


def cmd_datasets(args: argparse.Namespace, plugins: Plugins) -> int:
    for name, d in sorted(plugins.datasets().items()):
        print(f"{name:8s} {d.description}")
    return 0


def cmd_datasets_write(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.data.writer import write_dataset

    print(write_dataset(plugins, args.name, Path(args.dir), layout=args.layout, overrides=args.overrides))
    return 0


def cmd_datasets_inspect(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.data.inspect import format_report, inspect_dataset

    report = inspect_dataset(plugins, args.name, data_dir=args.data_dir, root=_root(args))
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0 if not report.get("problems") else 1


def cmd_datasets_captions(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.runs.images import export_captions

    out, n = export_captions(plugins, args.name, args.preset, args.out, data_dir=args.data_dir, root=_root(args),
                             force=args.force)
    print(f"{out} ({n} captions)")
    return 0


def _metrics(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return _verb(sub, "metrics", cmd_metrics, "available metrics")


def cmd_metrics(args: argparse.Namespace, plugins: Plugins) -> int:
    for name, m in sorted(plugins.metrics().items()):
        w = f"  [weights: {', '.join(m.weights)}]" if m.weights else ""
        print(f"{name:11s} {m.direction:6s} {m.description}{w}")
    return 0


def _weights(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return _verb(sub, "weights", cmd_weights, "pretrained weight files: where they go, whether they are present")


def cmd_weights(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.core.weights import describe_weights

    print(describe_weights(plugins))
    return 0


def _fetch(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "fetch", _handler("harness.runs.fetch", "cmd_fetch"),
              "download weight files (by name) and data sets (cub, coco), verified")
    p.add_argument("names", nargs="*", metavar="NAME", help="weight files (`harness weights`) and data sets")
    p.add_argument("--all-weights", action="store_true", help="every weight file `harness weights` lists")
    p.add_argument("--data-dir", default=None, help="where a data set's layout is unpacked")
    p.add_argument("--offline", action="store_true", help="download nothing (as HARNESS_OFFLINE=1)")
    p.add_argument("--mirror", default=None, metavar="URL", help="fetch from URL/<host>/<path> (HARNESS_MIRROR)")
    return p


def _cache(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "cache", _handler("harness.runs.caches", "cmd_cache"),
              "list or remove the cache entries (DAMSM, real statistics, ...) of a results root")
    p.add_argument("cache_verb", choices=["list", "remove"])
    p.add_argument("entries", nargs="*", metavar="KIND/KEY", help="remove: the entries (as `cache list` names them)")
    p.add_argument("--kind", default=None, help="only entries of this kind (damsm, real-features, ...)")
    p.add_argument("--all", action="store_true", help="remove: every entry")
    p.add_argument("--json", action="store_true", help="list: as JSON, with each entry's whole key")
    return p


def _env(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "env", cmd_env, "versions, devices, optional packages and weight files (for a bug report)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(plugins_optional=True)  # a plugin that fails to load is part of the report
    return p


def cmd_env(args: argparse.Namespace, plugins: Optional[Plugins]) -> int:
    from harness.runs.environment import env_command

    return env_command(args.json, plugins)


def _inspect(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "inspect", cmd_inspect, "a method's modules and parameter counts")
    p.add_argument("--plugins", required=True, help="method name(s), comma-separated")
    p.add_argument("--preset", default="paper", help="the method's preset (default paper)")
    p.add_argument("--dataset", default="cub", help="data set name (default cub)")
    p.add_argument("--vocab-size", type=int, default=None, help="default 5450 (CUB captions.pickle)")
    _add_overrides(p)
    p.add_argument("--json", action="store_true")
    return p


def cmd_inspect(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.runs.inspect import format_inspection, inspect_method

    reports = [inspect_method(plugins, m.name, preset=args.preset, dataset=args.dataset, vocab_size=args.vocab_size,
                              overrides=args.overrides) for m in plugins.select_methods(args.plugins)]
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=1))
    else:
        print("\n\n".join(format_inspection(r) for r in reports))
    return 0


def _config(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "config", cmd_config, "the resolved config and where each value came from")
    _add_method_config(p, seeds=False, required=True)
    p.add_argument("--json", action="store_true", help='{"config": {...}, "sources": {"a.b": source}}')
    return p


def cmd_config(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.build import resolve_method_config
    from harness.config.protocol import format_resolution

    res = resolve_method_config(plugins, _one_method(plugins, args.plugins, "config"), dataset=args.dataset,
                                data_dir=args.data_dir, preset=_default_preset(args.preset, args.dataset),
                                overrides=args.overrides, seed=args.seed)
    print(json.dumps({"config": res.cfg.to_dict(), "sources": res.sources_of_every_key()}, indent=1)
          if args.json else format_resolution(res))
    return 0


def _import_checkpoint(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = _verb(sub, "import-checkpoint", cmd_import_checkpoint, "make a run from released reference weights")
    p.add_argument("method")
    p.add_argument("file", help="the original's generator file (netG_epoch_N.pth) or one-file checkpoint (DF-GAN: "
                                "state_epoch_N.pth)")
    p.add_argument("--text-encoder", default=None, help="the original's DAMSM text encoder file")
    p.add_argument("--image-encoder", default=None, help="the original's DAMSM image encoder file")
    p.add_argument("--discriminators", default=None, metavar="D0,D1,D2",
                   help="the original's netD0.pth,netD1.pth,... (low → high): the run can be resumed with train")
    p.add_argument("--start-epoch", type=int, default=None,
                   help="epoch a resumed run starts at (default N+1 from netG_epoch_N.pth, or the epoch a "
                        "one-file checkpoint records)")
    _add_config_choice(p, dataset="cub", preset="paper")
    return p


def cmd_import_checkpoint(args: argparse.Namespace, plugins: Plugins) -> int:
    from harness.runs.import_checkpoint import ReleasedFiles, import_checkpoint

    files = ReleasedFiles(args.file, text_encoder=args.text_encoder, image_encoder=args.image_encoder,
                          discriminators=args.discriminators.split(",") if args.discriminators else None,
                          start_epoch=args.start_epoch)
    run = import_checkpoint(plugins, args.method, files, dataset=args.dataset, data_dir=args.data_dir,
                            preset=args.preset, overrides=args.overrides, root=_root(args))
    print(run.path)
    return 0


VERBS = (_run, _train, _evaluate, _evaluate_images, _sample, _table, _report, _plugins, _datasets, _metrics,
         _weights, _fetch, _cache, _env, _inspect, _config, _import_checkpoint)
TAKE_METRIC_OPTIONS = (cmd_run, cmd_evaluate, cmd_evaluate_images)  # the verbs that evaluate


def build_parser(metric_options: Optional[Sequence[MetricOption]] = None) -> argparse.ArgumentParser:
    """The parser of every verb; ``metric_options``: those of the installed metrics (default: the built-in
    metrics', ``Plugins.metric_options``)."""
    if metric_options is None:
        from harness.evaluation.metrics.registry import harness_metrics

        metric_options = list({o.name: o for m in harness_metrics() for o in m.options}.values())
    parser = argparse.ArgumentParser(prog="harness", description="Benchmark harness for text-to-image GANs.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in VERBS:
        p = add(sub)
        if p.get_default("func") in TAKE_METRIC_OPTIONS:
            _add_metric_options(p, metric_options)
    return parser


# ------------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None, *, plugins: Plugins | None = None) -> int:
    """Parse, then call the verb's handler; ``plugins`` lets tests pass a plugin manager with out-of-tree plugins.
    Errors the user can fix print one line (exit 2); a closed output pipe ends quietly (exit 141)."""
    try:
        plugins, failure = _load_plugins(plugins)
        parser = build_parser(list(plugins.metric_options().values()) if plugins is not None else None)
    except HarnessError as e:  # e.g. two metrics declaring one option with different types
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    with sigterm_as_ctrl_c():
        try:
            if plugins is None and not getattr(args, "plugins_optional", False):
                raise failure  # the verb needs the plugins: what stopped them from loading is the error
            if getattr(args, "force", None) is not None and args.out:  # a verb writing --out: checked before any work
                check_target(args.out, force=args.force)
            if plugins is not None:
                plugins = dataclasses.replace(plugins, weights_dir=Path(args.weights_dir) if args.weights_dir else None)
            code = args.func(args, plugins)
            sys.stdout.flush()  # a closed pipe fails here, inside the handler's try, not at interpreter exit
            from harness.core.distributed import leave_group

            leave_group(wait=True)  # torchrun: every rank has finished before any leaves the process group
            return code
        except HarnessError as e:
            print(f"harness: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:
            print(f"harness: {e}" if str(e) else "harness: interrupted; resume with `harness train --resume RUN`",
                  file=sys.stderr)
            return 143 if was_terminated(e) else 130
        except BrokenPipeError:  # `harness table | head -1`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit flush writes nowhere
            return 141
        except OSError as e:  # a file system failure no writer mapped: one line, the traceback with HARNESS_DEBUG=1
            if os.environ.get("HARNESS_DEBUG") == "1":
                traceback.print_exc()
            print(f"harness: error: {os_error_line(e)}", file=sys.stderr)
            return 1


def _load_plugins(given: Optional[Plugins]) -> tuple[Optional[Plugins], Optional[BaseException]]:
    """The plugin set (``given``, else the installed one), or None and what stopped it from loading: ``env``
    reports that failure, every other verb raises it once the command line is parsed."""
    if given is not None:
        return given, None
    from harness.contract.plugins import build_plugins

    try:
        return build_plugins(), None
    except Exception as e:  # noqa: BLE001 (env reports whatever a plugin raised while loading)
        return None, e


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
