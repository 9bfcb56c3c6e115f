"""factory_boy factories for the routing app's rows."""

from datetime import date, time

import factory

from routing.models import (
    Area,
    AreaMembership,
    CompanyHoliday,
    Salesperson,
    TimeOff,
    WorkingHours,
)


class SalespersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Salesperson

    name = factory.Faker("name", locale="pt_BR")
    active = True


class AreaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Area

    name = factory.Sequence(lambda n: f"Área {n}")
    slug = factory.Sequence(lambda n: f"area-{n}")


class AreaMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AreaMembership

    area = factory.SubFactory(AreaFactory)
    salesperson = factory.SubFactory(SalespersonFactory)


class WorkingHoursFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkingHours

    salesperson = factory.SubFactory(SalespersonFactory)
    weekday = 0
    starts = time(9)
    ends = time(18)


class TimeOffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TimeOff

    salesperson = factory.SubFactory(SalespersonFactory)
    kind = TimeOff.Kind.VACATION
    first_day = date(2026, 12, 1)
    last_day = factory.SelfAttribute("first_day")


class CompanyHolidayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CompanyHoliday

    date = factory.Sequence(lambda n: date.fromordinal(date(2030, 1, 1).toordinal() + n))
    name = "Dia da empresa"


def always_working(salesperson: Salesperson) -> list[WorkingHours]:
    """Round-the-clock hours, every day of the week."""
    return [
        WorkingHoursFactory(salesperson=salesperson, weekday=day, starts=time(0), ends=time(0))
        for day in range(7)
    ]
