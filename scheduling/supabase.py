"""The Supabase client: the agenda tables over PostgREST, explicit timeouts, typed errors.

Thin on purpose: each function is one PostgREST request through the `supabase` client and returns
the rows as PostgREST sends them (dicts of JSON values). The schema is
`supabase/migrations/*.sql`. Errors come out as three exceptions:

- `SupabaseConflict`: the row breaks a constraint the caller can act on — HTTP 409, a unique
  key (23505) or the no-overlap rule of `agendamentos` (23P01, which PostgREST answers with 400).
- `SupabaseUnavailable`: try again later — network errors, timeouts, 5xx, 408/429, and
  Supabase not being configured at all (`SupabaseNotConfigured`).
- `SupabaseError` (the base of both): anything else, with PostgREST's message, code and details
  (`SupabaseNotFound`: the appointment to update is not there).

The timeout is `SUPABASE_TIMEOUT_SECONDS`, set on the httpx client handed to the `supabase`
client (its `postgrest_client_timeout` option is deprecated in postgrest-py and rounds seconds
down to whole numbers). Requests are not retried here: the sync runs again a minute later, and
a booking reports the failure to its caller.
"""

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import httpx
from django.conf import settings

if TYPE_CHECKING:
    from postgrest import APIError, APIResponse, SyncRequestBuilder
    from supabase import Client

logger = logging.getLogger("kommo_hub.supabase")

Row = dict[str, Any]

AGENDA: Final = "agenda_vendedor"
APPOINTMENTS: Final = "agendamentos"
INTERACTIONS: Final = "historico_interacoes"
TABLES: Final = (AGENDA, APPOINTMENTS, INTERACTIONS)
ACTIVE_STATUSES: Final = ("booked", "confirmed")

# Postgres error classes that say "try again" (PostgREST answers most of them with 5xx):
# connection, transaction rollback (serialization, deadlock), resources, operator intervention
# (statement timeout), system and internal errors.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58", "XX")
EXCLUSION_VIOLATION: Final = "23P01"
UNIQUE_VIOLATION: Final = "23505"
_CONFLICT_SQLSTATES = (EXCLUSION_VIOLATION, UNIQUE_VIOLATION)


