"""The reporting API, /api/v1/: leads, assignments and the summary reports (issue 6)."""
