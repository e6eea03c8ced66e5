"""A horizontal colour bar drawn by Qt below a 3D view, so it never covers the mesh or a handle.

It shows a VTK lookup table (the one the mapper colours with) between two values, a title, and
tick labels at round values formatted with a printf-style format; zero always prints as "0"
(never "-0" or "-0.000").
"""

from __future__ import annotations

import math

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QLinearGradient, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

BAR_HEIGHT = 10
MARGIN = 8


def format_tick(value: float, fmt: str = "%.3f") -> str:
    """``fmt % value``, except that a value that prints as zero prints as ``"0"``."""
    text = fmt % value
    try:
        if float(text) == 0.0:
            return "0"
    except ValueError:
        pass
    return text


def nice_ticks(lo: float, hi: float, target: int = 5) -> np.ndarray:
    """Round values (1, 2 or 5 times a power of ten apart) inside [lo, hi]: the coarsest such
    spacing that gives at least 3 of them, about ``target``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return np.array([lo])
    raw = (hi - lo) / max(target - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    steps = [m * power for m in (0.1, 0.2, 0.5, 1, 2, 5, 10)]
    best = None
    for step in sorted(steps, reverse=True):
        first = math.ceil(lo / step - 1e-9) * step
        ticks = np.arange(first, hi + 1e-9 * step, step)
        ticks = ticks[(ticks >= lo - 1e-9 * step) & (ticks <= hi + 1e-9 * step)]
        best = ticks
        if len(ticks) >= 3:
            break
    # Round away float noise (0.30000000000000004) and negative zeros.
    return np.round(best, 12) + 0.0


class ColourBar(QWidget):
    """Title, colour gradient and tick labels in one strip (hidden until :meth:`set_range`,
    unless :meth:`reserve` keeps its room)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title = ""
        self._range = (0.0, 1.0)
        self._fmt = "%.3f"
        self._colours: list[QColor] = [QColor("black"), QColor("white")]
        self._reserved = False
        self._shown = False
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() - 1.0, 7.0))
        self.setFont(font)
        line = self.fontMetrics().height()
        self.setFixedHeight(2 * line + BAR_HEIGHT + 2 * 4)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAutoFillBackground(True)
        palette = self.palette()
        palette.setColor(self.backgroundRole(), QColor("white"))
        self.setPalette(palette)
        self.hide()

    # ----------------------------------------------------------------- content
    @property
    def title(self) -> str:
        return self._title

    @property
    def value_range(self) -> tuple[float, float]:
        return self._range

    def set_range(self, title: str, lo: float, hi: float, lookup_table, fmt: str = "%.3f") -> None:
        """Show ``lookup_table`` (a vtkLookupTable) mapped over [lo, hi] under ``title``."""
        self._title = title
        self._range = (float(lo), float(hi))
        self._fmt = fmt
        count = max(int(lookup_table.GetNumberOfTableValues()), 2)
        picks = np.linspace(0, count - 1, min(count, 64)).round().astype(int)
        self._colours = []
        for i in picks:
            r, g, b, _a = lookup_table.GetTableValue(int(i))
            self._colours.append(QColor.fromRgbF(r, g, b))
        self._shown = True
        self.show()
        self.update()

    def clear(self) -> None:
        """No colouring: the strip goes (or stays, blank, when its room is reserved)."""
        self._title = ""
        self._shown = False
        self.setVisible(self._reserved)
        self.update()

    def reserve(self, on: bool = True) -> None:
        """Keep the strip's room while nothing is coloured, so the 3D view above it keeps
        its size (and a handle stays under the cursor) when colouring comes and goes."""
        self._reserved = bool(on)
        self.setVisible(self._reserved or self._shown)

    @property
    def showing(self) -> bool:
        """A colour scale is drawn (not just the reserved blank strip)."""
        return self._shown

    def ticks(self) -> list[tuple[float, str]]:
        """(value, label) of the tick labels drawn (none while nothing is coloured)."""
        if not self._shown:
            return []
        lo, hi = self._range
        return [(float(v), format_tick(float(v), self._fmt)) for v in nice_ticks(lo, hi)]

    def labels(self) -> list[str]:
        """Every text drawn: the title, then the tick labels left to right."""
        return [self._title] + [text for _, text in self.ticks()]

    # ----------------------------------------------------------------- drawing
    def _bar_rect(self) -> QRectF:
        line = self.fontMetrics().height()
        return QRectF(MARGIN, 2 + line, max(self.width() - 2 * MARGIN, 1), BAR_HEIGHT)

    def paintEvent(self, _event) -> None:
        if not self._shown:
            return
        painter = QPainter(self)
        metrics = self.fontMetrics()
        bar = self._bar_rect()
        painter.setPen(QColor("black"))
        painter.drawText(
            QRectF(MARGIN, 1, bar.width(), metrics.height()),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            self._title,
        )
        gradient = QLinearGradient(bar.left(), 0, bar.right(), 0)
        n = len(self._colours)
        for i, colour in enumerate(self._colours):
            gradient.setColorAt(i / (n - 1), colour)
        painter.fillRect(bar, gradient)
        painter.setPen(QPen(QColor("#444444"), 1))
        painter.drawRect(bar)
        lo, hi = self._range
        span = hi - lo if hi > lo else 1.0
        label_y = bar.bottom() + 2
        right_of_last = -1.0
        for value, text in self.ticks():
            x = float(bar.left() + (value - lo) / span * bar.width())
            tick_x, tick_y = round(x), int(bar.bottom())
            painter.drawLine(tick_x, tick_y, tick_x, tick_y + 3)
            width = metrics.horizontalAdvance(text)
            left = min(max(x - width / 2, 0), self.width() - width)
            if left < right_of_last + 4:  # too close to the previous label: skip its text
                continue
            right_of_last = left + width
            painter.drawText(
                QRectF(left, label_y, width + 1, metrics.height()),
                int(Qt.AlignmentFlag.AlignCenter),
                text,
            )
        painter.end()

    def image(self) -> np.ndarray:
        """(H,W,3) uint8 RGB of the bar as drawn (appended to the view's screenshots)."""
        picture = self.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        width, height = picture.width(), picture.height()
        data = np.frombuffer(picture.constBits().asstring(picture.sizeInBytes()), np.uint8)
        return data.reshape(height, picture.bytesPerLine())[:, : 3 * width].reshape(
            height, width, 3
        )
