"""Session state as QObjects emitting signals; no widgets here, so they test without a window."""
