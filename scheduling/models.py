"""Models of the scheduling app arrive with its issue."""
