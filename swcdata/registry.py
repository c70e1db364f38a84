"""The versioned dataset registry: `<home>/<name>/v<N>/` folders, each an Arrow `DatasetDict` written by
`datasets.save_to_disk` plus a `manifest.json` (content hash, parent, steps and their configs, inputs,
counts, ledger).

Contracts:
- Determinism: the same tables give byte-identical data files and the same content hash on any machine
  (rows are re-encoded canonically, shards are fixed by row count, the `datasets` fingerprint comes from
  the content hash, splits are written in a fixed order). Only the manifest's `created_at` differs.
- Immutability: a version is written into a temporary folder, fsynced, then renamed into place under a
  file lock; published files are made read-only and never rewritten. Loading checks the file hashes and
  the content hash.
- Provenance: the manifest names the parent version, every step with its full config, and the input files
  with their sha256.

Heavy libraries (pyarrow, datasets) are imported inside the functions that need them, so listing versions
and resolving references only reads small JSON files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from swcdata.errors import ConfigError, DataError, InputError
from swcdata.io import sha256_file
from swcdata.schema import Source

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1
HASH_FORMAT = b"swcdata-content-hash/1\n"
ROWS_PER_SHARD = 250_000
LOCK_TIMEOUT_S = 600.0
MIN_HASH_PREFIX = 4

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_NAME_RE = re.compile(NAME_PATTERN)
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name
_VERSION_DIR_RE = re.compile(r"^v(\d+)$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_SPLIT_ORDER = ("train", "validation", "test")
_COMPUTED = ("schema_version", "name", "version", "content_hash", "created_at", "tool_version", "counts", "files",
             "manifest_digest")


def registry_home() -> Path:
    """The registry folder: `$SWCDATA_HOME`, or `./registry`."""
    env = os.environ.get("SWCDATA_HOME")
    return Path(env).expanduser() if env else Path("registry")


# ---- manifest ---------------------------------------------------------------------------------


class Step(BaseModel):
    """One pipeline step that produced the version: its name, full config and summary numbers."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict, description="The step's full, resolved config.")
    summary: dict[str, Any] = Field(default_factory=dict, description="What the step did, in numbers.")


