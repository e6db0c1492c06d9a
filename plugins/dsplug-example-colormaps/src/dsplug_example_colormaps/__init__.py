"""Example dsplug plugin: colour maps interpolated between a few anchor colours."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from dsplug.plugin import Colormap


class AnchorColormap(Colormap):
    """A colour map interpolated linearly between RGB anchors (row 0 = silence)."""

    anchors: ClassVar[tuple[tuple[float, float, float], ...]] = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

    def table(self) -> np.ndarray:
        """Return the (256, 3) float32 table with values in [0, 1]."""
        anchors = np.asarray(self.anchors, dtype=np.float64)
        positions = np.linspace(0.0, 1.0, len(anchors))
        levels = np.linspace(0.0, 1.0, 256)
        table = np.stack([np.interp(levels, positions, anchors[:, c]) for c in range(3)], axis=1)
        return table.astype(np.float32)


class Sunset(AnchorColormap):
    """Deep blue through magenta and orange to pale yellow."""

    anchors = ((0.05, 0.03, 0.20), (0.55, 0.10, 0.50), (0.95, 0.45, 0.20), (1.00, 0.95, 0.70))


class Ice(AnchorColormap):
    """Black through steel blue to white."""

    anchors = ((0.0, 0.0, 0.0), (0.15, 0.35, 0.60), (0.60, 0.85, 0.95), (1.0, 1.0, 1.0))
