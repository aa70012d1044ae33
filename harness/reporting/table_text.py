"""Short texts for the Markdown and LaTeX results tables: no file-system paths, URLs or search paths.

A skip reason in a record is written for the person at the machine ("weight file 'inception_tf_fid' (...) is
missing: put ... (from github.com/...) into /root/.cache/... (or pass --weights-dir DIR; searched: ...)").
A table that goes into a paper or a README says the same in a few words ("Inception weights not installed");
the full text stays in the CSV's ``<metric>_note`` column and in ``harness table --explain``.
"""
from __future__ import annotations

import re
from typing import Mapping

# A URL's characters after its start: brackets only in pairs, so "(see github.com/o/r)" keeps its ")"
_URL_REST = r"(?:[^\s()]|\([^\s()]*\))"
# scheme://..., www...., or host.tld/... (the TLD alphabetic, so a DOI such as 10.19678/j.issn is kept)
_URL = re.compile(rf"\b[a-z][a-z0-9+.-]*://{_URL_REST}+|\bwww\.{_URL_REST}+"
                  rf"|\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}}(?::\d+)?/{_URL_REST}*")
# /abs/path, ~/x, ~user/x, ./x, ../x, $HOME/x, ${VAR}/x, C:\x, \\server\x (a "/" inside a word, as in I/O or
# owner/repo, is not a path)
_PATH = re.compile(r"(?<![\w.])(?:~[\w.-]*|\.{1,2}|\$\{?\w+\}?|[A-Za-z]:)?[/\\][^\s,;()'\"]*")
_WEIGHT_FILE = re.compile(r"weight file '([^']+)'")
WEIGHTS_HINT = "see `harness weights`"
MAX_WORDS = 10


def scrub(text: str) -> str:
    """``text`` without URLs, file-system paths and what they leave behind (empty brackets, stray separators)."""
    t = _URL.sub("", str(text))
    t = _PATH.sub("", t)
    previous = None
    while previous != t:
        previous = t
        t = re.sub(r"(['\"])\s*\1", "", t)  # '' left by a quoted path
        t = re.sub(r"[\s,;:]+\)", ")", t)  # "searched: , )" -> ")"
        t = re.sub(r"\(\s*\)", "", t)
        t = re.sub(r"\(\s+", "(", t)  # "( mirrored)" left by a URL at a bracket's start
        t = re.sub(r"\b(from|into|in|at|to|under)\s*(?=[(),;]|$)", "", t)  # a preposition without its object
        t = re.sub(r"\s+([,;:.])", r"\1", t)
        t = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", t)
        t = re.sub(r"\s{2,}", " ", t).strip(" ,;:")
    return t


def short_reason(reason: str, labels: Mapping[str, str]) -> tuple[str, str]:
    """(a few words saying why a metric was not computed, a hint where to look or "").

    ``labels`` maps weight-file names to their ``WeightFile.label`` ("inception_tf_fid" → "Inception"). A
    reason naming a weight file (``MissingWeightsError``'s message) becomes "<label> weights not installed" or
    "<label> weights fail their check", with the hint "see `harness weights`"; any other reason is scrubbed of
    paths and URLs and cut at its first clause (":", ";", "(") and ten words.
    """
    m = _WEIGHT_FILE.search(reason)
    if m:
        label = labels.get(m.group(1)) or m.group(1)
        state = "fail their check" if "fails its" in reason else "not installed"
        return f"{label} weights {state}", WEIGHTS_HINT
    text = scrub(reason)
    text = re.split(r"\s*\(|;\s*|:\s+", text, maxsplit=1)[0].strip(" ,.")
    words = text.split()
    if len(words) > MAX_WORDS:
        text = " ".join(words[:MAX_WORDS]) + " …"
    return (text or "skipped"), ""


def join_reasons(groups: list[tuple[list[str], str, str]]) -> str:
    """``"IS, FID: Inception weights not installed; CLIP-R: ... (see `harness weights`)"`` from
    (names, short reason, hint) groups; each hint is said once, at the end."""
    parts = [f"{', '.join(names)}: {text}" for names, text, _ in groups]
    hints = list(dict.fromkeys(h for _, _, h in groups if h))
    return "; ".join(parts) + (f" ({'; '.join(hints)})" if hints else "")
