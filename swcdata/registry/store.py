"""The versioned dataset registry: `<home>/<name>/v<N>/` folders, each an Arrow `DatasetDict` in the files
`datasets.save_to_disk` writes (written a shard at a time, here or by a Ray build's workers:
`swcdata.registry.shards`) plus a `manifest.json` (content hash, parent, steps and their configs, inputs, counts,
ledger).

Contracts:
- Determinism: the same tables give byte-identical data files and the same content hash on any machine
  (rows are re-encoded canonically, shards are fixed by row count, the `datasets` fingerprint comes from
  the content hash, splits are written in a fixed order). Only the manifest's `created_at` differs (and the
  digests that cover it: its own, its children's parent_digest).
- Immutability: a version is written into a temporary folder, fsynced, then renamed into place under a
  file lock; published files are made read-only and never rewritten. Loading checks the file hashes and
  the content hash.
- Tamper evidence: the manifest's digest is required; a manifest records its parent's digest (the chain);
  every publish appends a line to the registry log `<home>/<name>/log.jsonl` (fsync'd, under the lock), so a
  replaced manifest is caught even with a recomputed digest; manifest paths stay inside the version folder.
  A version number is never given twice; folders under a name that are not versions are ignored (warned).
- Size: per-record lists of removed records are Parquet files of the version (`removed/<kind>.parquet`,
  hashed in the manifest's file list); the manifest holds their counts and paths, so it stays small.
- Provenance: the manifest names the parent version, every step with its full config, and the input files
  with their sha256.

The parts it stands on: `swcdata.registry.manifest` (the manifest models), `swcdata.registry.content` (the
content hash, a version's identity), `swcdata.registry.shards` (a version's data files) and
`swcdata.registry.diff` (comparing two versions).

Reading a version (`swcdata.registry.stored`): `load` gives a `datasets.DatasetDict`; `tables` the Arrow tables
memory-mapped from its files; `splits` its splits read a batch at a time with plain reads (bounded memory at any
size), and `scan` a polars LazyFrame over those; all verified alike. `reading` (what `stats` and `diff` use)
checks the files first, then recomputes the content hash in a thread while the caller reads, and raises a
mismatch when the caller's block ends.

Heavy libraries (pyarrow, datasets) are imported inside the functions that need them, so listing versions
and resolving references only reads small JSON files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swcdata.core.errors import ConfigError, DataError, InputError, validation_problems
from swcdata.core.io import sha256_file
from swcdata.core.workers import Background
from swcdata.registry.content import (
    ContentCheckCancelled,
    as_arrow,
    canonical,
    content_hash,
    quiet_datasets,
    shard_bounds,
)
from swcdata.registry.diff import DiffReport, diff_versions
from swcdata.registry.manifest import (
    COMPUTED,
    MANIFEST_FILE,
    NAME_PATTERN,
    REMOVED_DIR,
    SCHEMA_VERSIONS,
    Manifest,
    SplitCounts,
    Step,
    steps_key,
)
from swcdata.registry.shards import Written, fingerprint, record_features, write_tables
from swcdata.registry.stored import StoredSplit, lazy_frame, mapped_tables, stored_splits, unsafe_path

if TYPE_CHECKING:
    import datasets
    import polars as pl
    import pyarrow as pa

    from swcdata.similarity.sigindex import SignatureIndex

LOG_FILE = "log.jsonl"  # <home>/<name>/log.jsonl: one line per published version (see Registry._append_log)
ROWS_PER_SHARD_V1 = 250_000  # rows per shard file of the versions of schema_version 1 and 2 (`_save_tables_v1`)
LOCK_TIMEOUT_S = 600.0
MIN_HASH_PREFIX = 4

_NAME_RE = re.compile(NAME_PATTERN)
_VERSION_DIR_RE = re.compile(r"^v([1-9]\d*)$")  # (no v0, no v01: one folder name per version number)
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_KIND_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # a `removed` kind stored as removed/<kind>.parquet


def registry_home() -> Path:
    """The registry folder: `$SWCDATA_HOME`, or `./registry`."""
    env = os.environ.get("SWCDATA_HOME")
    return expand_home(env, "SWCDATA_HOME") if env else Path("registry")


def expand_home(path: str | Path, what: str) -> Path:
    """`~` and `~user` expanded, or an InputError naming `what` (`~nouser/x` has no home to expand to)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise InputError(f"{what}={str(path)!r}: cannot expand '~': no such user or no home directory",
                         hint="give an absolute path, or a path relative to the working directory") from None


# ---- the verify report ------------------------------------------------------------------------


class FileCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    expected: str | None = Field(description="sha256 recorded in the manifest (None: file not in the manifest).")
    actual: str | None = Field(description="sha256 on disk (None: file missing).")
    ok: bool


class VerifyReport(BaseModel):
    """`swcdata verify`: do the files and the content of a version still match its manifest?"""

    model_config = ConfigDict(extra="forbid", title="VerifyReport")

    ref: str
    path: str
    ok: bool
    expected: str = Field(description="Content hash recorded in the manifest.")
    actual: str | None = Field(description="Content hash recomputed from the data (None when it could not be read).")
    files_checked: int
    files: list[FileCheck] = Field(description="Files that differ, are missing or were added (all checked).")
    extra_files: list[str] = Field(default_factory=list,
                                   description="Files in the version folder the manifest does not list (a warning).")
    problems: list[str] = Field(description="Each failure: the file, the field, what was expected and what was found.")
    warnings: list[str] = Field(default_factory=list,
                                description="What could not be checked and does not fail the version: not in the "
                                "registry log (published before the log existed), a parent no longer in the "
                                "registry, folders under the name that are not versions.")


# ---- file helpers -----------------------------------------------------------------------------


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


def _log_entry(m: Manifest, event: Literal["published", "adopted", "pulled"]) -> dict[str, Any]:
    return {"event": event, "name": m.name, "version": m.version, "content_hash": m.content_hash,
            "manifest_digest": m.manifest_digest, "parent": m.parent, "parent_digest": m.parent_digest,
            "records": m.records, "created_at": m.created_at, "logged_at": _now_utc(), "tool_version": m.tool_version}


def _is_record_list(value: Any) -> bool:
    """Whether a value of the manifest's `removed` is a list of records: a list or tuple of them, or an Arrow
    table (one row each, such as a dedup report's `removed_table`, stored as it is)."""
    import pyarrow as pa

    return isinstance(value, list | tuple | pa.Table)