class InputRef(BaseModel):
    """An input file the version was built from."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The file's published name: relative to the build config's folder, or its "
                      "file name (with the shortest distinguishing suffix of its path) when outside it.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    role: Literal["input", "holdout"] = Field("input", description="'input': a training input; 'holdout': the "
                                              "existing test set that became the test split. (Manifests "
                                              "written before roles were recorded list inputs only.)")


class SplitCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: int = Field(ge=0)
    by_category: dict[str, int]


class Manifest(BaseModel):
    """`manifest.json` of one published version: what it holds and exactly how it was made."""

    model_config = ConfigDict(extra="forbid", title="Manifest")

    schema_version: int = SCHEMA_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$",
                              description="sha256 over the split names and every row's canonical JSON.")
    parent: str | None = Field(None, description="The version this one was derived from, e.g. 'swc@v1'.")
    created_at: str = Field(description="ISO 8601, UTC.")
    tool_version: str
    seed: int | None = None
    license: str | None = Field(None, description="The data's license as the build config declares it (an "
                                "SPDX-like id, or 'unknown'); None in manifests written before it was recorded.")
    steps: list[Step] = Field(default_factory=list)
    inputs: list[InputRef] = Field(default_factory=list)
    counts: dict[str, SplitCounts] = Field(description="Per split, in the order the splits are stored.")
    ledger: dict[str, Any] = Field(default_factory=dict, description="The build's conservation ledger.")
    removed: dict[str, Any] = Field(default_factory=dict, description="What was removed, and why.")
    files: dict[str, str] = Field(default_factory=dict,
                                  description="sha256 of every data file of the version, by relative path.")
    _folder: Path | None = PrivateAttr(None)  # the folder it was read from (a moved manifest must not mislead)
    manifest_digest: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                        description="sha256 of this manifest's other fields (sorted-key compact "
                                        "JSON): an edited manifest no longer matches it.")

    def __eq__(self, other: object) -> bool:  # the fields, not where the manifest was read from
        return isinstance(other, Manifest) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # (mutable, like every pydantic model)

    def compute_digest(self) -> str:
        import orjson

        fields = self.model_dump(mode="json", exclude={"manifest_digest"})
        # Fields added after the first manifests are left out at their 'absent' value (no license; an input's
        # role 'input'), so that the manifests written before them keep their digests.
        if fields.get("license") is None:
            fields.pop("license", None)
        for i in fields.get("inputs", []):
            if i.get("role") == "input":
                del i["role"]
        return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def records(self) -> int:
        return sum(c.records for c in self.counts.values())

    def steps_key(self) -> list[tuple[str, bytes]]:
        return _steps_key(self.steps)


def _steps_key(steps: list[Step]) -> list[tuple[str, bytes]]:
    import orjson

    return [(s.name, orjson.dumps(s.config, option=orjson.OPT_SORT_KEYS, default=str)) for s in steps]


# ---- reports ----------------------------------------------------------------------------------


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
    problems: list[str]


class ChangedRecord(BaseModel):
    """The record from one input line (and transform/template) has a different id in the two versions."""

    model_config = ConfigDict(extra="forbid")

    source: Source
    transform: str | None = None
    template: str | None = None
    a_id: str
    b_id: str
    a_split: str
    b_split: str = Field(description="Differs from a_split when the new content landed in another split.")


class SplitDiff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: str
    a_records: int
    b_records: int
    unchanged: int = Field(description="Records of B whose id is in A, in any split (b_records = unchanged + added + "
                                       "changed).")
    added: int
    removed: int = Field(description="Records of A whose id is not in B and that no record of B changed.")
    changed: int = Field(description="Records of B that replace a record of A from the same source line, transform "
                                     "and template (A's record may have been in another split).")
    moved_in: int = Field(0, description="Of `unchanged`: records that were in another split of A.")
    moved_out: int = Field(0, description="Records of this split of A that are in another split of B.")
    added_ids: list[str]
    removed_ids: list[str]
    changed_records: list[ChangedRecord]


class MovedRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    a_split: str
    b_split: str


class ConfigChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str
    key: str = Field(description="Dotted path in the step config ('' for a step added or removed).")
    a: Any = None
    b: Any = None


class DiffReport(BaseModel):
    """`swcdata diff A B`: per split, the record ids added, removed and changed from A to B."""

    model_config = ConfigDict(extra="forbid", title="DiffReport")

    a: str
    b: str
    a_hash: str
    b_hash: str
    identical: bool = Field(description="Same content hash.")
    splits: list[SplitDiff]
    moved: list[MovedRecord] = Field(description="Ids present in both versions but in different splits.")
    config_changes: list[ConfigChange]


# ---- content hash -----------------------------------------------------------------------------


def _as_arrow(data: Any) -> pa.Table:
    """A pa.Table from a pa.Table or a `datasets.Dataset` (its rows in their visible order)."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if getattr(data, "_indices", None) is not None:  # a shuffled/selected Dataset: materialise its row order
        with _quiet_datasets():
            data = data.flatten_indices()
    table = getattr(data, "data", None)
    table = getattr(table, "table", table)
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected a pyarrow Table or a datasets.Dataset, got {type(data).__name__}")
    return table


def _iter_row_json(table: pa.Table) -> Iterator[tuple[dict[str, Any], bytes]]:
    import orjson

    for batch in table.to_batches():
        for row in batch.to_pylist():
            yield row, orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _split_header(name: str, rows: int) -> bytes:
    return b"split\x00" + name.encode("utf-8") + b"\x00" + str(rows).encode() + b"\n"


def content_hash(dd: Mapping[str, Any]) -> str:
    """sha256 over the split names (sorted) and every row's canonical JSON (sorted keys), in row order.

    Independent of Arrow chunking, nullability flags, machine and time. Accepts a mapping of split name
    to `pa.Table` or `datasets.Dataset` (so a `DatasetDict` works too)."""
    h = hashlib.sha256(HASH_FORMAT)
    for name in sorted(dd):
        table = _as_arrow(dd[name])
        h.update(_split_header(name, table.num_rows))
        for _, line in _iter_row_json(table):
            h.update(line)
            h.update(b"\n")
    return h.hexdigest()


def _split_order(names: list[str]) -> list[str]:
    return [s for s in _SPLIT_ORDER if s in names] + sorted(s for s in names if s not in _SPLIT_ORDER)


