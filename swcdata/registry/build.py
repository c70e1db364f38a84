"""`build`: validate -> dedup -> split -> augment -> audit -> publish, from one config file.

The config (TOML, `swcdata.toml`) holds every parameter of every step; it is validated as a whole
before any data is read, and every problem is reported with its path. The result is an immutable
registry version whose manifest records the steps with their full configs, the input file hashes,
the counts, and the conservation ledger: every input line ends kept (in a split), removed as a
duplicate or by decontamination, or quarantined -- and the numbers add up.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from swcdata import _native
from swcdata.core.arrow import strings
from swcdata.core.errors import ConfigError, DataError, InputError, validation_problems
from swcdata.registry.cache import CacheUse
from swcdata.steps.audit import LeakRules
from swcdata.steps.dedup import DedupConfig
from swcdata.steps.split import SplitConfig
from swcdata.steps.validate import ValidateConfig

if TYPE_CHECKING:
    from swcdata.core.workers import Background
    from swcdata.registry.cache import BuildCache
    from swcdata.registry.manifest import IndexEntry, Manifest
    from swcdata.registry.store import Registry
    from swcdata.similarity.sigindex import SignatureIndex
    from swcdata.steps.audit import AuditConfig, AuditSummary
    from swcdata.steps.augment.step import VariantMemo
    from swcdata.steps.features import Features
    from swcdata.steps.prepared import PreparedInputs
    from swcdata.steps.validate import CodeChecks

DEFAULT_CONFIG = Path("swcdata.toml")
# A license id as the Hub's dataset cards take it (mit, apache-2.0, cc-by-4.0; 'unknown' is published as 'other')
LICENSE_ID = r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$"


_LEAK_KEYS = frozenset(LeakRules.model_fields)


def _split_section_schema(schema: dict[str, Any]) -> None:
    """[split] as a build reads it: the leak rules are [audit]'s (refused here), the seed is the build's."""
    props = schema["properties"]
    for key in _LEAK_KEYS:
        props.pop(key, None)
    props["seed"] = {**props["seed"], "description": "Not read by a build: the split draws with the top-level "
                     "`seed` (`swcdata split --seed` sets it outside a build)."}


class SplitStep(SplitConfig):
    """The split step's config, and the holdout (the leak rules that decontaminate against it are in [audit])."""

    model_config = ConfigDict(json_schema_extra=_split_section_schema)

    holdout: list[str] = Field(default_factory=list, description="Existing test set files (become the test split).")

    @model_validator(mode="before")
    @classmethod
    def _rules_live_in_audit(cls, data: Any) -> Any:
        if isinstance(data, dict) and (_LEAK_KEYS & data.keys()):
            keys = ", ".join(sorted(_LEAK_KEYS & data.keys()))
            raise ValueError(f"{keys}: set the leak rules in [audit]; they decide the split's decontamination and "
                             "grouping and the audit alike")
        return data


class AuditStep(LeakRules):
    """The leak rules of the whole build: decontamination against the holdout, grouping inside the split, and the
    audit between the published splits (the near rule's features come from [dedup])."""


def _augment_section_schema(schema: dict[str, Any]) -> None:
    """[augment] documents every key: `enabled` and the fields of AugmentConfig, which validates them
    (`_augment_problems`; the augment step is imported only when a schema or a build needs it)."""
    from swcdata.steps.augment.step import AugmentConfig

    fields = AugmentConfig.model_json_schema(mode="serialization")
    props = dict(fields["properties"])
    seed = {k: v for k, v in props["seed"].items() if k != "default"}
    props["seed"] = {**seed, "description": seed["description"] + " Default: the build's top-level `seed`."}
    schema["properties"] = {**schema["properties"], **props}
    schema["additionalProperties"] = False


