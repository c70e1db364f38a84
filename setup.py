"""Builds the optional C speed-ups (swcdata/_fast.c, _extract.c, _json.c); all metadata lives in pyproject.toml.

`optional=True`: where no C compiler is available the install still succeeds and swcdata runs its
pure-Python lexer (same results, slower); `python -c "import swcdata._fast"` tells which one you have.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("swcdata._fast", ["swcdata/_fast.c", "swcdata/_extract.c", "swcdata/_json.c"],
                             depends=["swcdata/_fast.h"], optional=True, extra_compile_args=["-O3"])])
