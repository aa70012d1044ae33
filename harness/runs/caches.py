"""``harness cache``: list the cache entries of a results root (kind, key, size, when built, what from) and remove
them (``harness.core.cache`` owns the layout). Runs keep their own copy of the pretraining stages they used
(``<run>/pretrained/``), so removing an entry never breaks a run; the next run that needs it builds it again."""
from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any, Optional

from harness.core.cache import CacheEntry, list_entries, remove_entry
from harness.core.rundir import results_root
from harness.util.errors import HarnessError

if TYPE_CHECKING:  # type hints only
    from harness.contract.plugins import Plugins


def format_size(n: int) -> str:
    """Bytes as ``512 B``, ``3.4 KiB``, ``12.0 MiB``, ``1.2 GiB``."""
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"


def _files_text(files: Any) -> str:
    if not isinstance(files, dict):
        return ""
    how = "contents" if files.get("strict") else "sizes and times"
    digest = files.get("files") or files.get("all_files") or ""
    count = f"{files['count']} files" if "count" in files else "every file of the directory"
    return f"{count} ({how}) {str(digest)[:12]}"


def built_from(description: Any) -> str:
    """One line saying what an entry was built from, read from its ``key.json``: the data set, its directory, split
    and file digest for entries built from data; the imported files' sha256; else the description's fields."""
    if not isinstance(description, dict):
        return "(key.json unreadable)"
    d = description
    data = d.get("data") if isinstance(d.get("data"), dict) else {}
    parts = [str(d["stage"])] if d.get("stage") else []
    name = data.get("name") or d.get("dataset")
    if name:
        parts.append(f"{name} {data.get('data_dir') or d.get('data_dir') or '(generated)'}")
    if d.get("split"):
        parts.append(f"split {d['split']}")
    files = _files_text(data.get("files") or d.get("files"))
    if files:
        parts.append(files)
    elif isinstance(d.get("files"), str):  # data-validation: the whole directory's listing
        parts.append(f"every file of the directory (sizes and times) {d['files'][:12]}")
    if isinstance(d.get("imported"), dict):
        parts.append("imported " + ", ".join(f"{k} sha256 {str(v)[:12]}" for k, v in d["imported"].items()))
    if d.get("text_sha256"):
        parts.append(f"caption files sha256 {str(d['text_sha256'])[:12]}")
    if not parts:
        text = json.dumps(d, sort_keys=True, default=str)
        parts.append(text if len(text) <= 100 else text[:97] + "...")
    return "; ".join(parts)


def format_entries(entries: list[CacheEntry]) -> str:
    """One line per entry: KIND/KEY, size, build time, what it was built from; then the total."""
    if not entries:
        return "no cache entries"
    width = max(len(e.name) for e in entries)
    lines = [f"{e.name:{width}s}  {format_size(e.size):>10s}  "
             f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(e.created))}  {built_from(e.description)}"
             for e in entries]
    lines.append(f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}, "
                 f"{format_size(sum(e.size for e in entries))}")
    return "\n".join(lines)


def select_entries(entries: list[CacheEntry], names: list[str], kind: Optional[str], every: bool) -> list[CacheEntry]:
    """The entries ``harness cache remove`` names (KIND/KEY, ``--kind``, ``--all``); one line naming what exists
    when a name or kind is unknown."""
    if every:
        return entries
    if kind:
        chosen = [e for e in entries if e.kind == kind]
        if not chosen:
            kinds = sorted({e.kind for e in entries})
            raise HarnessError(f"no cache entries of kind {kind!r}; kinds with entries: {', '.join(kinds) or 'none'}")
        return chosen
    by_name = {e.name: e for e in entries}
    unknown = [n for n in names if n.strip("/") not in by_name]
    if unknown:
        shown = ", ".join(list(by_name)[:5]) + (f" (and {len(by_name) - 5} more)" if len(by_name) > 5 else "")
        raise HarnessError(f"no cache entry {unknown[0]!r}; `harness cache list` shows them (entries: "
                           f"{shown or 'none'})")
    return [by_name[n.strip("/")] for n in names]


def cmd_cache(args: argparse.Namespace, plugins: Optional[Plugins] = None) -> int:
    """``harness cache list [--kind K] [--json]`` and ``harness cache remove KIND/KEY... | --kind K | --all``."""
    root = results_root(args.results_dir, create=False)
    entries = list_entries(root)
    if args.cache_verb == "list":
        shown = [e for e in entries if not args.kind or e.kind == args.kind]
        if args.json:
            print(json.dumps([{"kind": e.kind, "key": e.key, "path": str(e.path), "size": e.size,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(e.created)),
                               "built_from": e.description} for e in shown], indent=1, default=str))
        else:
            print(format_entries(shown))
        return 0
    if not (args.entries or args.kind or args.all):
        raise HarnessError("cache remove needs KIND/KEY..., --kind KIND or --all")
    chosen = select_entries(entries, args.entries, args.kind, args.all)
    for e in chosen:
        remove_entry(e)
        print(f"removed {e.name} ({format_size(e.size)})")
    return 0
