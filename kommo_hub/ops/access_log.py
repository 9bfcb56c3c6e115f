"""gunicorn's access log without secrets: webhook paths masked, no query strings or credentials.

Receiver URLs carry their secret in the path, and query strings or headers may carry tokens, so
every atom a custom `access_log_format` could use is cleaned, not only the default ones.
"""

import re
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from kommo_hub.logging import mask_pii

SENSITIVE_HEADER = re.compile(r"authorization|cookie|secret|token|signature|api-?key", re.I)


def clean_path(path: str) -> str:
    return mask_pii(path.split("?", 1)[0])


class MaskedAccessLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> Any:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        path = clean_path(str(environ.get("PATH_INFO") or ""))
        atoms["U"] = path
        atoms["r"] = f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}"
        atoms["q"] = "-"
        atoms["f"] = clean_path(str(environ.get("HTTP_REFERER", "-")))
        atoms["u"] = "-"
        for key in list(atoms):
            if key.endswith("}e"):  # the WSGI environ: raw URI, query string, every header
                del atoms[key]
            elif key.endswith(("}i", "}o")) and SENSITIVE_HEADER.search(key):
                atoms[key] = "[redacted]"
        return atoms
