"""Start the GUI: the QApplication, the main window, the files named on the command line.

Importing this module creates nothing; :func:`run_app` does (tests build their own window).
"""

from __future__ import annotations

import argparse
import sys


def run_app(args: argparse.Namespace) -> int:
    """Open the window and run the Qt event loop; returns the exit code.

    ``args`` (from main.py): ``mesh`` (path or None: the demo template), ``handles`` (K or
    None: the editor's default), ``checkpoint`` (path or None).
    """
    import pyvista
    from PyQt6.QtWidgets import QApplication

    from app.main_window import APPLICATION, ORGANIZATION, MainWindow

    pyvista.OFF_SCREEN = False
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)

    window = MainWindow()
    window.show()
    try:
        editor = window.workspace("Editor")
    except KeyError:
        editor = None
    if editor is not None:
        num_handles = getattr(args, "handles", None)
        mesh = getattr(args, "mesh", None)
        if mesh:
            editor.open_mesh(mesh, num_handles=num_handles)
        else:
            editor.open_demo(num_handles=num_handles)
    checkpoint = getattr(args, "checkpoint", None)
    if checkpoint:
        window.open_checkpoint(checkpoint)
    return app.exec()
