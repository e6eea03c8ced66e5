"""Reusable PyVista views (pyvistaqt.QtInteractor based) for the workspaces."""
