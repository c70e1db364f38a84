"""The optional C speed-ups (`swcdata/_fast.c`, built at install time when a C compiler is there).

``fast`` is the extension module, or None: where it was not built, or where the environment sets
``SWCDATA_NO_EXT=1``. Its functions give the same results as the Python code they replace (the
tests compare both), so None only means slower.
"""

from __future__ import annotations

import os
from types import ModuleType

fast: ModuleType | None = None
if os.environ.get("SWCDATA_NO_EXT", "") in ("", "0"):
    try:
        from swcdata import _fast as fast
    except ImportError:  # not built: the pure-Python path
        fast = None
