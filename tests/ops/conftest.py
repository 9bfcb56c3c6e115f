from tests.outbox.support import http_mock, kommo_on, local_server, n8n_on

__all__ = ["http_mock", "kommo_on", "local_server", "n8n_on"]
