"""The hub's API for machines (n8n): scheduling, authenticated with API keys."""
