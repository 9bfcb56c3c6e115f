"""Server-rendered pages for people (the admin aside)."""
