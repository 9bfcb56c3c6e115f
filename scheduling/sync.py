"""Supabase → hub: the agenda tables mirrored incrementally, idempotently and resumably.

Each table is read in pages ordered by (updated_at, id) from where its SyncCursor stopped. A page
is applied in one transaction together with the cursor's advance, so a crash loses nothing and
repeats at most one page (upserts are idempotent: a row older than the mirror's copy is skipped,
an unchanged one writes nothing). Only one machine works on a table at a time: the page's
transaction locks the cursor row (skip_locked), and a machine that finds the cursor locked, or
moved since it read it, stops and leaves the table to the other.

The cursor stays SETTLE behind the newest rows: updated_at is the time a transaction started,
so a row can become visible after rows with a later updated_at. Those recent rows are read again
on the next run, and skipped as unchanged.

Appointments created, changed or cancelled by the sync are reported: `sync_table` returns them
in a SyncResult, and every function in `sync_hooks` is called with each batch inside its
transaction (so what a hook writes, e.g. reminders or outbox rows, commits with the mirror
change; a hook must not call remote systems, and a hook that raises makes the batch run again).

The Supabase database webhook (`supabase.<table>.<insert|update|delete>` events) applies its
row at once through `supabase_event_apply`, with the same upserts; it never moves a cursor.
"""

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self
from uuid import UUID

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from kommo_hub.models import InboundEvent, Lead
from routing.models import Salesperson
from scheduling import supabase
from scheduling.models import (
    ACTIVE_STATUSES,
    AgendaBlock,
    Appointment,
    AppointmentStatus,
    Interaction,
    SyncCursor,
)

if TYPE_CHECKING:
    from kommo_hub.intake.handlers import Outcome

logger = logging.getLogger("kommo_hub.supabase_sync")

PAGE_SIZE = 500
SETTLE = timedelta(seconds=60)
# The periodic job reads at most this many pages per table and run; the rest comes next run.
JOB_MAX_PAGES = 20
# Tables in dependency order: interactions point to appointments.
SYNC_ORDER = (supabase.APPOINTMENTS, supabase.AGENDA, supabase.INTERACTIONS)
SUPABASE_EVENT_TYPES = tuple(
    f"supabase.{table}.{kind}"
    for table in supabase.TABLES
    for kind in ("insert", "update", "delete")
)

BigInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


# --- Rows as Supabase sends them -----------------------------------------------------------------


class SupabaseRow(BaseModel):
    """What every agenda row has; also all a DELETE webhook needs (its old_record)."""

    model_config = ConfigDict(extra="ignore")

    id: UUID
    updated_at: AwareDatetime | None = None
    deleted_at: AwareDatetime | None = None


class _SpanRow(SupabaseRow):
    inicio: AwareDatetime
    fim: AwareDatetime

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.fim <= self.inicio:
            raise ValueError("fim must be after inicio")
        return self


class AgendaRow(_SpanRow):
    vendedor_id: BigInt | None = None
    vendedor_kommo_user_id: BigInt | None = None
    tipo: Literal["disponivel", "bloqueio"]
    motivo: str | None = None


class AppointmentRow(_SpanRow):
    vendedor_id: BigInt | None = None
    vendedor_kommo_user_id: BigInt | None = None
    lead_id: BigInt | None = None
    kommo_lead_id: BigInt | None = None
    kommo_contact_id: BigInt | None = None
    status: AppointmentStatus
    origem: str | None = None
    titulo: str | None = None
    observacoes: str | None = None
    idempotency_key: str | None = None


class InteractionRow(SupabaseRow):
    lead_id: BigInt | None = None
    kommo_lead_id: BigInt | None = None
    agendamento_id: UUID | None = None
    tipo: str | None = None
    texto: str | None = None
    dados: Any = None
    ocorrido_em: AwareDatetime | None = None


ROW_MODELS: dict[str, type[SupabaseRow]] = {
    supabase.AGENDA: AgendaRow,
    supabase.APPOINTMENTS: AppointmentRow,
    supabase.INTERACTIONS: InteractionRow,
}
_position_adapter = TypeAdapter(tuple[AwareDatetime, UUID])


# --- Results and hooks ---------------------------------------------------------------------------

Change = Literal["created", "changed", "cancelled", "deleted", "unchanged", "stale", "skipped"]


