"""The workspaces shown as tabs of the main window, in tab order.

Each entry is ``"module:Class"``; add ONE line for a new workspace (see app/main_window.py for
the hooks a workspace may implement). Classes are imported here, when the package is imported.
"""

from __future__ import annotations

from importlib import import_module

_WORKSPACES = [
    "app.workspaces.editor:EditorWorkspace",
    "app.workspaces.training:TrainingWorkspace",
    "app.workspaces.compare:CompareWorkspace",
    "app.workspaces.modes:ModesWorkspace",
    "app.workspaces.category:CategoryWorkspace",
]


def _load(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(import_module(module), name)


WORKSPACE_CLASSES: list[type] = [_load(spec) for spec in _WORKSPACES]
