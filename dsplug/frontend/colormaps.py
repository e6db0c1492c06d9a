"""Built-in colour-map plugins (group ``dsplug.colormaps``) and a lookup of any matplotlib map.

Each plugin returns a 256-entry RGB table; the front-end maps level ``i`` of a [0, 255] image
to row ``i`` (row 0 = the lowest level, i.e. silence).

Examples
--------
>>> from dsplug.frontend.colormaps import Viridis, colormap_table
>>> Viridis().table().shape
(256, 3)
>>> colormap_table("twilight").dtype
dtype('float32')
"""

from __future__ import annotations

import difflib
from typing import ClassVar

import matplotlib
import numpy as np

from dsplug import plugin as api
from dsplug.errors import PluginNotFound

__all__ = [
    "Cividis",
    "Gray",
    "Inferno",
    "Magma",
    "MatplotlibColormap",
    "Plasma",
    "Viridis",
    "colormap_table",
    "matplotlib_table",
]

#: Number of entries of every colour-map table.
TABLE_SIZE = 256


def colormap_table(name: str) -> np.ndarray:
    """The 256-entry RGB table of the colour map ``name``: a ``dsplug.colormaps`` plugin of that
    name (see ``dsplug plugins``), else matplotlib's (:func:`matplotlib_table`).

    Returns
    -------
    table : np.ndarray [shape=(256, 3), dtype=float32]
        RGB values in [0, 1]; row 0 colours the lowest level, row 255 the highest.

    Raises
    ------
    PluginNotFound
        Neither a plugin nor matplotlib has that name, or the plugin's table is not (256, 3)
        values in [0, 1].
    """
    from dsplug import registry

    if name in registry.names("colormaps"):
        table = np.asarray(registry.load("colormaps", name)().table(), dtype=np.float32)
        if table.shape != (TABLE_SIZE, 3) or not np.all((table >= 0) & (table <= 1)):
            raise PluginNotFound(
                f"colour map plugin {name!r} returned a table of shape {table.shape}; "
                f"expected ({TABLE_SIZE}, 3) values in [0, 1]"
            )
        return table
    return matplotlib_table(name)


def matplotlib_table(name: str) -> np.ndarray:
    """Return the 256-entry RGB table of a matplotlib colour map.

    Parameters
    ----------
    name : str
        A matplotlib colour-map name, e.g. ``"viridis"``, ``"magma_r"``, ``"twilight"``.

    Returns
    -------
    table : np.ndarray [shape=(256, 3), dtype=float32]
        RGB values in [0, 1]; row 0 colours the lowest level, row 255 the highest.

    Raises
    ------
    PluginNotFound
        If matplotlib has no colour map of that name; the message names the closest matches.
    """
    known = list(matplotlib.colormaps)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise PluginNotFound(
            f"no colour map named {name!r}: neither a dsplug.colormaps plugin nor a matplotlib "
            f"colour map{hint} (`dsplug plugins colormaps` lists the plugins; any name in "
            "matplotlib.colormaps works too)"
        )
    cmap = matplotlib.colormaps[name].resampled(TABLE_SIZE)
    rgba = cmap(np.arange(TABLE_SIZE))  # integer input indexes the table directly
    return np.ascontiguousarray(rgba[:, :3], dtype=np.float32)


class MatplotlibColormap(api.Colormap):
    """A colour map taken from matplotlib by name (subclasses set :attr:`cmap_name`)."""

    cmap_name: ClassVar[str] = ""

    def table(self) -> np.ndarray:
        """Return the lookup table.

        Returns
        -------
        table : np.ndarray [shape=(256, 3), dtype=float32]
            RGB values in [0, 1]; row 0 colours the lowest level.
        """
        return matplotlib_table(self.cmap_name)


class Viridis(MatplotlibColormap):
    """Viridis: perceptually uniform blue-green-yellow (the paper's default)."""

    cmap_name = "viridis"


class Cividis(MatplotlibColormap):
    """Cividis: perceptually uniform blue-yellow, readable with colour-vision deficiency."""

    cmap_name = "cividis"


class Inferno(MatplotlibColormap):
    """Inferno: perceptually uniform black-red-yellow."""

    cmap_name = "inferno"


class Magma(MatplotlibColormap):
    """Magma: perceptually uniform black-purple-white."""

    cmap_name = "magma"


class Plasma(MatplotlibColormap):
    """Plasma: perceptually uniform blue-purple-yellow."""

    cmap_name = "plasma"


class Gray(MatplotlibColormap):
    """Gray: black to white (the same value in the three channels)."""

    cmap_name = "gray"
