"""The build cache: what the last build of a dataset computed per text, kept for its next build.

`<home>/<name>/.cache/<step>.parquet` holds one `swcdata.steps.memo.Memo` per step that keeps one (`checks`:
validation's code findings; `augment`: what became of each record augmented). A build reads them before its
steps, hands them to the steps (which work only on the texts they lack) and, once its version is published,
replaces them with the memos of its own run (every text it saw: the cache holds one build's work, it does not
grow from build to build). `audit.parquet` holds the audit's features of every record of the last build's splits
(`swcdata.steps.features.FeatureMemo`: n-gram hashes, code, code windows and signatures; the local engine's).
`<home>/<name>/.cache/inputs/` holds the prepared inputs of the local engine
(`swcdata.steps.prepared`): each input file's validation, whole, by its bytes; the same rule, one build's files.

Why a cache and not a part of the version, like the signature index: a version's files are its data and what
reading it needs (`dedup --against` and `audit --reference` read the index); these memos only save work. A
version is the same, byte for byte, whether a build found a cache or not, on either engine (a Ray build reads
and writes it on its driver, and broadcasts the memos to its workers). So they are not in the content hash, and
`--no-cache` ignores them.

Bad input: a cache file that cannot be read as a memo (truncated, another format) is not used, and the build
says so in its result (`cache`); memos of other parameters are not used either (the step's note names them).
Files are replaced atomically (written beside, then renamed), so a build that dies leaves the old one whole.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from swcdata.steps.memo import Memo, read_memo, write_memo

CACHE_DIR = ".cache"


class CacheUse(BaseModel):
    """What a build took from its cache for one step, and what it left there."""

    model_config = ConfigDict(extra="forbid")

    texts: int = Field(0, description="Texts (records) the step saw.")
    reused: int = Field(0, description="Of them, those whose result came from the cache (not worked on again).")
    kept: int = Field(0, description="Distinct texts of this build written to the cache for the next one.")
    note: str | None = Field(None, description="Why the cache was not used or not written, when it was not.")


class BuildCache:
    """The memos of one dataset's builds, in `<home>/<name>/.cache/`."""

    def __init__(self, home: Path, name: str) -> None:
        self.folder = home / name / CACHE_DIR

    @property
    def inputs(self) -> Path:
        """The prepared inputs' folder (`swcdata.steps.prepared`)."""
        return self.folder / "inputs"

    def path(self, step: str) -> Path:
        return self.folder / f"{step}.parquet"

    def read(self, step: str, reader: Callable[[Path], Any] = read_memo) -> tuple[Any, str | None]:
        """The memo of `step` (`reader`: `read_memo`, or the reader of another kind of memo, such as the audit's
        features), or None and why not (None, None: there is none yet)."""
        path = self.path(step)
        if not path.is_file():
            return None, None
        try:
            return reader(path), None
        except (OSError, ValueError) as e:
            return None, f"{path} cannot be read as a memo ({e}): not used, every text worked on"

    def write(self, memo: Memo | Any, writer: Callable[[Any, Path], None] = write_memo) -> str | None:
        """Replace the memo of its step (`memo.params.step`), written by `writer`; None, or why it could not be
        written (a build does not fail for it)."""
        return self.stage(memo, writer).commit()

    def stage(self, memo: Memo | Any, writer: Callable[[Any, Path], None] = write_memo) -> Staged:
        """The memo of its step written beside the one the cache holds, to replace it (`Staged.commit`) or not
        (`Staged.discard`): a build writes its memos while it works, and replaces the old ones once it has
        published."""
        path = self.path(memo.params.step)
        tmp = self.folder / f".{memo.params.step}-{os.getpid()}-{uuid.uuid4().hex}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            writer(memo, tmp)  # (a plain new file: the registry's permissions, where mkstemp's are 0600)
        except OSError as e:
            _unlink(tmp)
            return Staged(path, None, f"cannot write {path}: {e.strerror or e} (the next build works on every text)")
        return Staged(path, tmp, None)


class Staged:
    """A memo written beside the file it replaces (`BuildCache.stage`), or why it could not be written (`note`)."""

    def __init__(self, path: Path, tmp: Path | None, note: str | None) -> None:
        self.path, self.tmp, self.note = path, tmp, note

    def commit(self) -> str | None:
        """Put it in place; None, or why it could not be (the old file is left as it was)."""
        if self.tmp is None:
            return self.note
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            return f"cannot write {self.path}: {e.strerror or e} (the next build works on every text)"
        self.tmp = None
        return None

    def discard(self) -> None:
        """Remove what was written (nothing once it is in place)."""
        if self.tmp is not None:
            _unlink(self.tmp)
            self.tmp = None


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
