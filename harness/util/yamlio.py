"""The one YAML reader of the harness: ``yaml.SafeLoader`` (a ``!!python/...`` tag never runs code) with aliases
limited, so a document whose anchors expand exponentially (an "alias bomb") or refer to themselves is refused in
one line before anything walks it."""
from __future__ import annotations

from typing import IO, Any

import yaml

from harness.util.errors import ConfigError

MAX_ALIAS_EXPANSION = 100_000  # nodes aliases may add when expanded; a config or preset file needs a few dozen


class YamlAliasError(ConfigError, yaml.YAMLError):
    """A YAML document whose aliases expand too far or refer to themselves (both a ConfigError, printed as one
    line, and a ``yaml.YAMLError``, caught where unreadable YAML is handled)."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_size(root: yaml.Node, limit: int, source: str) -> int:
    """Nodes of ``root`` with every alias expanded (shared nodes counted each time they are used); raises
    ``YamlAliasError`` past ``limit`` extra nodes or on a node that contains itself. Each distinct node is sized
    once, so the count costs time linear in the document, never in its expansion."""
    sizes: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            distinct += 1
            if sizes[key] - distinct > limit:
                raise YamlAliasError(f"{source}: YAML aliases expand to more than {limit:,} extra nodes (an alias "
                                     f"bomb); refused")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlAliasError(f"{source}: a YAML anchor refers to itself (a recursive alias); refused")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def safe_load(stream: str | bytes | IO, source: str = "YAML", *, limit: int = MAX_ALIAS_EXPANSION) -> Any:
    """``yaml.safe_load`` of ``stream`` with aliases limited (``source`` names it in the error). Raises
    ``YamlAliasError`` for an alias bomb or a recursive alias, ``yaml.YAMLError`` for text that is not YAML."""
    loader = yaml.SafeLoader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node, limit, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()