def _removed_files(removed: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """The manifest's `removed` section and the tables to store: each list of records becomes
    `removed/<kind>.parquet` and, in the manifest, {records, path, by_kind} (path only when there are records;
    by_kind when every record has a `kind`); any other value stays as it is."""
    import pyarrow as pa
    import pyarrow.compute as pc

    summary: dict[str, Any] = {}
    tables: dict[str, pa.Table] = {}
    for kind, value in removed.items():
        if not _is_record_list(value):
            summary[kind] = value
            continue
        n = value.num_rows if isinstance(value, pa.Table) else len(value)
        entry: dict[str, Any] = {"records": n}
        if n:
            tables[kind] = _removed_table(value)
            entry["path"] = f"{REMOVED_DIR}/{kind}.parquet"
        if not isinstance(value, pa.Table):
            kinds = Counter(e.get("kind") for e in value if isinstance(e, Mapping) and isinstance(e.get("kind"), str))
        elif "kind" in value.column_names and pa.types.is_string(value.schema.field("kind").type):
            counts = pc.value_counts(value.column("kind"))  # (the distinct kinds, without a row each)
            kinds = Counter({k: c for k, c in zip(counts.field("values").to_pylist(),
                                                 counts.field("counts").to_pylist(), strict=True) if k is not None})
        else:
            kinds = Counter()
        if n and sum(kinds.values()) == n:
            entry["by_kind"] = dict(sorted(kinds.items()))
        summary[kind] = entry
    return summary, tables


_REMOVED_META = b"swcdata.removed"


def _removed_table(entries: list[Any] | tuple[Any, ...] | pa.Table) -> pa.Table:
    """Records as columns (one per key of any record, null where a record lacks it); records Arrow cannot type
    alike (mixed value types) as one column of their JSON. An Arrow table is stored as it is."""
    import orjson
    import pyarrow as pa

    if isinstance(entries, pa.Table):
        return entries.replace_schema_metadata({_REMOVED_META: b"rows"})
    if all(isinstance(e, Mapping) for e in entries):
        try:
            arr = pa.array(list(entries))
            if pa.types.is_struct(arr.type) and arr.type.num_fields:
                return pa.Table.from_struct_array(arr).replace_schema_metadata({_REMOVED_META: b"rows"})
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    text = [orjson.dumps(e, option=orjson.OPT_SORT_KEYS, default=str).decode() for e in entries]
    return pa.table({"json": pa.array(text, pa.string())}).replace_schema_metadata({_REMOVED_META: b"json"})


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not support fsync on directories
    finally:
        os.close(fd)


def _make_read_only(folder: Path) -> None:
    mask = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    for p in folder.rglob("*"):
        if p.is_file():
            p.chmod(p.stat().st_mode & mask)


def _written_beside(path: Path, write: Callable[[Path], None]) -> str:
    """Write a file beside a version's data (`write(path)`) and return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
    return sha256_file(path)


def _rmtree(path: Path) -> None:
    """Remove a (partial) version folder, read-only files included."""
    for root, dirs, _files in os.walk(path):
        for d in (root, *(os.path.join(root, x) for x in dirs)):
            with contextlib.suppress(OSError):
                os.chmod(d, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


def _release_arrow_memory() -> None:
    """Arrow's freed memory, which its allocator keeps for reuse, handed back to the system."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _now_utc() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _save_tables_v1(folder: Path, tables: Mapping[str, pa.Table], hash_: str) -> None:
    """Write canonical split tables into `folder` with `datasets.save_to_disk`, as the data of versions of
    schema_version 1 and 2 was written (a pulled one is rebuilt so: its files' sha256 are the manifest's; new
    versions are written a shard at a time, `swcdata.registry.shards`)."""
    import datasets

    features = record_features()
    dd = datasets.DatasetDict({
        split: datasets.Dataset(table, info=datasets.DatasetInfo(features=features),
                                split=datasets.NamedSplit(split), fingerprint=fingerprint(hash_, split))
        for split, table in tables.items()
    })
    shards = {split: len(shard_bounds(t.num_rows, ROWS_PER_SHARD_V1)) for split, t in tables.items()}
    with quiet_datasets():
        dd.save_to_disk(str(folder), num_shards=shards)


def write_parquet(table: pa.Table, path: Path) -> Path:
    """Write one split as parquet with fixed settings (deterministic bytes) and the `datasets` features in
    the schema metadata, so `load_dataset("parquet")` restores the record types."""
    from swcdata.core.io import atomic_output

    with atomic_output(path) as f:
        write_parquet_to(table, f)
    return path


def write_parquet_to(table: pa.Table, f: Any) -> None:
    """`write_parquet` to an open binary file (one of several written together: see `export`)."""
    import pyarrow.parquet as pq

    from swcdata.core.records import RECORD_SCHEMA

    meta = {"huggingface": json.dumps({"info": {"features": record_features().to_dict()}})}
    table = as_arrow(table).select(list(RECORD_SCHEMA.names)).cast(RECORD_SCHEMA).replace_schema_metadata(meta)
    pq.write_table(table, f, compression="zstd", row_group_size=10_000, use_dictionary=True, write_statistics=True)


# ---- the registry -----------------------------------------------------------------------------


class Registry:
    """Versions under one registry folder (`home`, default `registry_home()`)."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = expand_home(home, "--home") if home is not None else registry_home()
        self.warnings: list[str] = []  # what reading the registry ignored (each once); the CLI prints them

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    # -- reading --------------------------------------------------------------------------------

    def names(self) -> list[str]:
        if not self.home.is_dir():
            return []
        return sorted(p.name for p in self.home.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and self._version_dirs(p.name))

    def _version_dirs(self, name: str) -> dict[int, Path]:
        """The versions of `name`: its `v<N>` folders that hold a manifest.json (or a link in their place, which
        reading refuses). Any other folder under the name (not `v<N>`, or a `v<N>` without a manifest: debris,
        never a publish, which renames a complete folder into place) is ignored with a warning; dot-folders
        (publishes in progress) and files (the lock, the log) silently."""
        folder = self.home / name
        if not folder.is_dir():
            return {}
        out = {}
        for p in folder.iterdir():
            if p.name.startswith(".") or not (p.is_dir() or p.is_symlink()):
                continue
            m = _VERSION_DIR_RE.match(p.name)
            if m is None:
                self._warn(f"{p}: not a version folder (v<N>): ignored")
            elif not p.is_symlink() and not (p / MANIFEST_FILE).exists() and not (p / MANIFEST_FILE).is_symlink():
                self._warn(f"{p}: no {MANIFEST_FILE}, so not a version: ignored (publishing never leaves one; move "
                           "it out of the registry)")
            else:
                out[int(m.group(1))] = p
        return dict(sorted(out.items()))

    def _taken_numbers(self, name: str) -> set[int]:
        """Every version number used under `name`: `v<N>` folders (stray ones too, so that a new version never
        lands on one) and the versions in the registry log (a number is never given twice)."""
        folder = self.home / name
        taken = {int(mm.group(1)) for p in folder.iterdir() if (mm := _VERSION_DIR_RE.match(p.name))}
        return taken | set(self._read_log(name)[0])

    def _leaves_registry(self, folder: Path) -> str | None:
        """Why a version folder (or its manifest) leads outside the registry through a link, else None."""
        real = folder.resolve()
        expected = self.home.resolve() / folder.parent.name / folder.name
        if real != expected:
            return (f"{folder} leads outside the registry (to {real}): a version must be a folder inside "
                    f"{self.home}, not a link; refused, nothing read from it")
        manifest = folder / MANIFEST_FILE
        if manifest.is_symlink():
            return (f"{manifest} is a symbolic link (to {manifest.resolve()}): a published manifest is a file of its "
                    "version folder; refused, not read")
        return None

    def _read_manifest(self, folder: Path) -> Manifest:
        path = folder / MANIFEST_FILE
        why = self._leaves_registry(folder)
        if why is not None:
            raise DataError(why, hint="move the version's files into the registry folder itself, or the link out")
        try:
            m = Manifest.model_validate_json(path.read_bytes())
            m._folder = folder
            return m
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror}") from None
        except ValidationError as e:
            first = validation_problems(e, whole="(the whole file)")[0]
            raise DataError(f"{path}: not a valid manifest ({e.error_count()} problem(s); first: {first})") from None

    def versions(self, name: str | None = None, *, broken: list[str] | None = None) -> list[Manifest]:
        """Every version's manifest, by name then version. With `name`: that name's versions only.
        A version whose manifest cannot be read is left out; `broken` (when given) collects why."""
        if name is not None:
            self._check_name(name)
            if not self._version_dirs(name):  # (not names(): that would warn about every other name's folders)
                raise self._unknown_name(name)
        names = [name] if name is not None else self.names()
        out = []
        for n in names:
            for p in self._version_dirs(n).values():
                try:
                    out.append(self._read_manifest(p))
                except DataError as e:
                    if broken is not None:
                        broken.append(e.message)
        return out

    def _manifest_problems(self, m: Manifest, folder: Path) -> list[str]:
        return self._manifest_checks(m, folder)[0]

    def _manifest_checks(self, m: Manifest, folder: Path) -> tuple[list[str], list[str]]:
        """(problems, warnings) of a version's manifest itself: its schema version, its place (the folder of
        the version it names), its digest (required: an edited field breaks it), its paths (relative, inside
        the version folder), the registry log (a manifest replaced with a recomputed digest) and the chain
        to its parent (a parent replaced after this version was published)."""
        where = folder / MANIFEST_FILE
        problems: list[str] = []
        if m.schema_version not in SCHEMA_VERSIONS:
            problems.append(f"{where}: schema_version is {m.schema_version}; this swcdata reads "
                            f"{', '.join(map(str, SCHEMA_VERSIONS))} (written by a newer swcdata?)")
        if (folder.parent.name, folder.name) != (m.name, f"v{m.version}"):
            problems.append(f"{where} describes {m.ref}, but it is in {folder.parent.name}/{folder.name}")
        if m.manifest_digest is None:
            problems.append(
                f"{where}: manifest_digest is missing, so nothing shows the manifest is as published: refused "
                + ("(every schema_version 2 manifest has one: it was deleted)" if m.schema_version >= 2 else
                   "(schema_version 1 manifests written before 2026-12-01 lack it; any since have one: "
                   "republish the version with this swcdata)"))
        else:
            actual = m.compute_digest()
            if actual != m.manifest_digest:
                problems.append(f"{where} was edited after publishing: its fields hash to {actual}, its "
                                f"manifest_digest says {m.manifest_digest}")
        problems += self._path_problems(m, folder)
        warnings: list[str] = []
        for check in (self._log_checks, self._chain_checks):
            p, w = check(m, folder)
            problems += p
            warnings += w
        return problems, warnings

    def _path_problems(self, m: Manifest, folder: Path) -> list[str]:
        """The manifest's file paths that are not plain relative paths inside the version folder (such files
        are never read), and removed-record files that the file list (so the digest) does not cover."""
        where = folder / MANIFEST_FILE
        root = folder.resolve()
        problems = [f"{where}: files entry {rel!r} {why}; not read" for rel in m.files
                    if (why := unsafe_path(rel, root)) is not None]
        for kind, v in m.removed.items():
            path = v.get("path") if isinstance(v, Mapping) else None
            if path is None:
                continue
            if not isinstance(path, str) or (why := unsafe_path(path, root)) is not None:
                problems.append(f"{where}: removed.{kind}.path {path!r} is not a path inside the version folder")
            elif path not in m.files:
                problems.append(f"{where}: removed.{kind}.path {path!r} is not in the manifest's files (its sha256 "
                                "is not recorded)")
        if m.index is not None:
            if (why := unsafe_path(m.index.path, root)) is not None:
                problems.append(f"{where}: index.path {m.index.path!r} {why}; not read")
            elif m.index.path not in m.files:
                problems.append(f"{where}: index.path {m.index.path!r} is not in the manifest's files (its sha256 is "
                                "not recorded)")
        return problems

    def _log_checks(self, m: Manifest, folder: Path) -> tuple[list[str], list[str]]:
        """The manifest against the registry log's line for its version (by folder)."""
        mm = _VERSION_DIR_RE.match(folder.name)
        if mm is None:
            return [], []
        name, version = folder.parent.name, int(mm.group(1))
        ref = f"{name}@v{version}"
        log = self.home / name / LOG_FILE
        entries, bad = self._read_log(name)
        warnings = [f"{log}: line {n} is not a log entry: ignored" for n in bad]
        if not entries:
            warnings.append(f"{ref} is not in the registry log (published before the log existed; {log} starts "
                            f"with the next publish of {name} and then records the versions already there)")
            return [], warnings
        e = entries.get(version)
        if e is None:
            return [f"{ref} is not in the registry log {log}, which records every version of {name} since the log "
                    "began: it was not published by swcdata in this registry (copied in?)"], warnings
        problems = []
        for key in ("content_hash", "parent", "parent_digest", "manifest_digest"):
            if key in e and e[key] != getattr(m, key):
                problems.append(f"{folder / MANIFEST_FILE}: {key} is {getattr(m, key)!r}, but the registry log "
                                f"{log} recorded {e[key]!r} when {ref} was {e.get('event', 'published')}: the "
                                "manifest was replaced after publishing")
        return problems, warnings

    def _chain_checks(self, m: Manifest, folder: Path) -> tuple[list[str], list[str]]:
        """A schema_version 2 manifest records its parent's digest: the parent must still have it."""
        if m.schema_version < 2 or m.parent is None:
            return [], []
        where = folder / MANIFEST_FILE
        if m.parent_digest is None:
            return [f"{where}: parent_digest is missing (a schema_version 2 manifest with a parent records the "
                    f"parent's manifest_digest)"], []
        try:
            parent = self.resolve(m.parent)
        except InputError as e:
            return [], [f"the parent {m.parent} is not in the registry ({e.message}): the chain to it was not "
                        "checked"]
        except DataError as e:
            return [f"the parent {m.parent} cannot be read ({e.message}), so {where}'s parent_digest cannot be "
                    "matched"], []
        if parent.manifest_digest != m.parent_digest:
            return [f"{where}: parent_digest is {m.parent_digest}, but the parent {m.parent}'s manifest now has "
                    f"manifest_digest {parent.manifest_digest}: {m.parent}'s manifest was replaced after {m.ref} was "
                    "published"], []
        return [], []

    # -- the registry log -----------------------------------------------------------------------

    def _read_log(self, name: str) -> tuple[dict[int, dict[str, Any]], list[int]]:
        """The registry log of `name`: its entries by version (the last line of a version wins; a number is
        never given twice, so there is one), and the numbers of the lines that are not entries."""
        import orjson

        entries: dict[int, dict[str, Any]] = {}
        bad: list[int] = []
        try:
            data = (self.home / name / LOG_FILE).read_bytes()
        except OSError:
            return entries, bad
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                e = orjson.loads(line)
            except orjson.JSONDecodeError:
                bad.append(n)
                continue
            if isinstance(e, dict) and isinstance(e.get("version"), int) and e.get("name") == name:
                entries[e["version"]] = e
            else:
                bad.append(n)
        return entries, bad

    def _append_log(self, folder: Path, entries: list[dict[str, Any]]) -> None:
        """Append lines to `<home>/<name>/log.jsonl` and fsync it (under the publish lock). One line per
        version: event ('published'; 'adopted' for the versions already there when the log began), name,
        version, content hash, manifest digest, parent and its digest, creation and logging times."""
        import orjson

        path = folder / LOG_FILE
        data = b"".join(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) + b"\n" for e in entries)
        new = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a line torn by a crash stays one bad line
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_dir(folder)

    def path(self, ref: str | Manifest) -> Path:
        m = ref if isinstance(ref, Manifest) else self.resolve(ref)
        return m._folder if m._folder is not None else self.home / m.name / f"v{m.version}"

    def _unknown_name(self, name: str) -> InputError:
        known = self.names()
        if not known:
            return InputError(f"no dataset {name!r}: the registry at {self.home} is empty",
                              hint="publish a version first, or point --home / SWCDATA_HOME at your registry")
        return InputError(f"no dataset {name!r} in the registry at {self.home}",
                          hint="known datasets: " + ", ".join(known))

    def _name_folder(self, name: str) -> Path:
        """The folder of a dataset's versions, created if needed (an InputError when it cannot be)."""
        folder = self.home / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create {folder}: {e.strerror}",
                             hint="point --home / SWCDATA_HOME at a writable folder") from None
        return folder

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME_RE.match(name):
            raise InputError(f"invalid dataset name {name!r}",
                             hint="use letters, digits, '.', '_' and '-', starting with a letter or digit")

    def resolve(self, ref: str) -> Manifest:
        """`name@vN`, `name@latest`, `name` (= latest) or `name@<hash prefix>` (at least 4 hex characters)."""
        ref = ref.strip()
        name, at, sel = ref.partition("@")
        if at and not sel.strip():
            raise InputError(f"nothing after '@' in {ref!r}", hint=f"write {name}@vN, {name}@latest or "
                             f"{name}@<hash prefix>")
        sel = sel.strip() or "latest"
        if not name:
            raise InputError(f"invalid version reference {ref!r}",
                             hint="write name@vN, name@latest, name or name@<hash prefix>")
        self._check_name(name)
        dirs = self._version_dirs(name)
        if not dirs:
            raise self._unknown_name(name)
        available = ", ".join(f"v{n}" for n in dirs)
        if sel == "latest":
            return self._read_manifest(dirs[max(dirs)])
        m = re.fullmatch(r"[vV](\d+)", sel)
        if m:
            n = int(m.group(1))
            if n not in dirs:
                raise InputError(f"{name} has no version v{n}", hint=f"available: {available} (or {name}@latest)")
            return self._read_manifest(dirs[n])
        sel_l = sel.lower()
        if _HEX_RE.match(sel_l):
            if len(sel_l) < MIN_HASH_PREFIX:
                raise InputError(f"hash prefix {sel!r} is too short",
                                 hint=(f"for version {sel}, write {name}@v{sel}; for a hash prefix, " if sel.isdigit()
                                       else "") + f"give at least {MIN_HASH_PREFIX} hex characters of the hash")
            matches = [man for man in self.versions(name) if man.content_hash.startswith(sel_l)]
            if not matches:
                raise InputError(f"no version of {name} has a content hash starting with {sel_l!r}",
                                 hint=f"available: {available}")
            distinct = {man.content_hash for man in matches}
            if len(distinct) > 1:
                listing = ", ".join(f"{man.ref} ({man.content_hash[:12]})" for man in matches)
                raise InputError(f"hash prefix {sel_l!r} is ambiguous in {name}: it matches {listing}",
                                 hint="give more characters of the hash, or name the version (name@vN)")
            # The same content published under different step configs: the newest version holding it.
            return max(matches, key=lambda man: man.version)
        raise InputError(f"invalid version {sel!r} in {ref!r}",
                         hint=f"write {name}@vN, {name}@latest or {name}@<hash prefix>; available: {available}")

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, name: str, splits: Mapping[str, pa.Table],
                manifest_fields: Mapping[str, Any] | None = None,
                extra_files: Mapping[str, Callable[[Path], None]] | None = None) -> tuple[Manifest, bool]:
        """Publish `splits` as the next version of `name`. Returns (manifest, created).

        When a version of `name` already holds the same content hash, step configs and license it is
        returned with created=False and nothing is written. `manifest_fields` carries what the caller
        knows: parent, seed, license, steps, inputs, ledger, removed, index (parent defaults to the latest
        version). `extra_files`: files of the version beside its data (relative path -> a function that writes it
        there: the signature index), written only when a new version is; their sha256 go in the manifest."""
        canon, hash_, counts = canonical(splits)
        fields, new_steps = self._checked_fields(name, manifest_fields, hash_, counts)
        data = [canon]  # (the canonical copy of the data: freed as soon as the version is written)
        del canon

        def same_content(m: Manifest) -> bool:  # (a version of an older format: its hash of these tables)
            if m.hash_format == 2:
                return m.content_hash == hash_
            return m.counts == counts and m.content_hash == content_hash(data[0], hash_format=m.hash_format)

        def write(tmp: Path) -> Written:
            write_tables(tmp, data[0], hash_)
            return Written(hash_, counts, {})

        try:
            return self._publish(name, fields, new_steps, same_content, write, written_first=False,
                                 extra_files=extra_files)
        finally:
            # its memory handed back to the system (Arrow's allocator keeps freed memory for reuse, and a process
            # that reads the version next would peak that much higher)
            data.clear()
            _release_arrow_memory()

    def publish_written(self, name: str, schemas: Mapping[str, pa.Schema], write: Callable[[Path], Written],
                        manifest_fields: Mapping[str, Any] | None = None,
                        extra_files: Mapping[str, Callable[[Path], None]] | None = None) -> tuple[Manifest, bool]:
        """Publish a version whose data files someone else writes: `write(folder)` writes every split's shards
        (`swcdata.registry.shards.write_shard`, on Ray workers: `swcdata.engine.build`) and their metadata into the
        version's temporary folder, under the registry lock, and returns the content hash, counts and shard file
        hashes (`shards.summary`). `schemas`: each split's columns, checked first. As `publish` otherwise: an
        existing version with the same content hash, step configs and license is returned (what was written is
        removed)."""
        from swcdata.registry.content import split_problems

        problems = split_problems(schemas)
        if not schemas or problems:
            raise DataError("cannot publish: " + ("; ".join(problems) or "no splits given"))
        fields, new_steps = self._checked_fields(name, manifest_fields, "0" * 64, {})
        return self._publish(name, fields, new_steps, None, write, written_first=True, extra_files=extra_files)

    def _checked_fields(self, name: str, manifest_fields: Mapping[str, Any] | None, hash_: str,
                        counts: Mapping[str, SplitCounts]) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
        """The caller's manifest fields, validated before the lock is taken or anything written; and their steps'
        key (`steps_key`)."""
        from swcdata.core.version import __version__

        self._check_name(name)
        fields = dict(manifest_fields or {})
        reserved = sorted(k for k in fields if k in COMPUTED)
        if reserved:
            raise ConfigError([f"{k}: computed by the registry, do not pass it" for k in reserved],
                              source="manifest_fields")
        probe = {"name": name, "version": 1, "content_hash": hash_, "created_at": _now_utc(),
                 "tool_version": __version__, "counts": counts, **fields}
        try:
            Manifest.model_validate(probe)
        except ValidationError as e:
            raise ConfigError.from_validation(e, source="manifest_fields") from None
        new_steps = steps_key([Step.model_validate(s) for s in fields.get("steps", [])])
        bad_kinds = [k for k, v in (fields.get("removed") or {}).items()
                     if _is_record_list(v) and not _KIND_RE.match(k)]
        if bad_kinds:
            raise ConfigError([f"removed.{k}: a kind with a list of records is stored as {REMOVED_DIR}/<kind>.parquet:"
                               " use letters, digits, '.', '_' and '-'" for k in bad_kinds], source="manifest_fields")
        return fields, new_steps

    def _publish(self, name: str, fields: dict[str, Any], new_steps: list[tuple[str, bytes]],
                 same_content: Callable[[Manifest], bool] | None, write: Callable[[Path], Written], *,
                 written_first: bool, extra_files: Mapping[str, Callable[[Path], None]] | None = None
                 ) -> tuple[Manifest, bool]:
        """Under the registry lock: find a version with the same content (`same_content`, or after `write` when
        `written_first`: the written hash), else write the next version (`write` into a temporary folder, then
        the manifest, the log line and the rename)."""
        from filelock import FileLock, Timeout

        from swcdata.core.version import __version__

        folder = self._name_folder(name)
        lock = FileLock(str(folder / ".lock"), timeout=LOCK_TIMEOUT_S)
        tmp: Path | None = None
        try:
            with lock:
                for stale in folder.glob(".tmp-*"):  # left by a publisher that died; we hold the lock
                    _rmtree(stale)
                written: Written | None = None
                if written_first:
                    tmp = self._tmp_folder(folder, "data")
                    written = write(tmp)
                    hash_ = written.content_hash
                    same_content = lambda m: m.content_hash == hash_  # noqa: E731  (format 2: the only one written)
                existing = self.versions(name) if self._version_dirs(name) else []
                for m in reversed(existing):
                    if m.steps_key() == new_steps and m.license == fields.get("license") and same_content(m):
                        # The same content is published already (same steps, same license); it is only reused
                        # if it is intact.
                        where = self.path(m)
                        bad, _extra, _n = self._check_files(m, where)
                        problems = self._manifest_problems(m, where) + [f"{b.path} differs" for b in bad]
                        if problems:
                            raise DataError(
                                f"{m.ref} holds this content but was modified after publishing ({problems[0]}); "
                                "published versions are never overwritten",
                                hint=f"restore {where} from a copy, or move it out of the registry to publish "
                                     "this content again")
                        return m, False
                version = max(self._taken_numbers(name), default=0) + 1
                parent = existing[-1] if existing else None
                if fields.get("parent") is not None:
                    try:
                        parent = self.resolve(fields["parent"])
                    except (InputError, DataError) as e:
                        raise ConfigError([f"parent: {fields['parent']!r} is not a readable version of this registry "
                                           f"({e.message})"], source="manifest_fields") from None
                elif "parent" in fields:  # (parent=None: no parent)
                    parent = None
                fields["parent"] = parent.ref if parent is not None else None
                # the parent's fields as they are now (its digest, when it is intact): replacing its manifest later
                # breaks the chain
                fields["parent_digest"] = parent.compute_digest() if parent is not None else None
                log_first = []
                if not self._read_log(name)[0]:  # the log begins: it records the (intact) versions already there
                    log_first = [_log_entry(m, "adopted") for m in existing if not self._manifest_problems(m, m._folder
                                 or self.path(m))]
                if tmp is None:
                    tmp = self._tmp_folder(folder, f"v{version}")
                # (the files beside the data, the signature index, are written and hashed in threads while the data
                # is: Parquet and sha256 release the GIL)
                extras = {rel: Background(_written_beside, tmp / rel, write_extra, name="swcdata-publish")
                          for rel, write_extra in (extra_files or {}).items()}
                try:
                    if written is None:
                        written = write(tmp)
                    digests = {rel: extra.result() for rel, extra in extras.items()}
                finally:
                    for extra in extras.values():  # (none writes into a folder being removed)
                        extra.join()
                written = written._replace(files={**written.files, **digests})
                manifest = self._write_version(folder, tmp, name, version, written, fields, __version__, log_first)
                tmp = None
                return manifest, True
        except Timeout:
            raise DataError(f"another process has held the registry lock {folder / '.lock'} for over "
                            f"{LOCK_TIMEOUT_S:.0f}s", hint="wait for the other publish to finish") from None
        finally:
            if tmp is not None and tmp.exists():
                _rmtree(tmp)

    @staticmethod
    def _tmp_folder(folder: Path, what: str) -> Path:
        """A new temporary folder of a version being written (removed by the next publisher if this one dies)."""
        tmp = folder / f".tmp-{what}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp

    def _write_version(self, folder: Path, tmp: Path, name: str, version: int, written: Written,
                       fields: dict[str, Any], tool_version: str, log_first: list[dict[str, Any]]) -> Manifest:
        """Finish the version whose data files are in `tmp`: the removed-record lists, the manifest (the shard
        files' sha256 that `written` reports, the others' computed here), the log line (after `log_first`), then
        the rename. The log line comes first: a crash between the two leaves a logged number without a folder
        (never given again), never a published version missing from the log."""
        import pyarrow.parquet as pq

        final = folder / f"v{version}"
        removed, removed_tables = _removed_files(fields.get("removed") or {})
        for kind, table in removed_tables.items():
            (tmp / REMOVED_DIR).mkdir(exist_ok=True)
            pq.write_table(table, tmp / removed[kind]["path"], compression="zstd", row_group_size=65_536,
                           use_dictionary=True, write_statistics=False)
        here = {p.relative_to(tmp).as_posix(): p for p in _data_files(tmp)}
        unseen = sorted(set(written.files) - set(here))
        if unseen:  # (a Ray worker on another machine wrote it where this one cannot see)
            raise DataError(f"{len(unseen)} data file(s) written for {name}@v{version} are not in {tmp} as this "
                            f"machine sees it (first: {unseen[0]})",
                            hint="on a Ray cluster of several machines, keep the registry (--home, SWCDATA_HOME) on "
                                 "storage every node mounts at the same path")
        files = {rel: written.files.get(rel) or sha256_file(p) for rel, p in here.items()}
        manifest = Manifest(name=name, version=version, content_hash=written.content_hash, created_at=_now_utc(),
                            tool_version=tool_version, counts=written.counts, files=files,
                            **{**fields, "removed": removed})
        manifest.manifest_digest = manifest.compute_digest()
        (tmp / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        _make_read_only(tmp)
        _fsync_tree(tmp)
        if final.exists() or final.is_symlink():  # cannot happen under the lock (numbers stay above every v<N>)
            raise DataError(f"{final} already exists; refusing to overwrite a published version")
        self._append_log(folder, [*log_first, _log_entry(manifest, "published")])
        os.rename(tmp, final)
        _fsync_dir(folder)
        manifest._folder = final
        return manifest

    def register(self, manifest: Manifest, splits: Mapping[str, pa.Table], files: Mapping[str, Path],
                 origin: str) -> tuple[Manifest, bool]:
        """Add a version published by another registry (pulled from the Hub) as the same `name@vN`, with its own
        manifest. Its data is written as `publish` writes it; `files` (manifest path -> a local file) are its other
        files, copied: the removed-record lists and the `datasets` metadata. Nothing is written unless the manifest
        matches its digest, the tables its content hash and counts, every file of the new folder the manifest's
        sha256 (no file missing or added), and a parent that is here the recorded parent digest. Published under
        the lock, atomically, with a 'pulled' log line naming `origin`.

        Returns (manifest, created). A version of that number already here with the same content hash is returned
        as it is (created=False); with another hash it is refused, and so is a number this registry gave before."""
        from filelock import FileLock, Timeout

        m, name, n = manifest, manifest.name, manifest.version
        self._check_name(name)
        hint = "the copy on the Hub is not the version that was pushed: push it again from the registry that holds it"
        if m.schema_version not in SCHEMA_VERSIONS:
            raise DataError(f"{m.ref} from {origin}: manifest schema_version {m.schema_version}; this swcdata reads "
                            f"{', '.join(map(str, SCHEMA_VERSIONS))}", hint="upgrade swcdata")
        if m.manifest_digest is None or m.compute_digest() != m.manifest_digest:
            raise DataError(f"{m.ref} from {origin}: the manifest does not match its manifest_digest (edited after "
                            "publishing); refused", hint=hint)
        tables, hash_, counts = canonical(splits, ROWS_PER_SHARD_V1 if m.hash_format == 1 else None,
                                          hash_format=m.hash_format)
        if hash_ != m.content_hash:
            raise DataError(f"{m.ref} from {origin}: the data does not match its manifest: content hash {hash_}, the "
                            f"manifest says {m.content_hash} (altered or partly uploaded); refused", hint=hint)
        if counts != m.counts:
            raise DataError(f"{m.ref} from {origin}: the record counts of the data do not match the manifest's; "
                            "refused", hint=hint)
        folder = self._name_folder(name)
        try:
            with FileLock(str(folder / ".lock"), timeout=LOCK_TIMEOUT_S):
                for stale in folder.glob(".tmp-*"):  # left by a publisher that died; we hold the lock
                    _rmtree(stale)
                dirs = self._version_dirs(name)
                if n in dirs:
                    here = self._read_manifest(dirs[n])
                    if here.content_hash != m.content_hash:
                        raise DataError(f"{m.ref} is already in the registry at {self.home} with content hash "
                                        f"{here.content_hash[:12]}, and {origin} holds {m.content_hash[:12]} under "
                                        "the same number: refused (a version number names one content)",
                                        hint="pull into another registry (--home or SWCDATA_HOME)")
                    bad, _extra, _k = self._check_files(here, dirs[n])
                    problems = self._manifest_problems(here, dirs[n]) + [f"{b.path} differs" for b in bad]
                    if problems:
                        raise DataError(f"{here.ref} is in the registry but was modified after publishing "
                                        f"({problems[0]})", hint=f"run `swcdata verify {here.ref}`")
                    return here, False
                if n in self._taken_numbers(name):
                    raise DataError(f"{m.ref}: this registry gave the number v{n} before (its log {folder / LOG_FILE} "
                                    "records it), so it cannot hold another version under it: refused",
                                    hint="pull into another registry (--home or SWCDATA_HOME)")
                chain, _warnings = self._chain_checks(m, folder / f"v{n}")
                if chain:
                    raise DataError(f"{m.ref} from {origin}: {chain[0]}", hint="pull into another registry (--home "
                                    "or SWCDATA_HOME), or pull its parent into an empty one first")
                existing = self.versions(name) if dirs else []
                log_first = []
                if not self._read_log(name)[0]:  # the log begins: it records the (intact) versions already there
                    log_first = [_log_entry(v, "adopted") for v in existing
                                 if not self._manifest_problems(v, v._folder or self.path(v))]
                return self._write_pulled(folder, m, tables, files, origin, log_first), True
        except Timeout:
            raise DataError(f"another process has held the registry lock {folder / '.lock'} for over "
                            f"{LOCK_TIMEOUT_S:.0f}s", hint="wait for the other publish to finish") from None

    def _write_pulled(self, folder: Path, m: Manifest, tables: dict[str, pa.Table], files: Mapping[str, Path],
                      origin: str, log_first: list[dict[str, Any]]) -> Manifest:
        """`register`'s write: the data and files into a temporary folder, every file checked against the manifest,
        the log line, then the rename (as `_write_version`)."""
        final = folder / f"v{m.version}"
        tmp = self._tmp_folder(folder, f"v{m.version}")
        try:
            if m.hash_format == 1:
                _save_tables_v1(tmp, tables, m.content_hash)
            else:
                write_tables(tmp, tables, m.content_hash)
            root = tmp.resolve()
            for rel, src in files.items():
                why = unsafe_path(rel, root)
                if why is not None or rel not in m.files:
                    raise DataError(f"{m.ref} from {origin}: file {rel!r} " + (why or "is not in the manifest"))
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, tmp / rel)
            written = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in _data_files(tmp)}
            for rel in sorted(set(written) | set(m.files)):
                if written.get(rel) != m.files.get(rel):
                    what = ("missing" if rel not in written else "not in the manifest" if rel not in m.files
                            else f"sha256 {written[rel]}, the manifest says {m.files[rel]}")
                    raise DataError(
                        f"{m.ref} from {origin}: {rel} of the rebuilt version does not match the manifest ({what}); "
                        "refused", hint="the data matched its content hash: this file differs when another version "
                        f"of swcdata or `datasets` writes it (published with swcdata {m.tool_version})"
                        if rel.endswith(".arrow") else "the copy on the Hub is incomplete or altered: push it again")
            (tmp / MANIFEST_FILE).write_text(m.to_json(), encoding="utf-8")
            _make_read_only(tmp)
            _fsync_tree(tmp)
            if final.exists() or final.is_symlink():  # cannot happen under the lock (checked by the caller)
                raise DataError(f"{final} already exists; refusing to overwrite a published version")
            self._append_log(folder, [*log_first, {**_log_entry(m, "pulled"), "origin": origin}])
            os.rename(tmp, final)
            _fsync_dir(folder)
            out = m.model_copy()
            out._folder = final
            return out
        except BaseException:
            if tmp.exists():
                _rmtree(tmp)
            raise

    # -- loading and checking -------------------------------------------------------------------

    def _check_files(self, m: Manifest, folder: Path) -> tuple[list[FileCheck], list[str], int]:
        """(bad files, extra files, files checked) against the manifest's file hashes. A path that is not a plain
        relative path inside the version folder is never read (the manifest checks name it)."""
        from concurrent.futures import ThreadPoolExecutor

        root = folder.resolve()
        safe = [(rel, expected) for rel, expected in m.files.items() if unsafe_path(rel, root) is None]

        def actual(rel: str) -> str | None:
            p = folder / rel
            return sha256_file(p) if p.is_file() else None

        # (hashlib releases the GIL: the files are hashed side by side, one thread per core)
        with ThreadPoolExecutor(max_workers=max(1, min(len(safe), os.cpu_count() or 1, 8))) as pool:
            hashes = list(pool.map(actual, [rel for rel, _ in safe]))
        bad = [FileCheck(path=rel, expected=expected, actual=got, ok=False)
               for (rel, expected), got in zip(safe, hashes, strict=True) if got != expected]
        checked = len(safe)
        on_disk = {p.relative_to(folder).as_posix() for p in _data_files(folder)}
        extra = sorted(on_disk - set(m.files))
        return bad, extra, checked

    def _load_dd(self, m: Manifest, folder: Path, keep_in_memory: bool) -> datasets.DatasetDict:
        import datasets

        try:
            with quiet_datasets():
                dd = datasets.load_from_disk(str(folder), keep_in_memory=keep_in_memory)
        except Exception as e:  # any failure to parse the stored files is a data problem of this version
            raise DataError(f"{m.ref}: cannot read the data in {folder}: {type(e).__name__}: {e}",
                            hint=f"run `swcdata verify {m.ref}`") from None
        if not isinstance(dd, datasets.DatasetDict):
            raise DataError(f"{m.ref}: {folder} does not hold a DatasetDict")
        return dd

    def _check_before_reading(self, m: Manifest, folder: Path) -> None:
        """What `load` and `scan` check before reading any data: the manifest (its digest, place, paths, the log, the
        chain) and every file's sha256 against the manifest; a DataError names the first problem."""
        problems = self._manifest_problems(m, folder)
        if problems:
            raise DataError(f"{m.ref}: {problems[0]}", hint=f"run `swcdata verify {m.ref}`")
        bad, _extra, _n = self._check_files(m, folder)
        if bad:
            first = bad[0]
            raise DataError(
                f"{m.ref} was modified after publishing: {len(bad)} data file(s) differ from the manifest "
                f"(first: {first.path}: expected sha256 {first.expected}, actual {first.actual or 'missing'})",
                hint=f"run `swcdata verify {m.ref}`; restore the version from a copy (published versions are "
                     "never overwritten)")

    @staticmethod
    def _check_content(m: Manifest, folder: Path, dd: Mapping[str, Any], cancel: threading.Event | None = None
                       ) -> None:
        actual = content_hash(dd, cancel=cancel, hash_format=m.hash_format)
        if actual != m.content_hash:
            raise DataError(f"{m.ref}: content hash mismatch: expected {m.content_hash}, actual {actual} "
                            f"(the data in {folder} was modified after publishing)",
                            hint=f"run `swcdata verify {m.ref}`")

    def load(self, ref: str, verify: bool = True, *,
             keep_in_memory: bool = True) -> tuple[datasets.DatasetDict, Manifest]:
        """Load a version as a `DatasetDict`. With `verify` (default) the data files must match the manifest's
        hashes and the recomputed content hash must match; otherwise DataError names the version and both
        hashes. In memory by default, so `datasets` never writes cache files into the immutable version."""
        return self._verified(ref, verify, lambda m, folder: self._load_dd(m, folder, keep_in_memory))

    def _verified(self, ref: str, verify: bool, read: Callable[[Manifest, Path], Any]) -> tuple[Any, Manifest]:
        """`read(manifest, folder)` of a version: with `verify`, after its manifest and file hashes are checked, and
        followed by the content hash of what it read."""
        m = self.resolve(ref)
        folder = self.path(m)
        if verify:
            self._check_before_reading(m, folder)
        data = read(m, folder)
        if verify:
            self._check_content(m, folder, data)
        return data, m

    def tables(self, ref: str, verify: bool = True) -> tuple[dict[str, pa.Table], Manifest]:
        """A version's splits as Arrow tables memory-mapped from its data files (nothing is read into memory until
        it is used), in stored order, verified as `load` verifies (file hashes, then the content hash, which reads
        the rows a batch at a time)."""
        return self._verified(ref, verify, mapped_tables)

    def splits(self, ref: str, verify: bool = True) -> tuple[dict[str, StoredSplit], Manifest]:
        """A version's splits as `StoredSplit`s (swcdata.registry.stored): read a batch at a time with plain reads,
        so whatever the version's size, reading holds one batch. Verified as `load` verifies (file hashes, then the
        content hash, which reads every row once); `reading` overlaps that second check with the caller's work."""
        return self._verified(ref, verify, stored_splits)

    @contextlib.contextmanager
    def reading(self, ref: str, verify: bool = True) -> Iterator[tuple[dict[str, StoredSplit], Manifest]]:
        """`splits`, with the content hash recomputed in a thread while the block reads the data (the file hashes
        are checked first, so nothing altered is ever parsed). Leaving the block waits for the check and raises
        its DataError on a mismatch, in place of whatever the block computed: a caller that prints or writes its
        result after the block only ever shows data that matched the manifest. A block that raises stops the
        check."""
        m = self.resolve(ref)
        folder = self.path(m)
        if verify:
            self._check_before_reading(m, folder)
        splits = stored_splits(m, folder)
        if not verify:
            yield splits, m
            return
        cancel = threading.Event()
        failed: list[BaseException] = []

        def check() -> None:
            try:
                self._check_content(m, folder, splits, cancel)
            except ContentCheckCancelled:
                pass
            except BaseException as e:  # (handed to the caller's thread)
                failed.append(e)

        worker = threading.Thread(target=check, name=f"verify {m.ref}", daemon=True)
        worker.start()
        try:
            yield splits, m
        except BaseException:
            cancel.set()
            worker.join()
            raise
        worker.join()
        if failed:
            raise failed[0]

    def scan(self, ref: str, *, split: str | None = None, verify: bool = True) -> pl.LazyFrame:
        """A version as a polars LazyFrame, verified first as `load` verifies it (file hashes and content hash).

        Without `split`: the records of every split, in stored order (train, validation, test, then any other),
        with a `split` column (String) after the record columns. With `split`: that split's records, the record
        columns only. The scan reads the memory-mapped Arrow files a batch at a time, only the columns a query
        selects; a filter is applied to each batch as it is read."""
        tables, m = self.splits(ref, verify=verify)
        if split is not None:
            if split not in tables:
                raise InputError(f"{m.ref} has no split {split!r}", hint="it has: " + ", ".join(tables))
            tables = {split: tables[split]}
        return lazy_frame(tables, m.ref, split_column=split is None)

    def verify(self, ref: str) -> VerifyReport:
        """Check every data file against the manifest's sha256 and recompute the content hash."""
        m = self.resolve(ref)
        folder = self.path(m)
        bad, extra, n = self._check_files(m, folder)
        problems, warnings = self._manifest_checks(m, folder)
        unsafe = bool(self._path_problems(m, folder))
        problems += [f"{b.path}: {'missing' if b.actual is None else 'modified'} "
                     f"(expected sha256 {b.expected}, actual {b.actual or '-'})" for b in bad]
        actual: str | None = None
        # never parse files known to be altered (a corrupt Arrow buffer may not fail cleanly), nor a version whose
        # manifest names paths outside it
        if not bad and not unsafe:
            try:
                dd = self._load_dd(m, folder, keep_in_memory=True)
                actual = content_hash(dd, hash_format=m.hash_format)
                rows = {split: dd[split].num_rows for split in dd}
                if rows != {split: c.records for split, c in m.counts.items()}:
                    problems.append(f"the manifest's record counts {({k: c.records for k, c in m.counts.items()})} "
                                    f"do not match the data {rows}")
            except DataError as e:
                problems.append(e.message)
            if actual is not None and actual != m.content_hash:
                problems.append(f"content hash mismatch: expected {m.content_hash}, actual {actual}")
        if not m.files:
            problems.append("the manifest lists no data files")
        return VerifyReport(ref=m.ref, path=str(folder), ok=not problems, expected=m.content_hash, actual=actual,
                            files_checked=n, files=bad, extra_files=extra, problems=problems,
                            warnings=[*self.warnings, *warnings])

    def removed_records(self, ref: str | Manifest, kind: str) -> list[dict[str, Any]]:
        """The records of one kind of the manifest's `removed` section (quarantined, duplicates, ...): read from
        the version's `removed/<kind>.parquet` (its sha256 checked against the manifest first), or the manifest's
        own list (schema_version 1)."""
        import orjson
        import pyarrow.parquet as pq

        m = ref if isinstance(ref, Manifest) else self.resolve(ref)
        if kind not in m.removed:
            raise InputError(f"{m.ref} records no removed {kind!r}",
                             hint="it records: " + (", ".join(m.removed) or "nothing"))
        value = m.removed[kind]
        if isinstance(value, list):
            return value
        if not isinstance(value, Mapping) or not isinstance(value.get("records"), int):
            raise DataError(f"{m.ref}: removed.{kind} is not a list of records ({value!r})")
        rel = value.get("path")
        if rel is None:
            return []
        folder = self.path(m)
        problems = self._path_problems(m, folder)
        if problems:
            raise DataError(problems[0], hint=f"run `swcdata verify {m.ref}`")
        actual = sha256_file(folder / rel) if (folder / rel).is_file() else None
        if actual != m.files[rel]:
            raise DataError(f"{m.ref}: {rel} was modified after publishing: expected sha256 {m.files[rel]}, actual "
                            f"{actual or 'missing'}", hint=f"run `swcdata verify {m.ref}`")
        table = pq.read_table(folder / rel)
        if (table.schema.metadata or {}).get(_REMOVED_META) == b"json":
            return [orjson.loads(t) for t in table.column("json").to_pylist()]
        return table.to_pylist()

    def signature_index(self, ref: str | Manifest) -> SignatureIndex | None:
        """A version's signature index (`swcdata.similarity.sigindex`), or None when it has none (published before
        indexes, or by a build without near duplicates). Its manifest is checked first and the file's sha256 against
        it: an index that does not match is a DataError, like any other change to a published version."""
        from swcdata.similarity.sigindex import IndexParams, read_index

        m = ref if isinstance(ref, Manifest) else self.resolve(ref)
        if m.index is None:
            return None
        folder = self.path(m)
        problems = self._manifest_problems(m, folder)
        if problems:
            raise DataError(f"{m.ref}: {problems[0]}", hint=f"run `swcdata verify {m.ref}`")
        rel = m.index.path
        actual = sha256_file(folder / rel) if (folder / rel).is_file() else None
        if actual != m.files[rel]:
            raise DataError(f"{m.ref}: its signature index {rel} does not match the version's manifest (modified "
                            f"after publishing): expected sha256 {m.files[rel]}, actual {actual or 'missing'}",
                            hint=f"run `swcdata verify {m.ref}`; restore the version from a copy")
        try:
            index = read_index(folder / rel)
            params = IndexParams.model_validate(m.index.params)
        except (ValueError, OSError) as e:
            raise DataError(f"{m.ref}: cannot read its signature index {rel}: {e}",
                            hint=f"run `swcdata verify {m.ref}`") from None
        if index.params != params or len(index) != m.index.records:
            raise DataError(f"{m.ref}: its signature index {rel} holds {len(index):,} rows made with "
                            f"{index.params.model_dump()}, the manifest says {m.index.records:,} made with "
                            f"{params.model_dump()}", hint=f"run `swcdata verify {m.ref}`")
        return index

    # -- comparing and exporting ----------------------------------------------------------------

    def diff(self, a: str, b: str, *, text_limit: int | None = None) -> DiffReport:
        """Per split: record ids added and removed from A to B, and records 'changed' (same source file and
        line, same transform/template, different id). Also ids that moved between splits and the step
        config values that differ (see `swcdata.registry.diff`). Both versions are verified, then scanned: only
        the columns the comparison needs are read (and, with `text_limit`, the text of the changed records
        listed)."""
        with self.reading(a) as (ta, ma), self.reading(b) as (tb, mb):
            return diff_versions(ma, ta, mb, tb, text_limit=text_limit)

    def export(self, ref: str, fmt: Literal["parquet", "jsonl"], out: Path) -> list[Path]:
        """Write one file per split: `<out>/<split>.parquet` or `<out>/<split>.jsonl` (stored-record JSON).
        All or nothing, as `split --out` writes its folder (io.atomic_outputs): the files move in place
        together at the end, so an interrupted or failed export leaves `out` as it was (no v2 train beside
        v1's test), and a folder made for it is removed again."""
        from swcdata.core.io import atomic_outputs, check_outputs
        from swcdata.core.records import write_jsonl

        if fmt not in ("parquet", "jsonl"):
            raise InputError(f"unknown export format {fmt!r}", hint="choose parquet or jsonl")
        if out.as_posix() in ("-", "/dev/stdout"):
            raise InputError("--out names a folder (one file per split), not stdout")
        from swcdata.core.io import refuse_inside_registry

        refuse_inside_registry([("--out", out)], self.home)  # (--home's registry; check_outputs: the default one)
        # every file is checked before any is written, so a failure leaves no half-done export
        check_outputs([], [("--out", out / f"{split}.{fmt}") for split in self.resolve(ref).counts])
        dd, _m = self.load(ref)
        written = [out / f"{split}.{fmt}" for split in dd]
        with atomic_outputs(written) as files:
            for f, split in zip(files, dd, strict=True):
                table = as_arrow(dd[split])
                if fmt == "parquet":
                    write_parquet_to(table, f)
                else:
                    write_jsonl(table, f)
        return written


def scan(ref: str, *, home: Path | str | None = None, split: str | None = None, verify: bool = True) -> pl.LazyFrame:
    """A published version as a polars LazyFrame, verified against its manifest (see `Registry.scan`)."""
    return Registry(home).scan(ref, split=split, verify=verify)


def load(ref: str, *, home: Path | str | None = None, verify: bool = True) -> datasets.DatasetDict:
    """Load a published version (`name@vN`, `name@latest`, `name`, `name@<hash prefix>`) as a DatasetDict,
    verified against its manifest. The registry is `home`, else `$SWCDATA_HOME`, else `./registry`."""
    dd, _ = Registry(home).load(ref, verify=verify)
    return dd
