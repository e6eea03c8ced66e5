"""Files the app ships or opens by default, and the file-dialog filters it offers."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CHECKPOINT = REPO_ROOT / "assets" / "demo_prn.pt"
DATA_FILE_FILTER = "Keypoint sequences (*.mat *.npz);;All files (*)"
CHECKPOINT_FILTER = "PRN checkpoints (*.pt);;All files (*)"