@dataclass
class SyncResult:
    """What a sync run (or one webhook) did to the mirror.

    `created`: appointments new in the mirror (any status); `changed`: existing ones whose
    fields changed (times, status other than a cancellation, salesperson, lead, texts);
    `cancelled`: ones that were booked/confirmed and are now cancelled or deleted in Supabase.
    """

    created: list[Appointment] = field(default_factory=list)
    changed: list[Appointment] = field(default_factory=list)
    cancelled: list[Appointment] = field(default_factory=list)
    rows: int = 0  # rows read from Supabase
    applied: int = 0  # rows that changed the mirror (every table)
    skipped: int = 0  # rows that could not be read (logged, and noted on the cursor)
    busy: bool = False  # another machine was syncing the table: this run left it alone

    def record(self, change: Change, appointment: Appointment | None = None) -> None:
        if change in ("created", "changed", "cancelled", "deleted"):
            self.applied += 1
        if change == "skipped":
            self.skipped += 1
        if appointment is None:
            return
        if change == "created":
            self.created.append(appointment)
        elif change == "changed":
            self.changed.append(appointment)
        elif change == "cancelled":
            self.cancelled.append(appointment)

    def extend(self, other: "SyncResult") -> None:
        self.created += other.created
        self.changed += other.changed
        self.cancelled += other.cancelled
        self.rows += other.rows
        self.applied += other.applied
        self.skipped += other.skipped
        self.busy = self.busy or other.busy

    @property
    def has_appointment_changes(self) -> bool:
        return bool(self.created or self.changed or self.cancelled)


_PREVIOUS_START = "_synced_previous_starts_at"


def previous_start(appointment: Appointment) -> datetime | None:
    """An appointment in `SyncResult.changed`: its start before this sync moved it, if it did."""
    value = getattr(appointment, _PREVIOUS_START, None)
    return value if isinstance(value, datetime) else None


SyncHook = Callable[[SyncResult], None]
# Called with each batch that created, changed or cancelled appointments, inside its transaction.
sync_hooks: list[SyncHook] = []


def _notify(result: SyncResult) -> None:
    if result.has_appointment_changes:
        for hook in list(sync_hooks):
            hook(result)


# --- Resolving Supabase's keys to the hub's rows -------------------------------------------------


class _Resolver:
    """Salespeople, leads and appointments by the keys Supabase rows carry, once per batch."""

    def __init__(self) -> None:
        self._people: dict[tuple[int | None, int | None], Salesperson | None] = {}
        self._leads: dict[tuple[int | None, int | None], Lead | None] = {}

    def salesperson(self, vendedor_id: int | None, kommo_user_id: int | None) -> Salesperson | None:
        key = (vendedor_id, kommo_user_id)
        if key not in self._people:
            person = None
            if vendedor_id is not None:
                person = Salesperson.objects.filter(pk=vendedor_id).first()
            if person is None and kommo_user_id is not None:
                person = Salesperson.objects.filter(kommo_user_id=kommo_user_id).first()
            if person is None and key != (None, None):
                logger.warning(
                    "supabase row names an unknown salesperson",
                    extra={"vendedor_id": vendedor_id, "kommo_user_id": kommo_user_id},
                )
            self._people[key] = person
        return self._people[key]

    def lead(self, lead_id: int | None, kommo_lead_id: int | None) -> Lead | None:
        key = (lead_id, kommo_lead_id)
        if key not in self._leads:
            lead = None
            if lead_id is not None:
                lead = Lead.objects.filter(pk=lead_id).first()
            if lead is None and kommo_lead_id is not None:
                lead = Lead.objects.filter(kommo_lead_id=kommo_lead_id).first()
            self._leads[key] = lead
        return self._leads[key]


def _is_stale(mirrored: datetime | None, incoming: datetime | None) -> bool:
    return mirrored is not None and incoming is not None and incoming < mirrored


