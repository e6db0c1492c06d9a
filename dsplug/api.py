"""The plugin contract's old import path: ``dsplug.api`` is :mod:`dsplug.plugin`.

Third-party plugins written against ``dsplug.api`` keep working; new code imports
:mod:`dsplug.plugin`.
"""

from dsplug.plugin import *  # noqa: F403  (the same names)
from dsplug.plugin import __all__  # noqa: F401
