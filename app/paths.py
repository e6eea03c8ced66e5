"""Files the app ships or opens by default, and the file-dialog filters it offers."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CHECKPOINT = REPO_ROOT / "assets" / "demo_prn.pt"
DATA_FILE_FILTER = "Keypoint sequences (*.mat *.npz);;All files (*)"
CHECKPOINT_FILTER = "PRN checkpoints (*.pt);;All files (*)"


def autosave_file(name: str) -> Path:
    """Default autosave checkpoint ``name`` in the user's data folder
    (``$XDG_DATA_HOME/shapebench/autosave``, ``~/.local/share`` by default; created here when
    possible), so that a run never litters the folder the app was started from. A folder that
    cannot be made (a read-only home) is not an error here: the save names it when it fails."""
    root = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = root / "shapebench" / "autosave"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    return folder / name