def _newest(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def _differences(instance: Any, values: dict[str, Any]) -> list[str]:
    return [name for name, value in values.items() if getattr(instance, name) != value]


# --- Appointments --------------------------------------------------------------------------------


def _appointment_for(row: SupabaseRow, key: str | None) -> Appointment | None:
    found = Appointment.objects.select_for_update().filter(supabase_id=row.id).first()
    if found is None and key:  # booked by the hub, mirrored before Supabase's id was stored
        found = (
            Appointment.objects.select_for_update()
            .filter(idempotency_key=key, supabase_id__isnull=True)
            .first()
        )
    return found


def _appointment_gone(appointment: Appointment, *, version: datetime | None) -> Change:
    """Deleted in Supabase: cancelled in the mirror. The version moves to now, so that a late
    webhook of an earlier change cannot bring the row back."""
    before = appointment.status
    appointment.status = AppointmentStatus.CANCELLED
    appointment.supabase_updated_at = _newest(version, appointment.supabase_updated_at)
    appointment.save(update_fields=["status", "supabase_updated_at", "updated_at"])
    if before in ACTIVE_STATUSES:
        return "cancelled"
    return "unchanged" if before == AppointmentStatus.CANCELLED else "changed"


def _appointment_values(row: AppointmentRow, resolver: _Resolver) -> dict[str, Any]:
    salesperson = resolver.salesperson(row.vendedor_id, row.vendedor_kommo_user_id)
    lead = resolver.lead(row.lead_id, row.kommo_lead_id)
    kommo_lead_id = row.kommo_lead_id
    if kommo_lead_id is None and lead is not None:
        kommo_lead_id = lead.kommo_lead_id
    return {
        "supabase_id": row.id,
        "salesperson_id": salesperson.pk if salesperson else None,
        "lead_id": lead.pk if lead else None,
        "kommo_lead_id": kommo_lead_id,
        "kommo_contact_id": row.kommo_contact_id,
        "starts_at": row.inicio,
        "ends_at": row.fim,
        "status": (AppointmentStatus.CANCELLED if row.deleted_at is not None else row.status.value),
        "source": (row.origem or "")[:32],
        "title": (row.titulo or "")[:255],
        "notes": row.observacoes or "",
    }


def _free_key(key: str | None, *, keeper: Appointment | None) -> str | None:
    """The idempotency key, unless another mirror row holds it (then the row goes without)."""
    if not key:
        return None
    holders = Appointment.objects.filter(idempotency_key=key)
    if keeper is not None:
        holders = holders.exclude(pk=keeper.pk)
    if holders.exists():
        logger.warning("supabase appointment key already held by another mirror row")
        return None
    return key


def appointment_apply(
    *, row: SupabaseRow, hard_delete: bool = False, resolver: _Resolver | None = None
) -> tuple[Change, Appointment | None]:
    """Upsert one `agendamentos` row into the mirror (a hard delete only needs the id)."""
    resolver = resolver or _Resolver()
    key = row.idempotency_key if isinstance(row, AppointmentRow) else None
    existing = _appointment_for(row, key)
    if hard_delete or not isinstance(row, AppointmentRow):
        if existing is None:
            return "unchanged", None
        version = _newest(row.updated_at, timezone.now())
        return _appointment_gone(existing, version=version), existing
    if existing is not None and _is_stale(existing.supabase_updated_at, row.updated_at):
        return "stale", existing
    values = _appointment_values(row, resolver)
    if existing is None:
        if row.deleted_at is not None:
            return "unchanged", None  # deleted before the hub saw it: nothing to mirror
        created = _appointment_create(
            {**values, "idempotency_key": _free_key(key, keeper=None)}, version=row.updated_at
        )
        if created is not None:
            return "created", created
        existing = _appointment_for(row, key)  # created meanwhile by the webhook or a booking
        if existing is None:
            raise IntegrityError("appointment vanished while mirroring it")
        if _is_stale(existing.supabase_updated_at, row.updated_at):
            return "stale", existing
    if key and existing.idempotency_key != key:
        values["idempotency_key"] = _free_key(key, keeper=existing) or existing.idempotency_key
    changed = _differences(existing, values)
    was_active = existing.status in ACTIVE_STATUSES
    version = _newest(row.updated_at, existing.supabase_updated_at)
    if not changed:
        if version != existing.supabase_updated_at:
            existing.supabase_updated_at = version
            existing.save(update_fields=["supabase_updated_at"])
        return "unchanged", existing
    if "starts_at" in changed:
        setattr(existing, _PREVIOUS_START, existing.starts_at)
    for name in changed:
        setattr(existing, name, values[name])
    existing.supabase_updated_at = version
    existing.save(update_fields=[*changed, "supabase_updated_at", "updated_at"])
    if was_active and existing.status == AppointmentStatus.CANCELLED:
        return "cancelled", existing
    return "changed", existing


def _appointment_create(values: dict[str, Any], *, version: datetime | None) -> Appointment | None:
    """None when the same Supabase id or key got into the mirror meanwhile."""
    try:
        with transaction.atomic():
            return Appointment.objects.create(**values, supabase_updated_at=version)
    except IntegrityError:
        return None


# --- Agenda blocks -------------------------------------------------------------------------------

_KINDS = {"disponivel": AgendaBlock.Kind.AVAILABLE, "bloqueio": AgendaBlock.Kind.BLOCKED}


def agenda_block_apply(
    *, row: SupabaseRow, hard_delete: bool = False, resolver: _Resolver | None = None
) -> Change:
    """Upsert one `agenda_vendedor` row into the mirror; deleted rows are flagged `deleted`."""
    resolver = resolver or _Resolver()
    existing = AgendaBlock.objects.select_for_update().filter(supabase_id=row.id).first()
    if hard_delete or not isinstance(row, AgendaRow):
        if existing is None or existing.deleted:
            return "unchanged"
        existing.deleted = True
        existing.supabase_updated_at = _newest(row.updated_at, timezone.now())
        existing.save(update_fields=["deleted", "supabase_updated_at"])
        return "deleted"
    if existing is not None and _is_stale(existing.supabase_updated_at, row.updated_at):
        return "stale"
    salesperson = resolver.salesperson(row.vendedor_id, row.vendedor_kommo_user_id)
    values = {
        "salesperson_id": salesperson.pk if salesperson else None,
        "kind": _KINDS[row.tipo],
        "starts_at": row.inicio,
        "ends_at": row.fim,
        "reason": (row.motivo or "")[:255],
        "deleted": row.deleted_at is not None,
    }
    if existing is None:
        if row.deleted_at is not None:
            return "unchanged"
        try:
            with transaction.atomic():
                AgendaBlock.objects.create(
                    supabase_id=row.id, supabase_updated_at=row.updated_at, **values
                )
            return "created"
        except IntegrityError:
            existing = AgendaBlock.objects.select_for_update().get(supabase_id=row.id)
            if _is_stale(existing.supabase_updated_at, row.updated_at):
                return "stale"
    changed = _differences(existing, values)
    version = _newest(row.updated_at, existing.supabase_updated_at)
    for name in changed:
        setattr(existing, name, values[name])
    if changed or version != existing.supabase_updated_at:
        existing.supabase_updated_at = version
        existing.save(update_fields=[*changed, "supabase_updated_at"])
    if not changed:
        return "unchanged"
    return "deleted" if changed == ["deleted"] and existing.deleted else "changed"


# --- Interaction history -------------------------------------------------------------------------


def interaction_apply(
    *, row: SupabaseRow, hard_delete: bool = False, resolver: _Resolver | None = None
) -> tuple[Change, Lead | None]:
    """Upsert one `historico_interacoes` row into the mirror; a deleted one leaves it."""
    resolver = resolver or _Resolver()
    existing = Interaction.objects.select_for_update().filter(supabase_id=row.id).first()
    if hard_delete or not isinstance(row, InteractionRow) or row.deleted_at is not None:
        if existing is None:
            return "unchanged", None
        if _is_stale(existing.supabase_updated_at, row.updated_at) and not hard_delete:
            return "stale", existing.lead
        lead = existing.lead
        existing.delete()
        return "deleted", lead
    if existing is not None and _is_stale(existing.supabase_updated_at, row.updated_at):
        return "stale", existing.lead
    appointment = (
        Appointment.objects.filter(supabase_id=row.agendamento_id).first()
        if row.agendamento_id
        else None
    )
    lead = resolver.lead(row.lead_id, row.kommo_lead_id)
    if lead is None and appointment is not None:
        lead = appointment.lead
    values = {
        "lead_id": lead.pk if lead else None,
        "appointment_id": appointment.pk if appointment else None,
        "kind": (row.tipo or "")[:64],
        "text": row.texto or "",
        "data": row.dados if row.dados is not None else {},
        "happened_at": row.ocorrido_em,
    }
    if existing is None:
        try:
            with transaction.atomic():
                Interaction.objects.create(
                    supabase_id=row.id, supabase_updated_at=row.updated_at, **values
                )
            return "created", lead
        except IntegrityError:
            existing = Interaction.objects.select_for_update().get(supabase_id=row.id)
            if _is_stale(existing.supabase_updated_at, row.updated_at):
                return "stale", existing.lead
    changed = _differences(existing, values)
    version = _newest(row.updated_at, existing.supabase_updated_at)
    for name in changed:
        setattr(existing, name, values[name])
    if changed or version != existing.supabase_updated_at:
        existing.supabase_updated_at = version
        existing.save(update_fields=[*changed, "supabase_updated_at"])
    return ("changed" if changed else "unchanged"), lead


# --- One row, one batch --------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    change: Change
    appointment: Appointment | None = None
    lead: Lead | None = None


def row_apply(
    *, table: str, row: SupabaseRow, hard_delete: bool = False, resolver: _Resolver | None = None
) -> Applied:
    """Apply one parsed row of `table` to the mirror (inside the caller's transaction)."""
    resolver = resolver or _Resolver()
    if table == supabase.APPOINTMENTS:
        change, appointment = appointment_apply(row=row, hard_delete=hard_delete, resolver=resolver)
        return Applied(change, appointment, appointment.lead if appointment else None)
    if table == supabase.AGENDA:
        return Applied(agenda_block_apply(row=row, hard_delete=hard_delete, resolver=resolver))
    if table == supabase.INTERACTIONS:
        change, lead = interaction_apply(row=row, hard_delete=hard_delete, resolver=resolver)
        return Applied(change, lead=lead)
    raise ValueError(f"not an agenda table: {table!r}")


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors()[:5]
    )


