"""CSV for every /api/v1/ list (`?format=csv`): a page, a `results` list or a single object."""

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import BaseRenderer


def _flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name != "explanation":
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, (Mapping, list)):
            flat[name] = json.dumps(value, ensure_ascii=False, sort_keys=True)
        else:
            flat[name] = "" if value is None else value
    return flat


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        rows = data.get("results", data) if isinstance(data, Mapping) else data
        if isinstance(rows, Mapping):
            rows = [rows]
        flat = [_flatten(row) if isinstance(row, Mapping) else {"value": row} for row in rows]
        header: dict[str, None] = {}
        for row in flat:
            header.update(dict.fromkeys(row))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(header), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(flat)
        return out.getvalue().encode(self.charset)
