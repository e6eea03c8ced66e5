"""Frame slider with play/pause, playback speed and a depth-sign toggle (Training, Compare)."""

from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

PLAY_FPS = 25.0
SPEEDS = [("0.25x", 0.25), ("0.5x", 0.5), ("1x", 1.0), ("2x", 2.0), ("4x", 4.0)]


class FrameBar(QWidget):
    """Frame slider with play/pause, playback speed and a depth-sign toggle.

    Signals:
        frame_changed(int): the slider moved (by the user or by playback).
        flip_changed(bool): the depth-sign toggle changed.
    """

    frame_changed = pyqtSignal(int)
    flip_changed = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.label = QLabel("frame 0 / 0")
        self.speed = QComboBox()
        for text, factor in SPEEDS:
            self.speed.addItem(text, factor)
        self.speed.setCurrentIndex(2)
        self.flip = QCheckBox("Flip depth")
        self.flip.setToolTip("Mirror the reconstruction in depth (orthographic 2D cannot tell)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.play_button, self.slider, self.label, self.speed, self.flip):
            layout.addWidget(w, 1 if w is self.slider else 0)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._advance)
        self.play_button.toggled.connect(self.set_playing)
        self.speed.currentIndexChanged.connect(self._update_interval)
        self.slider.valueChanged.connect(self._on_value)
        self.flip.toggled.connect(self.flip_changed)
        self._update_interval()

    def set_count(self, count: int) -> None:
        """Frames available (the slider spans 0..count-1)."""
        self.slider.setRange(0, max(count - 1, 0))
        self._on_value(self.slider.value(), emit=False)

    def set_frame(self, frame: int) -> None:
        """Move the slider (emits frame_changed when the frame changes)."""
        self.slider.setValue(int(frame))

    @property
    def frame(self) -> int:
        """The current frame index."""
        return self.slider.value()

    def set_playing(self, playing: bool) -> None:
        """Start or stop playback."""
        if self.play_button.isChecked() != playing:
            self.play_button.setChecked(playing)
            return
        self.play_button.setText("Pause" if playing else "Play")
        if playing:
            self.timer.start()
        else:
            self.timer.stop()

    def _update_interval(self) -> None:
        factor = float(self.speed.currentData())
        self.timer.setInterval(max(int(1000.0 / (PLAY_FPS * factor)), 10))

    def _advance(self) -> None:
        if self.slider.maximum() == 0:
            return
        nxt = self.slider.value() + 1
        self.slider.setValue(0 if nxt > self.slider.maximum() else nxt)

    def _on_value(self, value: int, emit: bool = True) -> None:
        self.label.setText(f"frame {value} / {self.slider.maximum()}")
        if emit:
            self.frame_changed.emit(value)