def _canonical(splits: Mapping[str, pa.Table]) -> tuple[dict[str, pa.Table], str, dict[str, SplitCounts]]:
    """Check and re-encode the tables (RECORD_SCHEMA, one contiguous chunk, fixed split order); return them
    with the content hash and the counts."""
    import pyarrow as pa

    from swcdata.records import RECORD_COLUMNS, RECORD_SCHEMA, table_from_rows

    if not splits:
        raise DataError("nothing to publish: no splits given")
    problems = []
    arrow: dict[str, pa.Table] = {}
    for name, data in splits.items():
        if not isinstance(name, str) or not _SPLIT_RE.match(name):
            problems.append(f"split name {name!r} is not valid: use letters, digits and '_' (e.g. 'train')")
            continue
        table = arrow[name] = _as_arrow(data)
        missing = [c for c in RECORD_COLUMNS if c not in table.column_names]
        extra = [c for c in table.column_names if c not in RECORD_COLUMNS]
        if missing:
            problems.append(f"split {name!r} lacks the record columns: {', '.join(missing)}")
        if extra:
            problems.append(f"split {name!r} has columns that are not record columns: {', '.join(extra)} "
                            "(drop them before publishing)")
    if problems:
        raise DataError("cannot publish: " + "; ".join(problems))

    out: dict[str, pa.Table] = {}
    counts: dict[str, SplitCounts] = {}
    for name in _split_order(list(splits)):
        table = arrow[name].select(list(RECORD_COLUMNS))
        try:
            rows = table.cast(RECORD_SCHEMA).to_pylist()
            canon = table_from_rows(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise DataError(f"cannot publish: split {name!r} does not fit the record schema: {e}") from None
        out[name] = canon
        by_cat = Counter(r["category"] for r in rows)
        counts[name] = SplitCounts(records=len(rows), by_category=dict(sorted(by_cat.items())))
    return out, content_hash(out), counts


# ---- file helpers -----------------------------------------------------------------------------


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


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


def _rmtree(path: Path) -> None:
    """Remove a (partial) version folder, read-only files included."""
    for root, dirs, _files in os.walk(path):
        for d in (root, *(os.path.join(root, x) for x in dirs)):
            with contextlib.suppress(OSError):
                os.chmod(d, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars while the registry reads or writes (steps never print)."""
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _now_utc() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _features() -> datasets.Features:
    import datasets

    from swcdata.records import RECORD_SCHEMA

    return datasets.Features.from_arrow_schema(RECORD_SCHEMA)


def _fingerprint(hash_: str, split: str) -> str:
    return hashlib.sha256(f"{hash_}:{split}".encode()).hexdigest()[:16]


def write_parquet(table: pa.Table, path: Path) -> Path:
    """Write one split as parquet with fixed settings (deterministic bytes) and the `datasets` features in
    the schema metadata, so `load_dataset("parquet")` restores the record types."""
    import pyarrow.parquet as pq

    from swcdata.records import RECORD_SCHEMA

    meta = {"huggingface": json.dumps({"info": {"features": _features().to_dict()}})}
    table = _as_arrow(table).select(list(RECORD_SCHEMA.names)).cast(RECORD_SCHEMA).replace_schema_metadata(meta)
    from swcdata.io import atomic_output

    with atomic_output(path) as f:
        pq.write_table(table, f, compression="zstd", row_group_size=10_000, use_dictionary=True,
                       write_statistics=True)
    return path


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


# ---- the registry -----------------------------------------------------------------------------


class Registry:
    """Versions under one registry folder (`home`, default `registry_home()`)."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else registry_home()

    # -- reading --------------------------------------------------------------------------------

    def names(self) -> list[str]:
        if not self.home.is_dir():
            return []
        return sorted(p.name for p in self.home.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and self._version_dirs(p.name))

    def _version_dirs(self, name: str) -> dict[int, Path]:
        folder = self.home / name
        if not folder.is_dir():
            return {}
        out = {}
        for p in folder.iterdir():
            m = _VERSION_DIR_RE.match(p.name)
            if m and p.is_dir():  # (one without a readable manifest is a broken version: reading it says so)
                out[int(m.group(1))] = p
        return dict(sorted(out.items()))

    def _read_manifest(self, folder: Path) -> Manifest:
        path = folder / MANIFEST_FILE
        try:
            m = Manifest.model_validate_json(path.read_bytes())
            m._folder = folder
            return m
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror}") from None
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(map(str, first["loc"])) or "(the whole file)"
            raise DataError(f"{path}: not a valid manifest ({e.error_count()} problem(s); first: {where}: "
                            f"{first['msg']})") from None

    def versions(self, name: str | None = None, *, broken: list[str] | None = None) -> list[Manifest]:
        """Every version's manifest, by name then version. With `name`: that name's versions only.
        A version whose manifest cannot be read is left out; `broken` (when given) collects why."""
        if name is not None:
            self._check_name(name)
            if name not in self.names():
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
        """What is wrong with a version's manifest itself: edited after publishing (its digest), or
        naming another version than the folder it is in."""
        problems = []
        if (folder.parent.name, folder.name) != (m.name, f"v{m.version}"):
            problems.append(f"{folder / MANIFEST_FILE} describes {m.ref}, but it is in {folder.parent.name}/"
                            f"{folder.name}")
        if m.manifest_digest is not None and m.compute_digest() != m.manifest_digest:
            problems.append(f"{folder / MANIFEST_FILE} was edited after publishing (its fields no longer match "
                            "its manifest_digest)")
        return problems

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
                manifest_fields: Mapping[str, Any] | None = None) -> tuple[Manifest, bool]:
        """Publish `splits` as the next version of `name`. Returns (manifest, created).

        When a version of `name` already holds the same content hash, step configs and license it is
        returned with created=False and nothing is written. `manifest_fields` carries what the caller
        knows: parent, seed, license, steps, inputs, ledger, removed (parent defaults to the latest version)."""
        from filelock import FileLock, Timeout

        from swcdata import __version__

        self._check_name(name)
        fields = dict(manifest_fields or {})
        reserved = sorted(k for k in fields if k in _COMPUTED)
        if reserved:
            raise ConfigError([f"{k}: computed by the registry, do not pass it" for k in reserved],
                              source="manifest_fields")
        tables, hash_, counts = _canonical(splits)
        # Validate the caller's fields before taking the lock or writing anything.
        probe = {"name": name, "version": 1, "content_hash": hash_, "created_at": _now_utc(),
                 "tool_version": __version__, "counts": counts, **fields}
        try:
            Manifest.model_validate(probe)
        except ValidationError as e:
            raise ConfigError([f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()],
                              source="manifest_fields") from None
        steps_key = _steps_key([Step.model_validate(s) for s in fields.get("steps", [])])

        folder = self.home / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create {folder}: {e.strerror}",
                             hint="point --home / SWCDATA_HOME at a writable folder") from None
        lock = FileLock(str(folder / ".lock"), timeout=LOCK_TIMEOUT_S)
        try:
            with lock:
                for stale in folder.glob(".tmp-*"):  # left by a publisher that died; we hold the lock
                    _rmtree(stale)
                existing = self.versions(name) if self._version_dirs(name) else []
                for m in reversed(existing):
                    if m.content_hash == hash_ and m.steps_key() == steps_key and m.license == fields.get("license"):
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
                taken = [int(mm.group(1)) for p in folder.iterdir() if (mm := _VERSION_DIR_RE.match(p.name))]
                version = max(taken, default=0) + 1
                if "parent" not in fields:
                    fields["parent"] = existing[-1].ref if existing else None
                manifest = self._write_version(folder, name, version, tables, hash_, counts, fields, __version__)
                return manifest, True
        except Timeout:
            raise DataError(f"another process has held the registry lock {folder / '.lock'} for over "
                            f"{LOCK_TIMEOUT_S:.0f}s", hint="wait for the other publish to finish") from None

    def _write_version(self, folder: Path, name: str, version: int, tables: dict[str, pa.Table], hash_: str,
                       counts: dict[str, SplitCounts], fields: dict[str, Any], tool_version: str) -> Manifest:
        import datasets

        final = folder / f"v{version}"
        tmp = folder / f".tmp-v{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        features = _features()
        try:
            dd = datasets.DatasetDict({
                split: datasets.Dataset(table, info=datasets.DatasetInfo(features=features),
                                        split=datasets.NamedSplit(split), fingerprint=_fingerprint(hash_, split))
                for split, table in tables.items()
            })
            shards = {split: max(1, -(-t.num_rows // ROWS_PER_SHARD)) for split, t in tables.items()}
            with _quiet_datasets():
                dd.save_to_disk(str(tmp), num_shards=shards)
            files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in _data_files(tmp)}
            manifest = Manifest(name=name, version=version, content_hash=hash_, created_at=_now_utc(),
                                tool_version=tool_version, counts=counts, files=files, **fields)
            manifest.manifest_digest = manifest.compute_digest()
            (tmp / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
            _make_read_only(tmp)
            _fsync_tree(tmp)
            if final.exists():  # cannot happen under the lock; never write into an existing version
                raise DataError(f"{final} already exists; refusing to overwrite a published version")
            os.rename(tmp, final)
            _fsync_dir(folder)
            manifest._folder = final
            return manifest
        except BaseException:
            if tmp.exists():
                _rmtree(tmp)
            raise

    # -- loading and checking -------------------------------------------------------------------

    def _check_files(self, m: Manifest, folder: Path) -> tuple[list[FileCheck], list[str], int]:
        """(bad files, extra files, files checked) against the manifest's file hashes."""
        bad: list[FileCheck] = []
        for rel, expected in m.files.items():
            p = folder / rel
            actual = sha256_file(p) if p.is_file() else None
            if actual != expected:
                bad.append(FileCheck(path=rel, expected=expected, actual=actual, ok=False))
        on_disk = {p.relative_to(folder).as_posix() for p in _data_files(folder)}
        extra = sorted(on_disk - set(m.files))
        return bad, extra, len(m.files)

    def _load_dd(self, m: Manifest, folder: Path, keep_in_memory: bool) -> datasets.DatasetDict:
        import datasets

        try:
            with _quiet_datasets():
                dd = datasets.load_from_disk(str(folder), keep_in_memory=keep_in_memory)
        except Exception as e:  # any failure to parse the stored files is a data problem of this version
            raise DataError(f"{m.ref}: cannot read the data in {folder}: {type(e).__name__}: {e}",
                            hint=f"run `swcdata verify {m.ref}`") from None
        if not isinstance(dd, datasets.DatasetDict):
            raise DataError(f"{m.ref}: {folder} does not hold a DatasetDict")
        return dd

    def load(self, ref: str, verify: bool = True, *,
             keep_in_memory: bool = True) -> tuple[datasets.DatasetDict, Manifest]:
        """Load a version as a `DatasetDict`. With `verify` (default) the data files must match the manifest's
        hashes and the recomputed content hash must match; otherwise DataError names the version and both
        hashes. In memory by default, so `datasets` never writes cache files into the immutable version."""
        m = self.resolve(ref)
        folder = self.path(m)
        if verify:
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
        dd = self._load_dd(m, folder, keep_in_memory)
        if verify:
            actual = content_hash(dd)
            if actual != m.content_hash:
                raise DataError(f"{m.ref}: content hash mismatch: expected {m.content_hash}, actual {actual} "
                                f"(the data in {folder} was modified after publishing)",
                                hint=f"run `swcdata verify {m.ref}`")
        return dd, m

    def verify(self, ref: str) -> VerifyReport:
        """Check every data file against the manifest's sha256 and recompute the content hash."""
        m = self.resolve(ref)
        folder = self.path(m)
        bad, extra, n = self._check_files(m, folder)
        problems = self._manifest_problems(m, folder)
        problems += [f"{b.path}: {'missing' if b.actual is None else 'modified'} "
                     f"(expected sha256 {b.expected}, actual {b.actual or '-'})" for b in bad]
        actual: str | None = None
        if not bad:  # never parse files known to be altered: a corrupt Arrow buffer may not fail cleanly
            try:
                dd = self._load_dd(m, folder, keep_in_memory=True)
                actual = content_hash(dd)
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
                            files_checked=n, files=bad, extra_files=extra, problems=problems)

    # -- comparing and exporting ----------------------------------------------------------------

    def diff(self, a: str, b: str) -> DiffReport:
        """Per split: record ids added and removed from A to B, and records 'changed' (same source file and
        line, same transform/template, different id). Also ids that moved between splits and the step
        config values that differ."""
        dda, ma = self.load(a)
        ddb, mb = self.load(b)
        rows_a = {s: _arrow_rows(dda[s]) for s in dda}
        rows_b = {s: _arrow_rows(ddb[s]) for s in ddb}
        where_a = {r["id"]: s for s, rows in rows_a.items() for r in rows}
        where_b = {r["id"]: s for s, rows in rows_b.items() for r in rows}
        changed = _pair_changed(rows_a, rows_b, where_a, where_b)
        paired_a = {c.a_id for c in changed}
        paired_b = {c.b_id for c in changed}
        splits = []
        for split in _split_order(sorted(set(rows_a) | set(rows_b))):
            a, b = rows_a.get(split, []), rows_b.get(split, [])
            added_ids = [r["id"] for r in b if r["id"] not in where_a and r["id"] not in paired_b]
            removed_ids = [r["id"] for r in a if r["id"] not in where_b and r["id"] not in paired_a]
            here = [c for c in changed if c.b_split == split]
            splits.append(SplitDiff(split=split, a_records=len(a), b_records=len(b),
                                    unchanged=sum(1 for r in b if r["id"] in where_a), added=len(added_ids),
                                    removed=len(removed_ids), changed=len(here),
                                    moved_in=sum(1 for r in b if where_a.get(r["id"], split) != split),
                                    moved_out=sum(1 for r in a if where_b.get(r["id"], split) != split),
                                    added_ids=added_ids, removed_ids=removed_ids, changed_records=here))
        moved = [MovedRecord(id=i, a_split=where_a[i], b_split=s) for i, s in where_b.items()
                 if i in where_a and where_a[i] != s]
        return DiffReport(a=ma.ref, b=mb.ref, a_hash=ma.content_hash, b_hash=mb.content_hash,
                          identical=ma.content_hash == mb.content_hash, splits=splits, moved=moved,
                          config_changes=_config_changes(ma.steps, mb.steps))

    def export(self, ref: str, fmt: Literal["parquet", "jsonl"], out: Path) -> list[Path]:
        """Write one file per split: `<out>/<split>.parquet` or `<out>/<split>.jsonl` (stored-record JSON)."""
        from swcdata.io import check_outputs, make_dir
        from swcdata.records import write_jsonl

        if fmt not in ("parquet", "jsonl"):
            raise InputError(f"unknown export format {fmt!r}", hint="choose parquet or jsonl")
        if out.as_posix() in ("-", "/dev/stdout"):
            raise InputError("--out names a folder (one file per split), not stdout")
        # every file is checked before any is written, so a failure leaves no half-done export
        check_outputs([], [("--out", out / f"{split}.{fmt}") for split in self.resolve(ref).counts])
        dd, _m = self.load(ref)
        make_dir(out)
        written = []
        for split in dd:
            table = _as_arrow(dd[split])
            path = out / f"{split}.{fmt}"
            if fmt == "parquet":
                write_parquet(table, path)
            else:
                write_jsonl(table, path)
            written.append(path)
        return written


def _arrow_rows(ds: Any) -> list[dict[str, Any]]:
    table = _as_arrow(ds)
    return table.select(["id", "source", "transform", "template"]).to_pylist()


def _change_key(r: dict[str, Any]) -> tuple[Any, ...]:
    src = r["source"] or {}
    return (src.get("file"), src.get("line"), r.get("transform"), r.get("template"))


def _pair_changed(rows_a: dict[str, list[dict[str, Any]]], rows_b: dict[str, list[dict[str, Any]]],
                  where_a: dict[str, str], where_b: dict[str, str]) -> list[ChangedRecord]:
    """Records from the same input line (and transform/template) with a new id are 'changed', not added +
    removed, whichever split each side is in."""
    pending: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for split in _split_order(list(rows_a)):
        for r in rows_a[split]:
            if r["id"] not in where_b:
                pending[_change_key(r)].append(r)
    changed: list[ChangedRecord] = []
    for split in _split_order(list(rows_b)):
        for r in rows_b[split]:
            if r["id"] in where_a:
                continue
            queue = pending.get(_change_key(r))
            if queue:
                old = queue.pop(0)
                changed.append(ChangedRecord(source=Source(**r["source"]), transform=r.get("transform"),
                                             template=r.get("template"), a_id=old["id"], b_id=r["id"],
                                             a_split=where_a[old["id"]], b_split=split))
    return changed


def _config_changes(a: list[Step], b: list[Step]) -> list[ConfigChange]:
    sa = {s.name: s.config for s in a}
    sb = {s.name: s.config for s in b}
    out: list[ConfigChange] = []
    for name in [*sa, *(n for n in sb if n not in sa)]:
        if name not in sb:
            out.append(ConfigChange(step=name, key="", a=sa[name], b=None))
        elif name not in sa:
            out.append(ConfigChange(step=name, key="", a=None, b=sb[name]))
        else:
            fa, fb = _flatten(sa[name]), _flatten(sb[name])
            for key in [*fa, *(k for k in fb if k not in fa)]:
                if fa.get(key) != fb.get(key):
                    out.append(ConfigChange(step=name, key=key, a=fa.get(key), b=fb.get(key)))
    return out


def load(ref: str, *, home: Path | str | None = None, verify: bool = True) -> datasets.DatasetDict:
    """Load a published version (`name@vN`, `name@latest`, `name`, `name@<hash prefix>`) as a DatasetDict,
    verified against its manifest. The registry is `home`, else `$SWCDATA_HOME`, else `./registry`."""
    dd, _ = Registry(home).load(ref, verify=verify)
    return dd
