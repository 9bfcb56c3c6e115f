"""One error body for /api/v1/: `{"detail": "<text>", "code": "<code>"}`, plus `fields` (each
parameter's messages) for validation errors. Other API views keep DRF's default bodies."""

from typing import Any

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _first_code(codes: Any) -> str:
    if isinstance(codes, dict):
        for value in codes.values():
            return _first_code(value)
    if isinstance(codes, list):
        for value in codes:
            return _first_code(value)
    return str(codes) if codes else "invalid"


def _messages(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _messages(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in _messages(value)]
    return [str(detail)]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None or not getattr(context.get("view"), "uniform_errors", False):
        return response
    if isinstance(exc, exceptions.ValidationError):
        invalid: Any = exc.detail
        if isinstance(invalid, dict):
            fields = {name: _messages(value) for name, value in invalid.items()}
            text = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in fields.items())
            response.data = {"detail": text, "code": _first_code(exc.get_codes()), "fields": fields}
        else:
            response.data = {
                "detail": " ".join(_messages(invalid)),
                "code": _first_code(exc.get_codes()),
            }
        return response
    detail: Any
    if isinstance(exc, exceptions.APIException):
        code = _first_code(exc.get_codes())
        detail = exc.detail
    else:  # Django's Http404 / PermissionDenied, turned into responses by DRF
        code = "not_found" if response.status_code == 404 else "permission_denied"
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
    response.data = {"detail": " ".join(_messages(detail)), "code": code}
    return response
