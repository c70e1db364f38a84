"""Builds the optional C speed-ups (swcdata/_native/_fast.c, _extract.c, _tokens.c) and ships the recipes; all other
metadata lives in pyproject.toml.

`optional=True`: where no C compiler is available the install still succeeds and swcdata runs its
pure-Python lexer (same results, slower); `python -c "import swcdata._native._fast"` tells which one you have.

The fine-tuning recipes live in the top-level `finetune/` folder; they are installed as package data
of `swcdata.recipes` (`package_dir` maps that package to `finetune/`), so a wheel holds them under
`swcdata/recipes/*.yaml` and `swcdata finetune --recipe NAME` finds them outside the repository.
"""

import os

from setuptools import Extension, find_packages, setup

# -O3, unless CFLAGS names an optimisation level of its own (the AddressSanitizer build of .ci/run: -O1)
OPTIMISE = [] if any(f.startswith("-O") for f in os.environ.get("CFLAGS", "").split()) else ["-O3"]

setup(
    packages=[*find_packages(include=["swcdata*"]), "swcdata.recipes"],
    package_dir={"swcdata.recipes": "finetune"},
    package_data={"swcdata.recipes": ["*.yaml", "deepspeed/*.json"]},
    ext_modules=[Extension("swcdata._native._fast", ["swcdata/_native/_fast.c", "swcdata/_native/_extract.c",
                                                   "swcdata/_native/_tokens.c"],
                           depends=["swcdata/_native/_fast.h"], optional=True, extra_compile_args=OPTIMISE)],
)
