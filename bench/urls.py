"""URLs for the benchmarks: the hub's own, plus a baseline that only stores the raw body.

Selected with DJANGO_ROOT_URLCONF=bench.urls (bench/ingest.py sets it for its gunicorn).
"""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kommo_hub.models import InboundRequest


@csrf_exempt
@require_POST
def baseline(request: HttpRequest) -> JsonResponse:
    """The least an ingest endpoint can do: one INSERT of the raw body, then 200."""
    InboundRequest.objects.create(source="kommo", body=request.body.decode())
    return JsonResponse({"accepted": 1, "duplicates": 0})


urlpatterns = [
    path("bench/baseline/", baseline, name="bench-baseline"),
    path("", include("kommo_hub.urls")),
]
