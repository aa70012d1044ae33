"""``harness fetch NAME... [--all-weights] [--data-dir DIR] [--offline] [--mirror URL]``.

A NAME is a weight file ``harness weights`` lists (downloaded into the first weight search directory, see
``harness.core.weights``) or a data set that declares downloads (``cub``, ``coco``: its archives are fetched into
``DIR/.harness-fetch/``, checked, unpacked into DIR in the layout its loader reads, then removed; ``datasets
inspect`` runs at the end and prints its summary). Every name is checked before anything is downloaded. An
archive already unpacked (``DIR/.harness-fetch/<archive>.done``) is not fetched again, nor a weight file that
passes its full check. A name that fails does not stop the others: the failures are named together, in one
line, at the end.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from harness.contract.types import DatasetInfo, Download
from harness.core.archive import unpack
from harness.core.fetch import OFFLINE_ENV, FetchSettings, download
from harness.core.rundir import atomic_write_text, results_root
from harness.core.weights import fetch_weight
from harness.data.inspect import format_report, inspect_dataset
from harness.util.errors import FetchError, HarnessError, UnknownNameError, one_line

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins

STASH = ".harness-fetch"  # inside the data directory: archives while they are fetched, and what was unpacked


def cmd_fetch(args: argparse.Namespace, plugins: Plugins) -> int:
    """The ``harness fetch`` verb; 0 when everything is in place (and every fetched data set inspects clean)."""
    settings = FetchSettings.from_env(offline=True if args.offline else None, mirror=args.mirror)
    weights, datasets = plugins.weight_files(), plugins.datasets()
    names = list(dict.fromkeys([*args.names, *(sorted(weights) if args.all_weights else [])]))
    fetchable = sorted([*weights, *(n for n, d in datasets.items() if d.downloads)])
    if not names:
        raise HarnessError(f"harness fetch: name what to fetch ({', '.join(fetchable)}) or pass --all-weights")
    for name in names:  # every name checked before anything is downloaded
        if name in weights:
            continue
        if name not in datasets or not datasets[name].downloads:
            raise UnknownNameError("weight file or data set to fetch", name, fetchable)
        if args.data_dir is None:
            raise HarnessError(f"harness fetch {name} needs --data-dir DIR (where its layout is unpacked)")
    code = 0
    failed: dict[str, HarnessError] = {}
    for name in names:
        try:
            if name in weights:
                w = weights[name]
                if not w.downloads and name not in args.names:  # --all-weights: said, not fatal
                    print(f"{name}: no download declared; `harness weights` says where it goes")
                    continue
                print(fetch_weight(w, settings, plugins.weights_dir))
            else:
                code |= fetch_dataset(plugins, datasets[name], Path(args.data_dir).expanduser(), settings,
                                      results_root(args.results_dir))
        except HarnessError as e:  # the other names are still fetched; every failure is named at the end
            if len(names) == 1:
                raise
            failed[name] = e
    if failed:
        raise FetchError(f"harness fetch: {len(failed)} of {len(names)} failed: "
                         + "; ".join(f"{name}: {one_line(e)}" for name, e in failed.items()))
    return code


def fetch_dataset(plugins: Plugins, info: DatasetInfo, data_dir: Path, settings: FetchSettings, root: Path) -> int:
    """Fetch and unpack every archive ``info`` declares into ``data_dir``, then print ``datasets inspect``'s
    summary; 0 when it finds no problem, else 1."""
    stash = data_dir / STASH
    if settings.offline:  # every archive still to get, named in one line (each one put in place is then used)
        missing = [d for d in info.downloads
                   if not (stash / f"{d.filename}.done").is_file() and not (stash / d.filename).is_file()]
        if missing:
            names = ", ".join(f"{d.filename} (from {d.urls[0]})" for d in missing)
            raise FetchError(f"{info.name}: not downloaded: offline ({OFFLINE_ENV}=1 or --offline); put {names} "
                             f"into {stash} by hand, then run this again")
    for src in info.downloads:
        done = stash / f"{src.filename}.done"
        if done.is_file():
            print(f"{info.name}: {src.filename} already unpacked into {data_dir}")
            continue
        result = download(src, stash, settings, label=f"{info.name} {src.filename}")
        files = _unpack_all(result.path, src, data_dir)
        atomic_write_text(done, json.dumps({"url": result.url, "digest": src.digest, "status": result.status,
                                            "files": files}) + "\n")
        result.path.unlink()
        check = src.digest if result.status == "verified" else "unverified: no published digest"
        print(f"{info.name}: {src.filename} ({check}): {files} files unpacked into {data_dir}")
    report = inspect_dataset(plugins, info.name, data_dir=str(data_dir), root=root)
    print(format_report(report))
    return 0 if not report.get("problems") else 1


def _unpack_all(archive: Path, src: Download, data_dir: Path) -> int:
    """Unpack ``archive`` and then the archives it holds (``src.inner``, removed after); files written."""
    files = unpack(archive, data_dir, strip=src.strip, into=src.into)
    for inner in src.inner:
        path = data_dir / inner
        if not path.is_file():
            raise FetchError(f"{archive.name}: holds no {inner} (expected after unpacking into {data_dir})")
        files += unpack(path, path.parent) - 1  # the inner archive itself is not kept
        path.unlink()
    return files
