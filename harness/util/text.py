"""Small text helpers shared by the renderers."""
from __future__ import annotations

SENTENCE_ENDS = (".", "!", "?", "…")


def join_sentences(*parts: str | None) -> str:
    """The non-empty ``parts`` joined with one space, each ending with its own final punctuation, or a period
    where it has none (``"Shapes benchmark", "Evaluated on cub."`` → ``"Shapes benchmark. Evaluated on cub."``).
    A closing bracket or quote after the punctuation counts as part of the sentence (``"(see text.)"``)."""
    out = []
    for part in parts:
        text = (part or "").strip()
        if not text:
            continue
        if not text.rstrip(")]}\"'”’").endswith(SENTENCE_ENDS):
            text += "."
        out.append(text)
    return " ".join(out)