class AugmentStep(BaseModel):
    """The augment step's switch and its config (the fields of swcdata.steps.augment.step.AugmentConfig)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, json_schema_extra=_augment_section_schema)

    enabled: bool = Field(True, description="Augment the train split (off: publish the splits as they are).")


class BuildConfig(BaseModel):
    """Everything `swcdata build` does, in one file."""

    model_config = ConfigDict(extra="forbid", title="BuildConfig", allow_inf_nan=False)

    name: str = Field("swc", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="Dataset name in the registry (at most 100 characters).")
    inputs: list[str] = Field(default_factory=lambda: ["dataset/"], min_length=1,
                              description="JSONL files, folders or globs (relative to the config file).")
    seed: int = Field(0, ge=0, le=2**63 - 1,
                      description="One seed for every step that draws (split order, augmentation).")
    validate_: ValidateConfig = Field(default_factory=lambda: ValidateConfig(), alias="validate",
                                      description="[validate]: the schema and code checks of every input line.")
    dedup: DedupConfig = Field(default_factory=DedupConfig,
                               description="[dedup]: exact and near-duplicate removal (also the near rule's "
                                           "features in [audit]).")
    split: SplitStep = Field(default_factory=SplitStep,
                             description="[split]: train / validation / test, near-duplicate groups kept whole.")
    augment: AugmentStep = Field(default_factory=AugmentStep,
                                 description="[augment]: variants of the train records.")
    audit: AuditStep = Field(default_factory=AuditStep,
                             description="[audit]: the leak rules of decontamination, split grouping and the audit.")
    license: str = Field("unknown", pattern=LICENSE_ID, description="SPDX-like id of the data's license, or 'unknown'.")
    engine: Literal["local", "ray"] | None = Field(None, description="Where the steps run: local (this machine, the "
                                                  "default) or ray (a Ray cluster: the same version). `--engine` "
                                                  "overrides it; it is no part of the version.")


def _wording(err: Mapping[str, Any]) -> str | None:
    """An unknown key points at the list of the known ones; any other error keeps pydantic's words."""
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling; see `swcdata schema build-config`)"
    return None


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> tuple[BuildConfig, Path]:
    """Read and validate a build config; every problem is collected into one ConfigError (exit 2).
    Without a file (and no swcdata.toml here), the defaults build `dataset/`. Returns the config and
    the folder that relative input paths are resolved against."""
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    if path is not None:
        if not path.is_file():
            raise InputError(f"no such config file: {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except OSError as e:
            raise InputError(f"cannot read config file {path}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ConfigError([f"not UTF-8 text: byte 0x{e.object[e.start]:02x} at offset {e.start} "
                               "(save the config as UTF-8)"], source=str(path)) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError([f"not valid TOML: {e}"], source=str(path)) from None
        base = path.resolve().parent
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):  # (`--set dedup={}` would silently reset every key of the table to its default)
            raise ConfigError([f"--set {key}={{...}}: a whole table cannot be set; set its keys one at a time "
                               f"(e.g. --set {key}.<key>=value; `swcdata schema build-config` lists them)"],
                              source="--set")
        node = data
        *parents, leaf = key.split(".")
        for k, p in enumerate(parents):
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                where = ".".join(parents[: k + 1])
                raise ConfigError([f"--set {key}: {where} is a single value ({child!r}), not a table of keys"],
                                  source="--set")
            node = child
        node[leaf] = value
    problems: list[str] = []
    try:
        cfg = BuildConfig.model_validate(data)
    except ValidationError as e:
        problems += validation_problems(e, message=_wording)
        cfg = None
    aug = data.get("augment", {})
    if isinstance(aug, dict):
        problems += _augment_problems({k: v for k, v in aug.items() if k != "enabled"})
    if problems or cfg is None:
        where = [str(path)] if path else []
        raise ConfigError(problems, source=" and ".join(where + (["--set"] if overrides else [])) or None)
    return cfg, base


def _augment_problems(values: dict[str, Any]) -> list[str]:
    from swcdata.steps.augment.step import AugmentConfig

    try:
        AugmentConfig(**values)
    except ValidationError as e:
        return validation_problems(e, prefix="augment.", message=_wording)
    return []


# --------------------------------------------------------------------------- the run


class BuildLedger(BaseModel):
    """Where every input line went. lines_read = blank + quarantined + duplicates + decontaminated + kept."""

    model_config = ConfigDict(extra="forbid")

    lines_read: int
    blank_lines: int
    quarantined: int
    exact_duplicates: int
    near_duplicates: int
    decontaminated: int
    kept: int = Field(description="Input records in the splits (holdout and augmentation excluded).")
    holdout: int = Field(0, description="Holdout records in the test split (its exact copies dropped).")
    holdout_duplicates: int = Field(0, description="Exact copies inside the holdout set, dropped.")
    holdout_quarantined: int = Field(0, description="Holdout lines that fail the schema checks, set aside.")
    augmented: int = Field(0, description="Variants added by augmentation (train only).")
    quarantined_by_finding: int = Field(0, description="Of the quarantined lines: records with a warning named in "
                                        "validate.drop_findings (their quarantine reasons say so).")
    not_augmented_by_finding: int = Field(0, description="Records kept but not augmented: a warning named in "
                                          "augment.skip_findings (the augment step's summary counts them per rule).")
    splits: dict[str, int] = Field(default_factory=dict, description="Records per split in the published version.")

    @property
    def adds_up(self) -> bool:
        return self.lines_read == (self.blank_lines + self.quarantined + self.exact_duplicates
                                   + self.near_duplicates + self.decontaminated + self.kept)


