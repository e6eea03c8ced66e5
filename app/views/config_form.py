"""A validated settings form built from a config dataclass (PRN's TrainConfig, CategoryConfig).

One line edit per field, labelled from a dict (a field missing there shows under its own name,
so settings added to a config later appear without changes here); fields whose annotation
admits None may be left empty ("auto"). :meth:`ConfigForm.read` parses the text into the field's
type (int, float, bool, str, a tuple of numbers written "0.2, 0.5") and calls the config's
``validate()``; an error is shown under the field it names. Empty automatic fields can show
what the engine would choose (:meth:`ConfigForm.show_automatic`, e.g. "auto: 256").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QFormLayout, QGroupBox, QLabel, QLineEdit, QWidget

from engine.core.errors import InputError

_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOL_WORDS |= {"false": False, "no": False, "off": False, "0": False}


def form_fields(config_type: type, labels: dict[str, str], skip: set[str]) -> list[tuple]:
    """``(field, label, kind, automatic)`` for every field of ``config_type`` not in ``skip``:
    kind is int, float, bool, str or tuple (from the annotation); ``automatic`` fields may be
    left empty (None: the engine chooses). Fields of other types (dicts) are left out."""
    rows = []
    for f in dataclasses.fields(config_type):
        if f.name in skip:
            continue
        annotation = str(f.type)
        if "dict" in annotation:
            continue
        if "tuple" in annotation:
            kind = tuple
        else:
            kind = next((k for k in (bool, int, float) if k.__name__ in annotation), str)
        automatic = "None" in annotation and kind is not str
        label = labels.get(f.name, f.name.replace("_", " ").capitalize())
        rows.append((f.name, label, kind, automatic))
    return rows


class ConfigForm(QGroupBox):
    """The form (see the module docstring).

    Args:
        config_type: the dataclass (with ``validate()``).
        labels: field -> label.
        skip: fields not shown (their values come from elsewhere, e.g. the data panel).
        hints: field -> placeholder text for fields that may be empty (default "auto" for
            automatic fields).

    Signals:
        edited(): a field's editing finished (the form re-validated itself).
    """

    edited = pyqtSignal()

    def __init__(
        self,
        title: str,
        config_type: type,
        labels: dict[str, str],
        skip: set[str] = frozenset(),
        hints: dict[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(title, parent)
        self.config_type = config_type
        self.rows = form_fields(config_type, labels, set(skip))
        self.hints = dict(hints or {})
        self.fields: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}
        form = QFormLayout(self)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        for name, label, _kind, automatic in self.rows:
            edit = QLineEdit()
            edit.setObjectName(f"field_{name}")
            if name in self.hints:
                edit.setPlaceholderText(self.hints[name])
            elif automatic:
                edit.setPlaceholderText("auto")
            error = QLabel()
            error.setStyleSheet("color: #c0392b;")
            error.setWordWrap(True)
            error.hide()
            form.addRow(label, edit)
            form.addRow("", error)
            edit.editingFinished.connect(self.edited)
            self.fields[name] = edit
            self.errors[name] = error

    @property
    def automatic_fields(self) -> list[str]:
        """The fields that may be left empty for the engine to choose."""
        return [name for name, _label, _kind, automatic in self.rows if automatic]

    def fill(self, config: Any) -> None:
        """Show ``config``'s values (None as an empty field)."""
        for name, _label, kind, _automatic in self.rows:
            self.fields[name].setText(_text(getattr(config, name), kind))
        self.clear_errors()

    def show_automatic(self, resolved: Any | None) -> None:
        """Placeholders of the automatic fields: ``"auto: VALUE"`` with the value ``resolved``
        (a config whose automatic fields were chosen, e.g. ``TrainConfig.resolved``) holds,
        the plain hint when ``resolved`` is None or leaves the field None."""
        for name, _label, kind, automatic in self.rows:
            if not automatic:
                continue
            value = None if resolved is None else getattr(resolved, name)
            hint = self.hints.get(name, "auto")
            self.fields[name].setPlaceholderText(
                hint if value is None else f"auto: {_text(value, kind)}"
            )

    def set_placeholder(self, name: str, text: str) -> None:
        """Placeholder of an empty field (e.g. "auto: 256")."""
        if name in self.fields:
            self.fields[name].setPlaceholderText(text)

    def clear_errors(self) -> None:
        for name, label in self.errors.items():
            label.hide()
            label.clear()
            self.fields[name].setStyleSheet("")

    def mark_error(self, field: str | None, message: str) -> None:
        """Show ``message`` under ``field`` (dotted names use their last part)."""
        name = (field or "").split(".")[-1]
        if name in self.errors:
            self.errors[name].setText(message)
            self.errors[name].show()
            self.fields[name].setStyleSheet("border: 1px solid #c0392b;")

    def read(self, **given: Any) -> Any:
        """The form as a validated config; ``given`` fills the fields the form does not show.

        Raises:
            InputError: naming the field that is malformed or out of range.
        """
        values: dict[str, Any] = dict(given)
        for name, _label, kind, automatic in self.rows:
            text = self.fields[name].text().strip()
            if kind is str or (automatic and not text):
                values[name] = text or None
                continue
            if kind is bool:
                if text.lower() not in _BOOL_WORDS:
                    raise InputError(f"expected true or false, got {text!r}", field=name)
                values[name] = _BOOL_WORDS[text.lower()]
                continue
            try:
                if kind is tuple:
                    values[name] = tuple(float(p) for p in text.replace(",", " ").split())
                else:
                    values[name] = int(text) if kind is int else float(text)
            except ValueError:
                expected = {int: "an integer", float: "a number", tuple: "numbers"}[kind]
                raise InputError(f"expected {expected}, got {text!r}", field=name) from None
        config = self.config_type(**values)
        config.validate()
        return config

    def validate(self, *, check: Callable[[Any], None] | None = None, **given: Any) -> bool:
        """Re-read the form, marking the first error; True when it is valid.

        ``check`` (optional) is called with the config read and may raise :class:`InputError`
        too (checks that depend on more than the form, e.g. on the loaded data's size).
        """
        self.clear_errors()
        try:
            config = self.read(**given)
            if check is not None:
                check(config)
        except InputError as exc:
            self.mark_error(exc.field, exc.problem)
            return False
        return True


def _text(value: Any, kind: type) -> str:
    """A field's value as the form shows it (None empty, booleans lower case, tuples
    "0.2, 0.5")."""
    if value is None:
        return ""
    if kind is tuple:
        return ", ".join(f"{v:g}" for v in value)
    return str(value).lower() if kind is bool else str(value)
