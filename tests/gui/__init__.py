"""GUI tests: pytest-qt with a real window (pytest-xvfb provides the X server)."""
