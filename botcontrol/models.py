"""Models of the botcontrol app arrive with its issue."""
