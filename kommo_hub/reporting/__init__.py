"""Reports on leads, routing, response times, the bot and the agenda (issue 6).

`kommo_hub.reporting.selectors` holds the queries as plain functions: the API (/api/v1/) and
the admin dashboard both call them.
"""