def _rows_apply(table: str, rows: list[supabase.Row]) -> tuple[SyncResult, list[str]]:
    """Apply a page; rows that cannot be read are skipped and described."""
    result = SyncResult(rows=len(rows))
    problems: list[str] = []
    resolver = _Resolver()
    model = ROW_MODELS[table]
    for raw in rows:
        try:
            row = model.model_validate(raw)
        except ValidationError as exc:
            problem = f"{table} {str(raw.get('id'))[:40]}: {_problems(exc)}"
            logger.warning("supabase row skipped: %s", problem)
            problems.append(problem)
            result.record("skipped")
            continue
        applied = row_apply(table=table, row=row, resolver=resolver)
        result.record(applied.change, applied.appointment)
    return result, problems


def _position(raw: supabase.Row) -> tuple[datetime, str] | None:
    try:
        at, ident = _position_adapter.validate_python((raw.get("updated_at"), raw.get("id")))
    except ValidationError:
        return None
    return at, str(ident)


# --- The incremental sync ------------------------------------------------------------------------


def _locked_cursor(table: str) -> SyncCursor | None:
    """The table's cursor, locked for this transaction; None while another machine holds it."""
    return SyncCursor.objects.select_for_update(skip_locked=True).filter(table=table).first()


def _note_error(table: str, error: str) -> None:
    with contextlib.suppress(DatabaseError):
        SyncCursor.objects.filter(table=table).update(
            last_error=error[:2000], last_run_at=timezone.now()
        )


