from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from kommo_hub.api.docs import DocsView, SchemaView
from kommo_hub.intake import receivers
from kommo_hub.ops import health
from kommo_hub.views import my_leads

urlpatterns = [
    path("webhooks/kommo/<str:secret>/", receivers.kommo_webhook, name="webhook-kommo"),
    path("webhooks/rdstation/<str:secret>/", receivers.rdstation_webhook, name="webhook-rdstation"),
    path("webhooks/forms/<str:secret>/", receivers.forms_webhook, name="webhook-forms"),
    path("webhooks/n8n/<str:secret>/", receivers.n8n_callback, name="webhook-n8n"),
    path("webhooks/n8n/<str:secret>/claim/", receivers.n8n_claim, name="webhook-n8n-claim"),
    path("webhooks/supabase/<str:secret>/", receivers.supabase_webhook, name="webhook-supabase"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("kommo_hub.api.v1.urls")),
    path("api/", include("kommo_hub.api.urls")),
    path("meus-leads/", my_leads.my_leads, name="my-leads"),
    # Before the admin's own URLs: a salesperson's "home" is "Meus leads".
    path("admin/", my_leads.admin_index),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
