"""Calibration: turn a tier's label scores into a calibrated confidence and a threshold policy.

Owns fitting and applying artifacts (`fitting`), choosing the calibrator (`select`), the versioned
artifact store in the data dir (`store`), label log-prob collection (`label_scoring`) and the
`cascade calibrate` run (`run`). Imports `routers` and `agents`; `run` also imports `core` lazily
for the ladder's settings and model files.
"""

from .fitting import CalibrationArtifact
from .store import ArtifactStore

__all__ = ["ArtifactStore", "CalibrationArtifact"]