def sync_table(
    *,
    table: str,
    full: bool = False,
    page_size: int = PAGE_SIZE,
    max_pages: int | None = None,
    on_page: Callable[[int], object] | None = None,
) -> SyncResult:
    """Bring the mirror of one Supabase table up to date; what it did to appointments.

    `full`: start from the beginning, and afterwards mark the mirror's rows that Supabase no
    longer has as deleted (appointments: cancelled). `on_page(n)` is called after each page of
    n rows. Raises SupabaseError (noted on the cursor) when Supabase fails.
    """
    if table not in supabase.TABLES:
        raise ValueError(f"not an agenda table: {table!r}")
    SyncCursor.objects.get_or_create(table=table)
    started = timezone.now()
    result = SyncResult()
    if full:
        with transaction.atomic():
            cursor = _locked_cursor(table)
            if cursor is None:
                result.busy = True
                return result
            cursor.updated_at, cursor.last_id = None, ""
            cursor.save(update_fields=["updated_at", "last_id"])
    stored: tuple[datetime | None, str] = SyncCursor.objects.values_list(
        "updated_at", "last_id"
    ).get(table=table)
    position = stored
    seen: set[UUID] = set()
    newest_seen: datetime | None = None
    pages = 0
    complete = False  # read to the end (a full sync reconciles only then)
    try:
        while True:
            rows = supabase.rows_changed_since(
                table=table, updated_at=position[0], last_id=position[1], limit=page_size
            )
            pages += 1
            settled_before = timezone.now() - SETTLE
            with transaction.atomic():
                cursor = _locked_cursor(table)
                if cursor is None or (cursor.updated_at, cursor.last_id) != stored:
                    result.busy = True  # another machine is on it (or moved it): leave it to them
                    break
                page, problems = _rows_apply(table, rows)
                for raw in rows:
                    at_id = _position(raw)
                    if at_id is None:
                        continue
                    position = at_id
                    if at_id[0] <= settled_before:
                        cursor.updated_at, cursor.last_id = at_id
                    if full:
                        seen.add(UUID(at_id[1]))
                        newest_seen = _newest(newest_seen, at_id[0])
                cursor.rows_synced += len(rows)
                cursor.last_run_at = timezone.now()
                cursor.last_error = "; ".join(problems)[:2000]
                cursor.save()
                _notify(page)
            stored = (cursor.updated_at, cursor.last_id)
            result.extend(page)
            if on_page is not None:
                on_page(len(rows))
            complete = len(rows) < page_size
            if complete or (max_pages is not None and pages >= max_pages):
                break
        if full and complete:
            result.extend(_reconcile(table, seen=seen, newest=newest_seen, started=started))
    except Exception as exc:
        _note_error(table, f"{type(exc).__name__}: {exc}")
        raise
    return result


