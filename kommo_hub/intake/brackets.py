"""Expand PHP `http_build_query` bracket keys (`leads[add][0][id]`) into nested dicts."""

import re
from typing import Any
from urllib.parse import parse_qsl

_PART = re.compile(r"[^\[\]]+|\[\]")


class TooManyFields(ValueError):
    pass


def parse_bracket_form(raw: str, *, max_fields: int) -> dict[str, Any]:
    """Later duplicates win, as in PHP; a key both leaf and branch keeps the branch."""
    pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False, max_num_fields=None)
    if len(pairs) > max_fields:
        raise TooManyFields(f"{len(pairs)} fields, more than the limit of {max_fields}")
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = [p for p in _PART.findall(key) if p != "[]"] or [key]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = value
    return root


def indexed_items(group: Any) -> list[Any]:
    """`{"0": {...}, "1": {...}}` → `[{...}, {...}]` in index order; tolerant of odd shapes."""
    if isinstance(group, list):
        return group
    if not isinstance(group, dict):
        return []
    keys = sorted(group, key=lambda k: (0, int(k)) if str(k).isdigit() else (1, str(k)))
    return [group[k] for k in keys]
