"""Who is who, and which rows each person may see: the admins and the API share these rules.

Two groups (created by the migration kommo_hub 0007_roles_groups, kept complete on every
migrate by `groups_sync`):

- "Gerentes" (managers): every model permission of the hub's apps; they see every row.
- "Vendedores" (salespeople): view permissions on their own work, plus pausing / resuming the
  bot in their own conversations. What is "their own" is decided here, by queryset:
  a lead is theirs while its current assignment is theirs; so are that lead's assignments,
  conversations and bot changes; an appointment (and its reminders) is theirs when it is
  in their agenda.

A superuser is a manager. A user linked to a salesperson (Salesperson.user) who is not a manager
sees only their own rows in every admin, whatever Django permissions they hold. The
`*_visible_to` helpers are strict: anyone who is neither a manager nor a salesperson gets nothing.
"""

from typing import Any

from django.db.models import Exists, Model, OuterRef, QuerySet

from routing.models import Assignment, Salesperson

MANAGERS = "Gerentes"
SALESPEOPLE = "Vendedores"

HUB_APPS = ("kommo_hub", "routing", "botcontrol", "scheduling", "privacy")

# (app_label, codename): what a salesperson needs in the admin; rows are scoped by queryset.
SALESPERSON_PERMISSIONS = (
    ("kommo_hub", "view_lead"),
    ("kommo_hub", "view_conversation"),
    ("routing", "view_assignment"),
    ("botcontrol", "view_botconversation"),
    ("botcontrol", "view_botchange"),
    ("scheduling", "view_appointment"),
    ("scheduling", "view_reminder"),
    ("scheduling", "view_agendablock"),
    ("scheduling", "view_interaction"),
)

_NOBODY = object()


def is_manager(user: Any) -> bool:
    """An active superuser or a member of "Gerentes"."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_roles_is_manager", None)
    if cached is None:
        cached = user.groups.filter(name=MANAGERS).exists()
        user._roles_is_manager = cached
    return bool(cached)


def salesperson_for(user: Any) -> Salesperson | None:
    """The salesperson linked to an active user (Salesperson.user), looked up once per user
    object."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    cached = getattr(user, "_roles_salesperson", _NOBODY)
    if cached is _NOBODY:
        cached = Salesperson.objects.filter(user_id=user.pk).first()
        user._roles_salesperson = cached
    return cached  # type: ignore[return-value]


def is_scoped_salesperson(user: Any) -> bool:
    """A salesperson who is not a manager: sees only their own rows."""
    return salesperson_for(user) is not None and not is_manager(user)


def owned_by[M: Model](queryset: QuerySet[M], person: Salesperson, lead_path: str) -> QuerySet[M]:
    """The rows whose lead (at `lead_path`, e.g. "" for leads, "lead" for conversations) is
    currently assigned to `person`."""
    lead_ref = f"{lead_path}_id" if lead_path else "pk"
    current = Assignment.objects.filter(
        lead_id=OuterRef(lead_ref), is_current=True, salesperson=person
    )
    return queryset.filter(Exists(current))


def restrict[M: Model](user: Any, queryset: QuerySet[M], lead_path: str) -> QuerySet[M]:
    """What the admins do: a salesperson who is not a manager gets only their own rows; anyone
    else is left to Django's model permissions (the queryset unchanged)."""
    if not is_scoped_salesperson(user):
        return queryset
    person = salesperson_for(user)
    assert person is not None
    return owned_by(queryset, person, lead_path)


def _visible[M: Model](user: Any, queryset: QuerySet[M], lead_path: str) -> QuerySet[M]:
    if is_manager(user):
        return queryset
    person = salesperson_for(user)
    if person is None:
        return queryset.none()
    return owned_by(queryset, person, lead_path)


def leads_visible_to(user: Any) -> QuerySet[Any]:
    from kommo_hub.models import Lead

    return _visible(user, Lead.objects.all(), "")


def assignments_visible_to(user: Any) -> QuerySet[Assignment]:
    """Every assignment (history included) of the leads currently theirs."""
    return _visible(user, Assignment.objects.all(), "lead")


def conversations_visible_to(user: Any) -> QuerySet[Any]:
    from kommo_hub.models import Conversation

    return _visible(user, Conversation.objects.all(), "lead")


def appointments_visible_to(user: Any) -> QuerySet[Any]:
    """The appointments in their agenda."""
    from scheduling.models import Appointment

    queryset = Appointment.objects.all()
    if is_manager(user):
        return queryset
    person = salesperson_for(user)
    if person is None:
        return queryset.none()
    return queryset.filter(salesperson=person)


def groups_sync(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate (after each hub app's permissions exist): both groups exist, "Gerentes" has
    every model permission of the app (models added later included) and "Vendedores" its
    SALESPERSON_PERMISSIONS. Also rebuilds them after a flush (transactional tests)."""
    from django.contrib.auth.models import Group, Permission

    label = getattr(sender, "label", None)
    if label not in HUB_APPS:
        return
    permissions = Permission.objects.using(using).filter(content_type__app_label=label)
    managers, _ = Group.objects.using(using).get_or_create(name=MANAGERS)
    managers.permissions.add(*permissions)
    own = [codename for app, codename in SALESPERSON_PERMISSIONS if app == label]
    salespeople, _ = Group.objects.using(using).get_or_create(name=SALESPEOPLE)
    salespeople.permissions.add(*permissions.filter(codename__in=own))
