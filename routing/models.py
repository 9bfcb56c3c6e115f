"""Models of the routing app arrive with its issue."""
