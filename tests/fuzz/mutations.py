"""Hypothesis strategies that take a real webhook body (a fixture) and break it a little: keys
dropped, duplicated or mangled, values of the wrong type, nesting changed, bytes cut or
corrupted. Small changes to real shapes reach much deeper than random bytes do."""

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hypothesis import strategies as st

from tests.conftest import OWN_FIXTURES, SHARED_FIXTURES

EDGE_STRINGS = [
    "", " ", "0", "-1", "1.5", "1e309", "99999999999999999999999", "18446744073709551616",
    "1767261600", "-62135596800", "253402300800", "NaN", "null", "true", "[]", "{}", "a[b",
    "(11) 98765-4321", "+55 21 99876-5432", "maria@", "2026-02-30", "2026-11-25T25:00:00",
    "\x00", "\ud800", "😀" * 3, "ção", "x" * 5000, "<script>", "%", "%ZZ", "\r\n", "\u202e",
]  # fmt: skip

edge_strings = st.sampled_from(EDGE_STRINGS) | st.text(max_size=10)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | edge_strings
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(edge_strings, inner, max_size=3),
    max_leaves=8,
)


def fixtures(source: str) -> dict[str, bytes]:
    """The real bodies of one sender, shared and own, by file name."""
    found: dict[str, bytes] = {}
    for root in (SHARED_FIXTURES, OWN_FIXTURES):
        folder = root / source
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in {".json", ".form"}:
                    found[f"{root.name}/{source}/{path.name}"] = path.read_bytes()
    return found


def supabase_webhooks() -> dict[str, bytes]:
    return {name: body for name, body in fixtures("supabase").items() if "/webhook_" in name}


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*path, index))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def mutated_json(draw: st.DrawFn, value: Any) -> Any:
    """The value with one to three mutations at random places."""
    value = json.loads(json.dumps(value))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        target = _get(value, path)
        op = draw(
            st.sampled_from(["replace", "drop", "add", "wrap", "stringify", "numeric", "empty"])
        )
        if not path:
            if op == "wrap":
                value = [value]
            elif op == "replace":
                value = draw(json_values)
            continue
        parent, last = _get(value, path[:-1]), path[-1]
        if op == "replace":
            parent[last] = draw(json_values)
        elif op == "drop":
            del parent[last]
        elif op == "add" and isinstance(target, dict):
            target[draw(edge_strings)] = draw(json_values)
        elif op == "wrap":
            parent[last] = draw(st.sampled_from([[target], {"0": target}, {"value": target}]))
        elif op == "stringify":
            parent[last] = json.dumps(target)
        elif op == "numeric" and isinstance(target, str):
            parent[last] = draw(st.integers(-(2**64), 2**64) | st.floats())
        elif op == "empty":
            parent[last] = type(target)() if isinstance(target, dict | list | str) else None
    return value


@st.composite
def mutated_pairs(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Form pairs (PHP bracket keys) with one to four mutations."""
    pairs = list(pairs)
    for _ in range(draw(st.integers(1, 4))):
        if not pairs:
            pairs.append((draw(edge_strings), draw(edge_strings)))
            continue
        index = draw(st.integers(0, len(pairs) - 1))
        key, value = pairs[index]
        op = draw(st.sampled_from(["value", "drop", "duplicate", "key", "index", "nest"]))
        if op == "value":
            pairs[index] = (key, draw(edge_strings))
        elif op == "drop":
            del pairs[index]
        elif op == "duplicate":
            pairs.insert(index, (key, draw(st.sampled_from([value, *EDGE_STRINGS[:6]]))))
        elif op == "key":
            cut = draw(st.integers(0, len(key)))
            pairs[index] = (key[:cut] + draw(st.sampled_from(["", "[", "]", "[]", "[x]"])), value)
        elif op == "index":
            number = draw(st.sampled_from(["-1", "999999999999999999999", "a", "", "0x1"]))
            pairs[index] = (key.replace("[0]", f"[{number}]", 1), value)
        elif op == "nest":
            pairs[index] = (f"{key}[{draw(edge_strings)}]", value)
    return pairs


def encode_pairs(pairs: list[tuple[str, str]], *, escaped: bool) -> bytes:
    text = (
        urlencode(pairs, errors="surrogatepass")
        if escaped
        else "&".join(f"{key}={value}" for key, value in pairs)
    )
    return text.encode("utf-8", "surrogatepass")


@st.composite
def byte_damage(draw: st.DrawFn, body: bytes) -> bytes:
    """Cut, corrupted, re-encoded or padded bytes of a real body."""
    op = draw(st.sampled_from(["cut", "flip", "invalid", "utf16", "latin1", "bom", "nul"]))
    if op == "cut":
        return body[: draw(st.integers(0, len(body)))]
    if op == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    if op == "invalid":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + body[at:]
    if op == "utf16":
        return body.decode("utf-8", "replace").encode("utf-16")
    if op == "latin1":
        return body.decode("utf-8", "replace").encode("latin-1", "replace")
    if op == "bom":
        return b"\xef\xbb\xbf" + body
    return body.replace(b"=", b"=\x00", 1) if b"=" in body else b"\x00" + body


@st.composite
def mutated_body(draw: st.DrawFn, body: bytes) -> bytes:
    """A fixture's body, broken at the level of its structure or of its bytes."""
    text = body.decode("utf-8")
    kind = draw(st.sampled_from(["structure", "structure", "structure", "bytes"]))
    if kind == "bytes":
        return draw(byte_damage(body))
    try:
        parsed = json.loads(text)
    except ValueError:
        pairs = parse_qsl(text, keep_blank_values=True)
        return encode_pairs(draw(mutated_pairs(pairs)), escaped=draw(st.integers(0, 3)) > 0)
    dumped = json.dumps(draw(mutated_json(parsed)), ensure_ascii=draw(st.booleans()))
    return dumped.encode("utf-8", "surrogatepass")


def content_type_of(name: str) -> str:
    json_body = Path(name).suffix == ".json"
    return "application/json" if json_body else "application/x-www-form-urlencoded"


wrong_content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-16",
        "application/x-www-form-urlencoded; charset=latin-1",
        "multipart/form-data; boundary=x",
        "text/plain",
        "",
        "application/json; charset=nonsense",
        "application/x-www-form-urlencoded; charset=",
    ]
)