class SupabaseError(Exception):
    """Supabase refused the request; `message`, `code`, `details` and `hint` are PostgREST's."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        details: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.hint = hint

    def __str__(self) -> str:
        prefix = " ".join(part for part in (str(self.status or ""), self.code) if part)
        text = f"{prefix}: {self.message}" if prefix else self.message
        return f"{text} ({self.details})" if self.details else text


class SupabaseConflict(SupabaseError):
    """A constraint said no: an overlapping active appointment, or a duplicate key."""

    @property
    def is_overlap(self) -> bool:
        """Another active appointment of the salesperson overlaps this one."""
        return self.code == EXCLUSION_VIOLATION

    @property
    def is_duplicate(self) -> bool:
        """A unique key (e.g. the idempotency_key of an earlier try) is already there."""
        return self.code == UNIQUE_VIOLATION


class SupabaseUnavailable(SupabaseError):
    """Network error, timeout, 5xx: the same request may work later."""


class SupabaseNotConfigured(SupabaseUnavailable):
    """SUPABASE_URL or SUPABASE_SERVICE_ROLE_KEY is not set."""


class SupabaseNotFound(SupabaseError):
    """The row to update is not there."""


def supabase_configured() -> bool:
    return bool(settings.SUPABASE_URL and settings.SUPABASE_SERVICE_ROLE_KEY)


# --- The client ---------------------------------------------------------------------------------

# The HTTP status of the last response on this thread: postgrest-py's APIError does not keep it.
_last_status: ContextVar[int | None] = ContextVar("supabase_last_status", default=None)
_clients: dict[tuple[str, str, float], "Client"] = {}
_clients_lock = threading.Lock()


def _remember_status(response: httpx.Response) -> None:
    _last_status.set(response.status_code)


def _client() -> "Client":
    """One `supabase` client per configuration, shared by the threads of the process."""
    if not supabase_configured():
        raise SupabaseNotConfigured(
            "Supabase is not configured (SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY)"
        )
    url, key = settings.SUPABASE_URL, settings.SUPABASE_SERVICE_ROLE_KEY
    timeout = float(settings.SUPABASE_TIMEOUT_SECONDS)
    with _clients_lock:
        client = _clients.get((url, key, timeout))
        if client is None:
            # Imported here: the supabase package (auth, storage, realtime) is slow to import,
            # and most processes that import this module never call Supabase.
            from supabase import ClientOptions, SupabaseException, create_client

            http = httpx.Client(
                timeout=httpx.Timeout(timeout),
                follow_redirects=True,
                event_hooks={"response": [_remember_status]},
            )
            options = ClientOptions(
                httpx_client=http,
                postgrest_client_retry=False,
                auto_refresh_token=False,
                persist_session=False,
            )
            try:
                client = create_client(url, key, options)
            except SupabaseException as exc:
                http.close()
                raise SupabaseError(f"cannot create the Supabase client: {exc.message}") from exc
            _clients[(url, key, timeout)] = client
    return client


def _table(name: str) -> "SyncRequestBuilder":
    return _client().table(name)


def _error_from_api(exc: "APIError", status: int | None) -> SupabaseError:
    code = str(exc.code or "")
    message = str(exc.message or "") or "Supabase refused the request"
    details_text = "" if exc.details is None else str(exc.details)[:1000]
    hint = str(exc.hint or "")
    if status is None and code.isdigit() and len(code) == 3:  # a body that was not PostgREST's
        status = int(code)
    kind: type[SupabaseError] = SupabaseError
    if status == 409 or code in _CONFLICT_SQLSTATES:
        kind = SupabaseConflict
    elif (
        (status is not None and (status >= 500 or status in (408, 429)))
        or code.startswith("PGRST00")  # PostgREST cannot reach the database
        or code[:2] in _TRANSIENT_SQLSTATE_CLASSES
    ):
        kind = SupabaseUnavailable
    return kind(message, status=status, code=code, details=details_text, hint=hint)


def _rows(what: str, query: Callable[[], "APIResponse"]) -> list[Row]:
    """Run one request; its rows, or the typed error."""
    from postgrest import APIError

    token = _last_status.set(None)
    try:
        response = query()
    except APIError as exc:
        error = _error_from_api(exc, _last_status.get())
        # Not the details: PostgREST may quote the row (names, notes) in them.
        logger.info("supabase refused %s: %s %s %s", what, error.status, error.code, error.message)
        raise error from exc
    except httpx.HTTPError as exc:  # timeouts, refused connections, protocol errors
        raise SupabaseUnavailable(f"{what}: {type(exc).__name__}: {exc}"[:500]) from exc
    finally:
        _last_status.reset(token)
    data: object = response.data
    rows: list[Row] = []
    for row in data if isinstance(data, list) else [data]:
        if not isinstance(data, list) or not isinstance(row, dict):
            raise SupabaseError(f"{what}: expected a JSON array of rows, got {str(data)[:200]!r}")
        rows.append(row)
    return rows


def _one(what: str, rows: list[Row]) -> Row:
    if not rows:
        raise SupabaseError(f"{what}: Supabase answered without the row")
    return rows[0]


def _uuid(value: UUID | str) -> str:
    try:
        return str(value if isinstance(value, UUID) else UUID(str(value)))
    except ValueError as exc:
        raise SupabaseError(f"not a row id (uuid): {str(value)[:80]!r}") from exc


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a Supabase timestamp needs a timezone")
    return moment.astimezone(UTC).isoformat()


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValueError(f"not an agenda table: {table!r}")


# --- Reads --------------------------------------------------------------------------------------


def rows_changed_since(
    *, table: str, updated_at: datetime | None, last_id: str, limit: int
) -> list[Row]:
    """Rows after the keyset position (updated_at, last_id), oldest first, at most `limit`.

    `updated_at=None` starts from the beginning; with `last_id=""` every row of that instant
    comes again.
    """
    _check_table(table)

    def query() -> "APIResponse":
        request = _table(table).select("*")
        if updated_at is not None:
            at = f'"{_timestamp(updated_at)}"'  # quoted: ':', '.' and '+' are reserved in or=()
            if last_id:
                after = _uuid(last_id)
                request = request.or_(f"updated_at.gt.{at},and(updated_at.eq.{at},id.gt.{after})")
            else:
                request = request.gte("updated_at", _timestamp(updated_at))
        return request.order("updated_at").order("id").limit(limit).execute()

    return _rows(f"{table} changes", query)


def appointment_get(*, id: UUID | str) -> Row | None:
    row_id = _uuid(id)
    rows = _rows(
        "appointment", lambda: _table(APPOINTMENTS).select("*").eq("id", row_id).limit(1).execute()
    )
    return rows[0] if rows else None


def appointment_find(*, idempotency_key: str) -> Row | None:
    """The appointment booked under this key (an earlier try of the same booking), if any."""
    rows = _rows(
        "appointment by key",
        lambda: (
            _table(APPOINTMENTS)
            .select("*")
            .eq("idempotency_key", idempotency_key)
            .limit(1)
            .execute()
        ),
    )
    return rows[0] if rows else None


def appointments_between(
    *, vendedor_id: int, start: datetime, end: datetime, active_only: bool = True
) -> list[Row]:
    """The salesperson's appointments that overlap [start, end), by start; not deleted ones.

    `active_only`: only booked and confirmed ones (those that take the time).
    """

    def query() -> "APIResponse":
        request = (
            _table(APPOINTMENTS)
            .select("*")
            .eq("vendedor_id", vendedor_id)
            .lt("inicio", _timestamp(end))
            .gt("fim", _timestamp(start))
            .is_("deleted_at", "null")
        )
        if active_only:
            request = request.in_("status", ACTIVE_STATUSES)
        return request.order("inicio").order("id").execute()

    return _rows("appointments between", query)


# --- Writes -------------------------------------------------------------------------------------


def appointment_insert(*, row: Row) -> Row:
    """Insert one appointment; the row as stored (id, timestamps). SupabaseConflict when it
    overlaps an active one of the salesperson (`is_overlap`) or its key exists (`is_duplicate`)."""
    return _one(
        "appointment insert",
        _rows("appointment insert", lambda: _table(APPOINTMENTS).insert(row).execute()),
    )


def appointment_update(*, id: UUID | str, values: Row) -> Row:
    """Change an appointment's columns; the row as stored. SupabaseNotFound if it is not there."""
    row_id = _uuid(id)
    rows = _rows(
        "appointment update",
        lambda: _table(APPOINTMENTS).update(values).eq("id", row_id).execute(),
    )
    if not rows:
        raise SupabaseNotFound(f"no appointment {row_id} in Supabase", status=404)
    return rows[0]


def interaction_insert(*, row: Row) -> Row:
    return _one(
        "interaction insert",
        _rows("interaction insert", lambda: _table(INTERACTIONS).insert(row).execute()),
    )
