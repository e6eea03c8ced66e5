"""The keypoint data panel: choose a built-in synthetic set or a .mat/.npz file, see what loaded.

Shared by the Training and Compare workspaces.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QWidget,
)

from app.paths import DATA_FILE_FILTER
from engine.io.keypoints import LEARNED_SYNTHETIC_SPEC

#: Built-in data sets offered in the data panel: (label, load_dataset spec).
BUILTIN_DATASETS = [
    ("Synthetic human (default training set)", "synthetic:human"),
    ("Synthetic human, small (2,000 frames)", "synthetic:human?frames=2000"),
    (
        "Synthetic human, large (100,000 frames: the learned setting)",
        LEARNED_SYNTHETIC_SPEC,
    ),
]


def sequence_summary(sequence) -> str:
    """One-paragraph description of a sequence for the data panel."""
    gt = "yes" if sequence.points3d is not None else "no"
    return (
        f"{sequence.num_frames:,} frames, {sequence.num_points} points, "
        f"{100.0 * sequence.missing_ratio:.1f}% missing, 3D ground truth: {gt}"
    )


class DataPanel(QGroupBox):
    """Choose a built-in synthetic set or a .mat/.npz file; shows what was loaded.

    Signals:
        requested(str): the user asked for this ``load_dataset`` spec.
    """

    requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None, datasets=BUILTIN_DATASETS) -> None:
        super().__init__("Data", parent)
        self.combo = QComboBox()
        for label, spec in datasets:
            self.combo.addItem(label, spec)
        self.load_button = QPushButton("Load")
        self.file_button = QPushButton("Open file…")
        self.info = QLabel("No data loaded.")
        self.info.setWordWrap(True)
        layout = QGridLayout(self)
        layout.addWidget(self.combo, 0, 0, 1, 2)
        layout.addWidget(self.load_button, 1, 0)
        layout.addWidget(self.file_button, 1, 1)
        layout.addWidget(self.info, 2, 0, 1, 2)
        self.load_button.clicked.connect(lambda: self.requested.emit(self.combo.currentData()))
        self.file_button.clicked.connect(self._choose_file)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open keypoint sequence", "", DATA_FILE_FILTER)
        if path:
            self.requested.emit(path)

    def show_sequence(self, sequence, spec: str) -> None:
        """Describe the loaded ``sequence`` (and select/add ``spec`` in the combo)."""
        index = self.combo.findData(spec)
        if index < 0:
            self.combo.addItem(Path(spec).name if Path(spec).suffix else spec, spec)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)
        self.info.setText(sequence_summary(sequence))