def _reconcile(
    table: str, *, seen: set[UUID], newest: datetime | None, started: datetime
) -> SyncResult:
    """After a full read: mirror rows whose Supabase row is gone are marked deleted.

    Only rows whose mirrored version is not newer than the newest row read (a row the webhook
    brought in meanwhile is newer), and appointments the hub had before the read began.
    """
    result = SyncResult()
    with transaction.atomic():
        if _locked_cursor(table) is None:
            result.busy = True
            return result
        version = Q()
        if newest is not None:
            version = Q(supabase_updated_at__isnull=True) | Q(supabase_updated_at__lte=newest)
        mirrored: Iterable[UUID | None]
        if table == supabase.APPOINTMENTS:
            mirrored = (
                Appointment.objects.filter(version, created_at__lt=started)
                .exclude(status=AppointmentStatus.CANCELLED)
                .values_list("supabase_id", flat=True)
            )
        elif table == supabase.AGENDA:
            mirrored = AgendaBlock.objects.filter(version, deleted=False).values_list(
                "supabase_id", flat=True
            )
        else:
            mirrored = Interaction.objects.filter(version).values_list("supabase_id", flat=True)
        gone = [ident for ident in mirrored if ident is not None and ident not in seen]
        resolver = _Resolver()
        for supabase_id in gone:
            applied = row_apply(
                table=table, row=SupabaseRow(id=supabase_id), hard_delete=True, resolver=resolver
            )
            result.record(applied.change, applied.appointment)
        if gone:
            logger.info("supabase rows gone", extra={"table": table, "rows": len(gone)})
        _notify(result)
    return result


def supabase_sync_all(
    *, tables: Iterable[str] = SYNC_ORDER, max_pages: int | None = JOB_MAX_PAGES
) -> int:
    """The periodic job: every table, incrementally; how many mirror rows changed.

    Nothing when Supabase is not configured; stops at the first table Supabase cannot serve
    (the next run tries again), so that an outage costs one timeout per run.
    """
    if not supabase.supabase_configured():
        return 0
    applied = 0
    for table in tables:
        try:
            applied += sync_table(table=table, max_pages=max_pages).applied
        except supabase.SupabaseUnavailable as exc:
            logger.warning("supabase sync stopped: %s", exc, extra={"table": table})
            break
        except supabase.SupabaseError as exc:
            logger.error("supabase sync failed: %s", exc, extra={"table": table})
    return applied


# --- The database webhook ------------------------------------------------------------------------


def supabase_event_apply(event: InboundEvent) -> "Outcome":
    """Handler of `supabase.<table>.<insert|update|delete>`: apply the webhook's row now."""
    from kommo_hub.intake.handlers import Outcome, PermanentError

    _, table, kind = event.event_type.split(".", 2)
    payload = event.payload if isinstance(event.payload, dict) else {}
    schema = payload.get("schema")
    if schema not in (None, "", "public"):
        return Outcome(f"not the agenda: schema {str(schema)[:40]!r}", ignored=True)
    hard_delete = kind == "delete"
    name = "old_record" if hard_delete else "record"
    record = payload.get(name)
    if not isinstance(record, dict):
        raise PermanentError(f"a {kind.upper()} webhook of {table} without '{name}'")
    model = SupabaseRow if hard_delete else ROW_MODELS[table]
    try:
        row = model.model_validate(record)
    except ValidationError as exc:
        raise PermanentError(f"invalid {table} row: {_problems(exc)}") from exc
    applied = row_apply(table=table, row=row, hard_delete=hard_delete)
    result = SyncResult(rows=1)
    result.record(applied.change, applied.appointment)
    _notify(result)
    return Outcome(f"{table} {row.id}: {applied.change}", applied.lead)