class BuildResult(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str
    version: int
    ref: str
    content_hash: str
    created: bool = Field(description="False when an identical version already existed (nothing was written).")
    ledger: BuildLedger
    counts: dict[str, dict[str, int]]
    contamination: dict[str, dict[str, Any]]
    findings: dict[str, int] = Field(description="Validation findings per rule.")
    index: dict[str, Any] | None = Field(None, description="The version's signature index, as its manifest records "
                                         "it (records, params, reused, signed, reused_from, note); None without "
                                         "near-duplicate detection.")
    cache: dict[str, CacheUse] = Field(default_factory=dict, description="Per step that keeps its work in the build "
                                       "cache (checks, augment: records; inputs, the prepared inputs of the local "
                                       "engine: lines): what came from it and what was left there (no part of the "
                                       "version; empty with --no-cache).")
    timings: dict[str, float]


StepProgress = Callable[[str], None]


def _inside(path: Path, base: Path) -> str | None:
    """`path` relative to `base` (forward slashes) when it lies inside `base`, else None."""
    try:
        rel = Path(os.path.relpath(path, base))
    except ValueError:  # another drive (Windows)
        return None
    if rel.is_absolute() or ".." in rel.parts or rel.as_posix() == ".":
        return None
    return rel.as_posix()


class PublishedNames:
    """The name a published version gives each input file (in `source.file`, the manifest, the card): its
    path relative to the config's folder when the file is inside that folder, else its file name alone, or
    the shortest suffix of its path that tells it apart from the other inputs (`a/x.jsonl`, `b/x.jsonl`).
    Never an absolute path, never a `..`: where a checkout or a data folder lives stays on the machine, and
    the same build gives the same content hash from any checkout."""

    def __init__(self, files: Iterable[str | os.PathLike[str]], base: Path) -> None:
        base_abs, base_real = Path(os.path.abspath(base)), base.resolve()
        self._names: dict[str, str] = {}
        outside: dict[str, tuple[str, ...]] = {}
        for f in files:
            key = os.path.abspath(f)
            if key in self._names or key in outside:
                continue
            # (as written, then with symlinks resolved: a linked data folder inside the project is inside)
            rel = _inside(Path(key), base_abs) or _inside(Path(f).resolve(), base_real)
            if rel is not None:
                self._names[key] = rel
            else:
                p = Path(key)
                outside[key] = p.relative_to(p.anchor).parts or (p.name or "input",)
        taken = set(self._names.values())
        depth = dict.fromkeys(outside, 1)
        while True:
            cand = {k: "/".join(parts[-depth[k]:]) for k, parts in outside.items()}
            seen = Counter(cand.values())
            clash = [k for k, c in cand.items() if (seen[c] > 1 or c in taken) and depth[k] < len(outside[k])]
            if not clash:
                break
            for k in clash:
                depth[k] += 1
        for k in sorted(cand, key=lambda key: (cand[key], key)):  # full paths that still clash: a fixed prefix
            name = cand[k]
            while name in taken:
                name = f"external/{name}"
            taken.add(name)
            self._names[k] = name

    def __call__(self, path: str) -> str:
        """The published name of an input file (one not given to the constructor: its file name)."""
        return self._names.get(os.path.abspath(path)) or Path(path).name

    def table(self, table: pa.Table) -> pa.Table:
        """`table` with `source.file` rewritten to the published names."""
        return renamed_sources(table, self)


def renamed_sources(table: pa.Table, name_of: Callable[[str], str]) -> pa.Table:
    """`table` with each record's `source.file` replaced by `name_of(file)`, called once per distinct file."""
    import pyarrow.compute as pc

    src = table.column("source")
    enc = pc.dictionary_encode(pc.struct_field(src, "file")).combine_chunks()  # (a name per distinct file)
    names = strings([name_of(f) if f is not None else None for f in enc.dictionary.to_pylist()])
    files = names.take(enc.indices)
    lines = pc.struct_field(src, "line")
    new = pa.StructArray.from_arrays([files, lines.combine_chunks()], names=["file", "line"])
    return table.set_column(table.schema.get_field_index("source"), table.schema.field("source"), new)


def _quarantined_json(quarantined: list[Any], names: PublishedNames) -> list[dict[str, Any]]:
    """Quarantined lines as the manifest lists them: source (the file's published name) and reasons."""
    return [{"source": {"file": names(q.file), "line": q.line},
             "reasons": [{"rule": r, "field": f, "message": m} for r, f, m in q.reasons]} for q in quarantined]


def check_writable(home: Path) -> None:
    """The registry folder can be created and written (a probe file is made and removed), or an InputError."""
    import tempfile

    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise InputError(f"cannot write the registry {home}: {e.strerror or e}",
                         hint="point --home or SWCDATA_HOME at a folder you can write") from None


class Steps:
    """Where the build's validate, dedup, split and augment run: this machine (this class, over Arrow tables),
    or a Ray cluster (`swcdata.engine.build.RaySteps`, over Ray Datasets). A step's records are whatever the
    runner passes between its steps, to its audit of the final splits and its publication (a Ray build's workers
    write the version's shards; the registry's lock, manifest and log stay here)."""

    memoises = True
    """Whether validate and augment take and collect memos (`swcdata.registry.cache`): both engines do; a runner of
    one's own may say no."""

    prepares = True
    """Whether validate takes whole files from the prepared inputs (`swcdata.steps.prepared`) and leaves its own
    there: this machine does; the Ray engine reads every input on its workers."""

    audits_here = True
    """Whether `audit` reads what its rules read of each split from the `Features` it is given (kept across the
    build's audits, and in the build cache): this machine does; the Ray engine audits on the cluster."""

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """Entered once the inputs and the registry are checked, around the steps."""
        return contextlib.nullcontext()

    def validate(self, files: list[Path], cfg: ValidateConfig, names: PublishedNames,
                 checks: CodeChecks | None = None,
                 prepared: PreparedInputs | None = None) -> tuple[Any, Any, list[Any]]:
        """The validate step; `checks`: the code checks kept by text, `prepared`: whole files' outcomes kept by their
        bytes (`load_valid`)."""
        from swcdata.steps.validate import load_valid

        table, vrep, quarantined = load_valid([str(f) for f in files], cfg, checks=checks, prepared=prepared)
        return names.table(table), vrep, quarantined

    def dedup(self, records: Any, cfg: DedupConfig, known: SignatureIndex | None = None) -> tuple[Any, Any]:
        """The dedup step; `known`: the parent version's signature index (the texts it holds are not signed)."""
        from swcdata.steps.dedup import dedup

        return dedup(records, cfg, known=known)

    def index(self, signed: Any, splits: dict[str, Any], cfg: DedupConfig,
              known: SignatureIndex | None = None) -> tuple[SignatureIndex, int, int]:
        """The version's signature index: the dedup's signatures (its report's `signed`) and those of the final
        splits' records that the dedup did not sign (augmented variants, the holdout), taken from `known` (the
        parent's index) or signed here. Returns the index and, of the signatures added to the dedup's, how many
        were signed here and how many taken from `known`."""
        import numpy as np

        from swcdata.similarity.sigindex import SignatureIndex
        from swcdata.steps.dedup import signed as sign

        params = cfg.index_params()
        empty = SignatureIndex.empty(params)
        # The index is put together once, at the end: of the parent's index (`known`), the rows the dedup or the
        # splits took (`held`: all of it, not copied, where every row was taken), with the rows signed here (the
        # dedup's, `fresh`) and the splits' texts the dedup did not sign (`added`) inserted in one pass.
        base, fresh, held = empty, empty, None
        if signed is not None and signed.known is not None and signed.rows is not None and signed.known is known:
            hit = signed.rows >= 0
            base, held = known, np.zeros(len(known), dtype=bool)
            held[signed.rows[hit]] = True
            fresh = SignatureIndex.of(params, signed.keys[~hit], signed.sig[~hit])
        elif signed is not None:
            base = signed.index(params)
        added = empty
        reused = 0
        for table in splits.values():
            rows, keys = unknown_rows(base, table, fresh, added, held=held)
            more = sign(table, cfg, rows, known=known, keys=keys)
            if held is not None and more.rows is not None:
                held[more.rows[more.rows >= 0]] = True
            added, reused = added.merged(more.keys, more.sig), reused + more.reused
        return (base.merged(np.concatenate([fresh.keys, added.keys]), np.concatenate([fresh.sig, added.sig]), held),
                len(added) - reused, reused)

    def split(self, records: Any, cfg: SplitConfig, holdout: pa.Table | None, known: SignatureIndex | None = None,
              features: Features | None = None) -> tuple[dict[str, Any], Any]:
        """The split step; `known`: the parent version's signature index (the grouping signs what it lacks);
        `features`: the build's audit features (the code rule reads what they hold of a record)."""
        from swcdata.steps.split import split

        return split(records, cfg, holdout, known=known, features=features)

    def augment(self, splits: dict[str, Any], cfg: Any, memo: VariantMemo | None = None) -> tuple[dict[str, Any], Any]:
        """The augment step; `memo`: augmentation kept by text (`augment`)."""
        from swcdata.steps.augment.step import augment

        return augment(splits, cfg, memo=memo)

    def final(self, splits: dict[str, Any]) -> dict[str, Any]:
        """The final splits as the audit and the publication read them (each more than once)."""
        return splits

    def sizes(self, splits: dict[str, Any]) -> dict[str, int]:
        """Records per split."""
        return {name: t.num_rows for name, t in splits.items()}

    def audit(self, reference: Any, candidate: Any, cfg: AuditConfig, known: SignatureIndex | None = None,
              features: Features | None = None) -> AuditSummary:
        """The audit of one split (`candidate`) against another (`reference`), as `audit` reports it; `known`: the
        version's signature index (every record of the splits: none is signed again); `features`: what the rules
        read of each split, kept across the build's audits."""
        from swcdata.steps.audit import audit

        return audit(reference, candidate, cfg, known=known, features=features).summary

    def publish(self, registry: Registry, name: str, splits: dict[str, Any], fields: dict[str, Any],
                extra_files: dict[str, Callable[[Path], None]] | None = None) -> tuple[Manifest, bool]:
        """Publish the splits as the next version of `name` (`Registry.publish`), with `extra_files` beside them."""
        return registry.publish(name, splits, fields, extra_files)


def unknown_rows(index: SignatureIndex, table: pa.Table, *also: SignatureIndex, held: Any = None) -> tuple[Any, Any]:
    """The rows of a record table whose texts the index (nor any of `also`) holds, one per distinct text, ascending;
    and the keys of all its rows (`sigindex.text_keys`). `held`: which of the index's rows count (a mask; all)."""
    import numpy as np

    from swcdata.similarity.sigindex import first_of_each, text_keys

    keys = text_keys(table.column("instruction"), table.column("response"))
    at = index.find(keys)
    missing = np.flatnonzero(at < 0 if held is None else (at < 0) | ~held[np.maximum(at, 0)])
    for more in also:
        if len(more) and len(missing):
            missing = missing[more.find(keys[missing]) < 0]
    return missing[first_of_each(keys[missing])], keys


def parent_index(registry: Registry, name: str, cfg: DedupConfig) -> tuple[SignatureIndex | None, str | None, str]:
    """The signature index a build of `name` reuses: its parent's (the latest version of `name`), when that index
    was made with the config's parameters. Returns (index or None, the parent's ref or None, a note on what is
    reused or why nothing is). A parent index that does not match its manifest is a DataError (tampering)."""
    if not cfg.near:
        return None, None, "no near-duplicate detection: no signatures"
    existing = registry.versions(name) if name in registry.names() else []
    if not existing:
        return None, None, f"no earlier version of {name}: every record signed"
    parent = existing[-1]
    if parent.index is None:
        return None, parent.ref, f"{parent.ref} has no signature index: every record signed"
    from swcdata.similarity.sigindex import IndexParams

    wanted = cfg.index_params()
    try:
        differences = IndexParams.model_validate(parent.index.params).differences(wanted)
    except ValueError:
        differences = ["parameters this swcdata does not read"]
    if differences:
        return None, parent.ref, (f"the signature index of {parent.ref} was made with other parameters ("
                                  f"{'; '.join(differences)}): not reused, every record signed afresh")
    index = registry.signature_index(parent)
    return index, parent.ref, f"signatures of {parent.ref} reused"


def run_build(cfg: BuildConfig, base: Path, *, home: Path | None = None, on_step: StepProgress | None = None,
              steps: Steps | None = None, cache: bool = True) -> BuildResult:
    """Run every step and publish. `on_step(name)` is called as each step starts (for progress). `steps`: where
    validate, dedup, split and augment run (default: here; `swcdata.engine.build.RaySteps` on a Ray cluster, whose
    splits are gathered here for the audit and the publication: the same version). `cache`: take validation's code
    findings and augmentation's variants from the build cache where it holds a text, and whole input files' outcomes
    where it holds their bytes (`swcdata.steps.prepared`), and leave this build's there (`swcdata.registry.cache`;
    the version is the same either way)."""
    from swcdata.core.io import resolve_inputs
    from swcdata.registry.cache import BuildCache
    from swcdata.registry.store import Registry

    runner = steps or Steps()

    def resolve(paths: list[str]) -> list[Path]:
        return resolve_inputs([p if Path(p).is_absolute() else str(base / p) for p in paths])

    # (before any work: missing inputs, or a registry we cannot write, fail now, not at publish)
    files = resolve(cfg.inputs)
    holdout_files = resolve(cfg.split.holdout) if cfg.split.holdout else []
    registry = Registry(home)
    check_writable(registry.home)
    memos = _Memos(BuildCache(registry.home, cfg.name) if cache and runner.memoises else None)
    with runner.session():
        try:
            return _run_build(cfg, base, files, holdout_files, registry, on_step, runner, memos)
        finally:
            memos.discard()  # (a build that failed leaves the cache as it was; one that published, as it left it)


class _Memos:
    """A build's use of its cache: the memo each step starts from, each step's memo of this build, and the prepared
    inputs."""

    def __init__(self, cache: BuildCache | None) -> None:
        self.cache = cache
        self.use: dict[str, CacheUse] = {}
        self._made: list[tuple[str, Background]] = []  # (each step's memo, written in a thread as it is made)
        self._prepared: PreparedInputs | None = None

    def known(self, step: str, reader: Callable[[Path], Any] | None = None) -> Any:
        """The memo of `step` (read by `reader`, default `read_memo`), or None."""
        if self.cache is None:
            return None
        memo, note = self.cache.read(step, reader) if reader is not None else self.cache.read(step)
        self.use[step] = CacheUse(note=note)
        return memo

    def made(self, memo: Any, texts: int, reused: int, note: str | None,
             writer: Callable[[Any, Path], None] | None = None) -> None:
        """A step's memo of this build: written beside the cache's in a thread while the build goes on (Parquet
        releases the GIL), put in place by `write` once the version is published."""
        from swcdata.core.workers import Background

        step = memo.params.step
        use = self.use[step]
        self.use[step] = CacheUse(texts=texts, reused=reused, kept=len(memo), note=use.note or note)
        if self.cache is not None:
            args = (memo,) if writer is None else (memo, writer)
            self._made.append((step, Background(self.cache.stage, *args, name="swcdata-cache")))

    def inputs(self, cfg: ValidateConfig) -> PreparedInputs | None:
        """The prepared inputs of this build's validation (None without a cache)."""
        if self.cache is None:
            return None
        from swcdata.steps.prepared import PreparedInputs

        self._prepared = PreparedInputs(cfg, self.cache.inputs)
        return self._prepared

    def validated(self) -> None:
        """Count what the validation took from the prepared inputs."""
        p = self._prepared
        if p is not None:
            self.use["inputs"] = CacheUse(texts=p.lines, reused=p.reused, note="; ".join(p.notes) or None)

    def write(self) -> None:
        """Leave this build's memos and prepared inputs in the cache (after the publication: a failed build leaves
        the old ones, see `discard`)."""
        made, self._made = self._made, []
        for step, staging in made:
            note = staging.result().commit()
            if note:
                self.use[step] = self.use[step].model_copy(update={"kept": 0, "note": note})
        if self._prepared is not None:
            note = self._prepared.write()
            use = self.use["inputs"]
            self.use["inputs"] = use.model_copy(update={"kept": self._prepared.kept, "note": use.note or note})

    def discard(self) -> None:
        """Remove the memos written for a build that did not publish (the cache keeps the old ones)."""
        made, self._made = self._made, []
        for _, staging in made:
            staging.join()
            with contextlib.suppress(Exception):  # (its error: nothing was written)
                staging.result().discard()


def _run_build(cfg: BuildConfig, base: Path, files: list[Path], holdout_files: list[Path], registry: Registry,
               on_step: StepProgress | None, runner: Steps, memos: _Memos) -> BuildResult:
    """`run_build` after the checks, inside the runner's session."""
    import time

    from swcdata.core.workers import Background
    from swcdata.steps.audit import AuditConfig
    from swcdata.steps.features import Features, features_params, read_features, write_features
    from swcdata.steps.validate import CodeChecks, load_valid

    def step(name: str) -> None:
        if on_step:
            on_step(name)

    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = round(now - t, 3)
        t = now

    names = PublishedNames([*files, *holdout_files], base)
    # The parent's signature index (its sha256 checked, then read: a second or two at 1M records) is read in a thread
    # while validation runs (its workers check the lines; hashing and reading Parquet release the GIL); the dedup
    # step takes it, or the error that reading it raised (a tampered index fails the build there, as before).
    parent = Background(parent_index, registry, cfg.name, cfg.dedup)
    step("validate")
    checks = CodeChecks(cfg.validate_, memos.known("checks")) if memos.cache and cfg.validate_.check_code else None
    prepared = memos.inputs(cfg.validate_) if runner.prepares else None
    records, vrep, quarantined = runner.validate(files, cfg.validate_, names, checks, prepared)
    if checks is not None:
        memos.made(checks.memo(), checks.checked, checks.reused, checks.note)
    memos.validated()
    lap("validate")

    step("dedup")
    known, parent_ref, index_note = parent.result()
    del parent
    reusing = known is not None
    kept, drep = runner.dedup(records, cfg.dedup, known)
    lap("dedup")

    step("split")
    split_cfg = SplitConfig(**cfg.split.model_dump(exclude={"holdout", "seed", *_LEAK_KEYS}), seed=cfg.seed,
                            **cfg.audit.model_dump())
    holdout = None
    holdout_quarantined: list[Any] = []
    holdout_inputs: list[Any] = []
    if cfg.split.holdout:
        holdout, hrep, holdout_quarantined = load_valid([str(f) for f in holdout_files],
                                                        ValidateConfig(check_code=False))
        holdout_inputs = hrep.inputs
        holdout = names.table(holdout)
    # (what the audit's rules read of each record: computed once per split, and taken from the build cache where it
    # holds a record's text; the split's code rule reads it too)
    acfg_audit = AuditConfig(near=cfg.dedup, **cfg.audit.model_dump())
    feature_params = features_params(acfg_audit)
    features = Features(memos.known("audit", read_features) if memos.cache and runner.audits_here else None,
                        feature_params)
    splits, srep = runner.split(kept, split_cfg, holdout, known, features)
    pre_aug = dict(srep.sizes)
    lap("split")
    if not pre_aug.get("train"):  # (checked before augmenting and auditing: nothing would come of them)
        dups = drep.ledger.exact_duplicates + drep.ledger.near_duplicates
        raise DataError(
            f"nothing to publish: the train split is empty ({vrep.ledger.lines_read:,} line(s) read: "
            f"{vrep.ledger.quarantined:,} quarantined, {dups:,} duplicate(s), "
            f"{len(srep.decontaminated):,} removed as copies of the holdout, "
            f"{sum(pre_aug.values()) - srep.holdout_records:,} kept)",
            hint="swcdata validate names each problem of the inputs")

    aug_step: dict[str, Any] | None = None
    augmented = not_augmented = 0
    if cfg.augment.enabled:
        from swcdata.steps.augment.step import AugmentConfig, VariantMemo

        step("augment")
        acfg = AugmentConfig(**{"seed": cfg.seed, **(cfg.augment.model_extra or {})})
        vmemo = VariantMemo(acfg, memos.known("augment")) if memos.cache else None
        splits, arep = runner.augment(splits, acfg, vmemo)
        if vmemo is not None:
            made = vmemo.memo()
            memos.made(made, vmemo.texts, vmemo.reused, vmemo.note)
        augmented = sum(s.records_out for s in arep.splits.values()) - sum(pre_aug.values())
        not_augmented = sum(s.skipped_by_finding for s in arep.splits.values())
        aug_step = {"name": "augment", "config": acfg.model_dump(mode="json"),
                    "summary": arep.model_dump(mode="json", exclude={"config"})}
        lap("augment")

    splits = runner.final(splits)
    sizes = runner.sizes(splits)
    index: SignatureIndex | None = None
    index_entry: IndexEntry | None = None
    if cfg.dedup.near:
        from swcdata.registry.manifest import INDEX_FILE, IndexEntry

        step("index")
        index, extra, extra_reused = runner.index(drep.signed, splits, cfg.dedup, known)
        signed_n = len(drep.signed.keys) if drep.signed is not None else 0
        drep._signed = None  # (its signatures are in the index now: not held twice)
        reused = drep.reused_signatures + extra_reused
        index_entry = IndexEntry(path=INDEX_FILE, records=len(index), params=index.params.model_dump(),
                                 reused=reused, signed=signed_n - drep.reused_signatures + extra,
                                 reused_from=parent_ref if reusing else None,
                                 note=None if reusing else index_note)
        lap("index")
    del known
    step("audit")
    contamination: dict[str, dict[str, Any]] = {}
    # (each split is audited twice: what its rules read of it is computed once, `features`)
    pairs = [(a, b) for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))
             if sizes.get(a) and sizes.get(b)]
    for k, (a, b) in enumerate(pairs):
        s = runner.audit(splits[a], splits[b], acfg_audit, index, features)
        for name in sorted({a, b} - {x for later in pairs[k + 1:] for x in later}):  # (not read again)
            features.forget(splits[name])
        contamination[f"{b} vs {a}"] = {"exact": s.exact, "near": s.near, "code": s.code,
                                         "code_pairs": s.code_pairs, "label_conflicts": s.label_conflicts,
                                         "ngram_only": s.ngram_only, "leaked": s.leaked,
                                         "contamination_rate": s.contamination_rate,
                                         "ngram_overlap_rate": s.ngram_overlap_rate}
    if memos.cache is not None and features.texts:  # (a Ray build audits on the cluster, without them)
        memos.made(features.memo(feature_params), features.texts, features.reused, features.note, write_features)
    del features
    lap("audit")

    holdout_n = srep.holdout_records  # (the holdout's records in test, its exact copies dropped)
    ledger = BuildLedger(
        lines_read=vrep.ledger.lines_read, blank_lines=vrep.ledger.blank_lines, quarantined=vrep.ledger.quarantined,
        exact_duplicates=drep.ledger.exact_duplicates, near_duplicates=drep.ledger.near_duplicates,
        decontaminated=len(srep.decontaminated), kept=sum(pre_aug.values()) - holdout_n, holdout=holdout_n,
        holdout_duplicates=len(srep.holdout_duplicates), holdout_quarantined=len(holdout_quarantined),
        augmented=augmented, splits=sizes,
        quarantined_by_finding=sum(1 for q in quarantined
                                   if any(r in cfg.validate_.drop_findings for r, _, _ in q.reasons)),
        not_augmented_by_finding=not_augmented,
    )
    if not ledger.adds_up:  # a bug, never a user error: refuse to publish an inconsistent version
        raise AssertionError(f"conservation ledger does not add up: {ledger}")

    step("publish")
    steps = [
        {"name": "validate", "config": cfg.validate_.model_dump(mode="json"),
         "summary": {"ledger": vrep.ledger.model_dump(), "errors": vrep.errors, "warnings": vrep.warnings,
                     "rules": {r.rule: r.count for r in vrep.rules}}},
        {"name": "dedup", "config": cfg.dedup.model_dump(mode="json"),
         "summary": {"ledger": drep.ledger.model_dump(), "clusters": drep.clusters,
                     "category_conflicts": drep.category_conflicts}},
        {"name": "split", "config": split_cfg.model_dump(mode="json") | {"holdout": [names(str(f))
                                                                                  for f in holdout_files]},
         "summary": {"sizes": srep.sizes, "within_tolerance": srep.within_tolerance, "groups": srep.groups,
                     "decontaminated": len(srep.decontaminated),
                     "decontaminated_by_rule": dict(Counter(d.kind for d in srep.decontaminated)),
                     "label_conflicts": len(srep.label_conflicts), "code_groups": srep.code_groups}},
    ]
    if aug_step is not None:
        steps.append(aug_step)
    steps.append({"name": "audit", "config": acfg_audit.model_dump(mode="json"), "summary": contamination})
    for entry in steps:  # which code ran the step's hot loops (one switch, swcdata._native, for the whole process);
        entry["summary"] = {**entry["summary"], "backend": _native.backend()}  # (a version's identity: its configs)
    inputs = [{"path": names(i.path), "sha256": i.sha256, "bytes": i.bytes, "role": role}
              for role, files_of in (("input", vrep.inputs), ("holdout", holdout_inputs)) for i in files_of]
    removed = {
        "quarantined": _quarantined_json(quarantined, names),
        # (the dedup step's table, stored as it is; its cluster numbers name the clusters of a report this build
        # does not keep)
        "duplicates": drep.removed_table.drop_columns(["cluster"]),
        "decontaminated": [d.model_dump(mode="json") for d in srep.decontaminated],
        "label_conflicts": [c.model_dump(mode="json") for c in srep.label_conflicts],
        "holdout_duplicates": [r.model_dump(mode="json") for r in srep.holdout_duplicates],
        "holdout_quarantined": _quarantined_json(holdout_quarantined, names),
    }
    extra_files: dict[str, Callable[[Path], None]] = {}
    if index is not None and index_entry is not None:
        from swcdata.similarity.sigindex import write_index

        kept_index = index
        extra_files[index_entry.path] = lambda path: write_index(kept_index, path)
    manifest, created = runner.publish(registry, cfg.name, splits, {
        "steps": steps, "inputs": inputs, "ledger": ledger.model_dump() | {"contamination": contamination},
        "removed": removed, "seed": cfg.seed, "license": cfg.license,
        **({"index": index_entry.model_dump()} if index_entry is not None else {}),
    }, extra_files)
    memos.write()
    lap("publish")
    return BuildResult(
        name=manifest.name, version=manifest.version, ref=f"{manifest.name}@v{manifest.version}",
        content_hash=manifest.content_hash, created=created, ledger=ledger,
        counts={split: dict(c.by_category) for split, c in manifest.counts.items()},
        contamination=contamination, findings={r.rule: r.count for r in vrep.rules},
        index=manifest.index.model_dump() if manifest.index is not None else None, cache=memos.use,
        timings=timings,
    )
