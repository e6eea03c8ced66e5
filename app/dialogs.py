"""Message dialogs shared by every workspace.

Call them through the module (``dialogs.show_error(...)``), not via ``from app.dialogs import
show_error``, so that tests can intercept them with ``monkeypatch.setattr(dialogs, ...)``.
"""

from __future__ import annotations

from PyQt6.QtWidgets import QMessageBox, QWidget

from app.workers import format_exception


def error_text(exc_or_message: BaseException | str) -> str:
    """The text a user reads: InputError messages as they are, other exceptions as ``Type: text``."""
    if isinstance(exc_or_message, BaseException):
        return format_exception(exc_or_message)
    return str(exc_or_message)


def show_error(parent: QWidget | None, title: str, exc_or_message: BaseException | str) -> None:
    """Modal error box naming the problem; the caller keeps whatever was loaded before."""
    QMessageBox.critical(parent, title, error_text(exc_or_message))


def show_info(parent: QWidget | None, title: str, message: str) -> None:
    """Modal information box (e.g. a refused operation that is not an error of the program)."""
    QMessageBox.information(parent, title, message)
