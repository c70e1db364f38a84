"""`push` and `pull`: a registry version on the Hugging Face Hub, as Parquet shards + a dataset card + its manifest.

What a push uploads (staged in a folder first): `data/<split>-<i>-of-<n>.parquet` (each split in shards of at
most --max-shard-size, written with content-defined chunking where pyarrow has it), a `README.md` whose YAML
front matter declares the `configs` (`data/<split>-*` per split), the split sizes and the license and whose
body reads from top to bottom (what the data is, splits and categories, fields, lineage, the ledger, the
removed records, the contamination audit and the license), the registry manifest `swcdata/manifest.json`, and
the version's other files under `swcdata/files/` (the removed-record lists, the `datasets` metadata): all that
`pull` needs to rebuild the version file for file, as the same `name@vN` with the same content hash. The Hub
revision is tagged `vN`.

Every call to the Hub goes through one factory, `make_api`, that tests replace or point at a loopback server
(`HF_ENDPOINT`). The token is found by huggingface_hub itself (`HF_TOKEN` or `hf auth login`); swcdata never
reads, prints or stores it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swcdata.core.errors import DataError, InputError, SwcdataError, validation_problems
from swcdata.core.io import sha256_file
from swcdata.registry.content import as_arrow
from swcdata.registry.manifest import Manifest, flatten
from swcdata.registry.store import Registry, record_features

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa
    from huggingface_hub import HfApi

REPO_TYPE = "dataset"
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
DESCRIPTION = "Instruction/response pairs about vulnerabilities in Solidity smart contracts (SWC registry classes)."
MANIFEST_PATH = "swcdata/manifest.json"  # the registry manifest, beside the data
FILES_DIR = "swcdata/files"  # the version's files other than its Arrow data, by their path in the version
_OWNED = ("data/", "swcdata/")  # what a push replaces: files of an earlier version there are deleted
DEFAULT_MAX_SHARD_SIZE = "500MB"  # as `datasets` push_to_hub
DEFAULT_MAX_COMMIT_SIZE = "5GB"
CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}  # as `datasets`


class HubError(SwcdataError):
    """The Hub refused or could not be reached (exit 1: nothing is wrong with the command line)."""

    exit_code = 1


class StagedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path in the repository.")
    bytes: int
    sha256: str


class HubOperation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="HfApi method: create_repo, list_repo_tree (the files to replace), "
                        "create_commit (one, or data parts then a last one) or create_tag.")
    kwargs: dict[str, Any] = Field(description="Its arguments; for create_commit the paths it adds (`add`) and "
                                   "deletes (`delete`) instead of the operation objects.")


class PushReport(BaseModel):
    """What `swcdata push` sent (or, with --dry-run, would send) to the Hub."""

    model_config = ConfigDict(extra="forbid", title="PushReport")

    ref: str
    content_hash: str
    repo_id: str
    repo_type: str = REPO_TYPE
    private: bool
    tag: str
    dry_run: bool
    staging_dir: str | None = Field(description="The staged folder (kept for a dry run; None once uploaded "
                                    "from a temporary folder).")
    files: list[StagedFile]
    records: dict[str, int]
    shards: dict[str, int] = Field(default_factory=dict, description="Parquet shards per split.")
    bytes: int = Field(0, description="Bytes staged (every file).")
    max_shard_size: int = Field(0, description="--max-shard-size in bytes (Arrow bytes per shard, at most).")
    max_commit_size: int = Field(0, description="--max-commit-size in bytes: above it the data goes in several "
                                 "commits, the card and manifest last.")
    content_defined_chunking: bool = Field(False, description="Whether the shards were written with Parquet "
                                           "content-defined chunking (pyarrow >= 21).")
    license: str = Field("other", description="The license id of the card's front matter ('other' where the "
                         "license is unknown).")
    operations: list[HubOperation]
    commit_oid: str | None = Field(None, description="The last commit (the one tagged).")
    commits: list[str] = Field(default_factory=list, description="Every commit of the push, in order (a commit with "
                               "nothing new is skipped by the Hub client and gives the current head).")
    deleted: list[str] = Field(default_factory=list, description="Files of an earlier version deleted from the repo.")
    tag_existed: bool = Field(False, description="The tag was there already and holds this very version (a push run "
                              "again).")
    commit_url: str | None = None
    repo_url: str | None = None


class PullReport(BaseModel):
    """What `swcdata pull` downloaded and registered."""

    model_config = ConfigDict(extra="forbid", title="PullReport")

    repo_id: str
    revision: str = Field(description="The revision asked for: a version tag vN, a branch (main by default) or a "
                          "commit.")
    commit: str = Field(description="The commit it resolved to.")
    ref: str = Field(description="The registry version, name@vN, as its manifest names it.")
    content_hash: str
    registered: bool = Field(description="False when the registry held this version already (checked, kept).")
    home: str
    path: str = Field(description="The version folder in the registry.")
    records: dict[str, int]
    downloaded: list[StagedFile] = Field(description="The files downloaded beside the manifest (none when the "
                                         "version was here).")
    warnings: list[str] = Field(default_factory=list)


def make_api(write: bool = True) -> HfApi:
    """The one door to the Hub: an `HfApi` on `HF_ENDPOINT` (read when called, so it may be set after import;
    default the Hub). huggingface_hub finds the token (HF_TOKEN or `hf auth login`); writing needs one, reading a
    public repo does not."""
    from huggingface_hub import HfApi, get_token

    if write:
        try:
            found = get_token() is not None
        except Exception:  # e.g. a failed OIDC exchange: huggingface_hub will say more when used
            found = True
        if not found:
            raise InputError("no Hugging Face token found: pushing needs one with write access",
                             hint="export HF_TOKEN=... or run `hf auth login` (or use --dry-run to stage only)")
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return HfApi(endpoint=endpoint or None)


# ---- the dataset card -------------------------------------------------------------------------


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
              (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T"


def _front_matter(m: Manifest, split_bytes: Mapping[str, int], download_size: int,
                  license: str | None = None) -> dict[str, Any]:
    fm: dict[str, Any] = {
        "license": card_license(license or m.license),
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["solidity", "smart-contracts", "security", "swc"],
        "pretty_name": f"{m.name} v{m.version}",
        "size_categories": [size_category(m.records)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}-*"} for s in m.counts]}],
    }
    try:
        features: list[Any] | None = record_features()._to_yaml_list()
    except Exception:  # a private helper of `datasets`: leave the features out rather than fail
        features = None
    info: dict[str, Any] = {}
    if features is not None:
        info["features"] = features
    info["splits"] = [{"name": s, "num_bytes": split_bytes[s], "num_examples": c.records}
                      for s, c in m.counts.items()]
    info["download_size"] = download_size
    info["dataset_size"] = sum(split_bytes.values())
    fm["dataset_info"] = info
    return fm


def _md_cell(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.2%}" if 0.0 <= v <= 1.0 else f"{v:,.4g}"
    return _md_cell(v)


def _kv_table(d: Mapping[str, Any]) -> list[str]:
    flat = flatten(d)
    if not flat:
        return ["(none)"]
    return ["| key | value |", "| --- | ---: |", *(f"| `{k}` | {_num(v)} |" for k, v in flat.items())]


def card_license(license: str | None) -> str:
    """The license id of the card's front matter: the Hub's 'other' for an unknown license."""
    lic = (license or "unknown").strip().lower()
    return "other" if lic in ("", "unknown", "other") else lic


# The ledger's lines in the order a reader follows an input line, with words for the build's keys.
_LEDGER_LINES = {
    "lines_read": "input lines read",
    "blank_lines": "blank lines",
    "quarantined": "quarantined (failed the schema checks)",
    "exact_duplicates": "removed as exact duplicates",
    "near_duplicates": "removed as near duplicates",
    "decontaminated": "removed as copies of the holdout (decontamination)",
    "kept": "kept in the splits",
}
_LEDGER_MORE = {
    "holdout": "holdout records in the test split",
    "holdout_duplicates": "holdout exact copies dropped",
    "holdout_quarantined": "holdout lines quarantined",
    "augmented": "augmented variants added to train",
}
_REMOVED_KINDS = {
    "quarantined": "quarantined (failed the schema checks)",
    "duplicates": "duplicates",
    "decontaminated": "decontaminated (copies of a holdout record)",
    "holdout_duplicates": "holdout duplicates (exact copies inside the holdout)",
    "holdout_quarantined": "holdout quarantined",
    "label_conflicts": "label conflicts (code of a holdout record under another category; removed with the "
                       "decontaminated)",
}
# The audit's columns: (heading, what it counts). Columns the build records beyond these are shown with the
# description of the audit summary's field.
_AUDIT_COLUMNS = {
    "exact": ("exact", "records of the first split identical to a record of the second"),
    "near": ("near", "near duplicates of a record of the second (whole-record MinHash at the build's threshold)"),
    "code": ("code", None),
    "code_pairs": ("code pairs", None),
    "label_conflicts": ("label conflicts", None),
    "ngram_only": ("n-gram only", "records that match in none of these ways but share an n-gram of {n} words"),
    "leaked": ("leaked", "records that count as leaks under the build's leak rules"),
    "contamination_rate": ("contamination rate", "leaked records per record of the first split"),
    "ngram_overlap_rate": ("n-gram overlap rate", "records sharing any n-gram of {n} words, per record of the "
                           "first split"),
}
_STEP_WORDS = {
    "validate": "schema and code checks; failing lines are quarantined",
    "dedup": "exact and code-aware near-duplicate removal",
    "split": "train/validation/test split (near-duplicate groups never cross a split; train and validation are "
             "decontaminated against a holdout)",
    "augment": "semantics-preserving variants of train records",
    "audit": "contamination audit between the splits",
}


def _ledger_section(ledger: Mapping[str, Any]) -> list[str]:
    rest = {k: v for k, v in ledger.items() if k not in ("contamination", "splits")}
    if not rest:
        return ["The manifest of this version records no ledger."]
    lines = ["Where every input line went:", "", "| | lines |", "| --- | ---: |"]
    path = [k for k in _LEDGER_LINES if k in rest]
    lines += [f"| {_LEDGER_LINES[k]} | {_num(rest[k])} |" for k in path]
    lines += [f"| {_LEDGER_MORE[k]} | {_num(rest[k])} |" for k in _LEDGER_MORE if k in rest]
    other = {k: v for k, v in rest.items() if k not in _LEDGER_LINES and k not in _LEDGER_MORE}
    lines += [f"| `{k}` | {_num(v)} |" for k, v in flatten(other).items()]
    if len(path) == len(_LEDGER_LINES) and all(isinstance(rest[k], int) for k in path):
        parts = [rest[k] for k in path[1:]]
        ok = rest["lines_read"] == sum(parts)
        lines += ["", f"The ledger {'adds up' if ok else 'does NOT add up'}: {rest['lines_read']:,} lines read "
                  f"{'=' if ok else '!='} " + " + ".join(f"{n:,}" for n in parts)
                  + " (blank + quarantined + exact + near duplicates + decontaminated + kept)."]
    return lines


def _removed_section(removed: Mapping[str, Any]) -> list[str]:
    """Counts per kind of removed record, and where the per-record lists are."""
    rows: list[tuple[str, str, str]] = []
    inline = in_files = False
    for key, v in removed.items():
        label = _REMOVED_KINDS.get(key, key.replace("_", " "))
        where = "`manifest.json`"
        if isinstance(v, list):
            inline = True
            kinds = Counter(e.get("kind") for e in v if isinstance(e, Mapping))
            if key == "duplicates" and kinds and set(kinds) <= {"exact", "near"}:
                rows += [(f"{kind} duplicates", f"{kinds.get(kind, 0):,}", where) for kind in ("exact", "near")]
                continue
            rows.append((label, f"{len(v):,}", where))
        elif isinstance(v, str):  # a file of the version that lists them
            rows.append((label, "", f"`{_md_cell(v)}`"))
        elif isinstance(v, Mapping):  # (the registry's {records, path, by_kind}: the list in a file of the version)
            n = next((v[k] for k in ("records", "count") if isinstance(v.get(k), int)), None)
            f = next((v[k] for k in ("path", "file") if isinstance(v.get(k), str)), None)
            listed = f"`{_md_cell(f)}`" if f else "-"
            in_files = in_files or f is not None
            by_kind = v.get("by_kind")
            if key == "duplicates" and isinstance(by_kind, Mapping) and by_kind and set(by_kind) <= {"exact", "near"}:
                rows += [(f"{kind} duplicates", f"{by_kind.get(kind, 0):,}", listed) for kind in ("exact", "near")]
                continue
            rows.append((label, "" if n is None else f"{n:,}", listed))
        else:
            rows.append((label, _num(v), "-"))
    if not rows:
        return ["The manifest of this version records no removed records."]
    lines = ["| removed | records | listed in |", "| --- | ---: | --- |",
             *(f"| {label} | {n} | {where} |" for label, n, where in rows)]
    if inline:
        lines += ["", "Each removed record is listed in the registry version's `manifest.json` (`removed`) with its "
                  "input file and line and the reason: the rules it failed, or the kept record it duplicates."]
    elif in_files:
        lines += ["", "Each removed record is listed, with its input file and line and the reason (the rules it "
                  "failed, or the kept record it duplicates), in the Parquet file named above, in the registry "
                  "version's folder."]
    return lines


def _contamination(m: Manifest) -> tuple[str, Any] | None:
    """The contamination audit the build recorded, once: the ledger's (a build's), else an audit step's summary,
    else any contamination/audit entry of `removed`."""
    found: list[tuple[str, Any]] = []
    for where, d in (("ledger", m.ledger), ("removed", m.removed)):
        for k, v in d.items():
            if "contamination" in k.lower() or k.lower() in ("audit", "leakage", "leaks"):
                found.append((f"{where}.{k}", v))
    for s in m.steps:
        if "contamination" in s.name.lower() or "audit" in s.name.lower():
            found.append((f"step {s.name}", s.summary or s.config))
    return next((f for f in found if f[1]), None)


def _audit_column_meaning(column: str, n: Any) -> str | None:
    """What an audit column counts: our words, else the audit summary field's description."""
    meaning = _AUDIT_COLUMNS.get(column, ("", None))[1]
    if meaning is not None:
        return meaning.format(n=n)
    from swcdata.steps.audit import AuditSummary

    field = AuditSummary.model_fields.get(column)
    text = field.description.rstrip(".") if field is not None and field.description else ""
    return text[:1].lower() + text[1:] if text else None


def _contamination_section(m: Manifest) -> list[str]:
    found = _contamination(m)
    if found is None:
        return ["The manifest of this version records no contamination audit."]
    _where, v = found
    if isinstance(v, Mapping) and v and all(isinstance(x, Mapping) for x in v.values()):
        cols = list(dict.fromkeys(k for x in v.values() for k in x))
        n = next((s.config.get("overlap_n") for s in m.steps if s.name == "audit"), None) or "n"
        heads = {c: _AUDIT_COLUMNS.get(c, (c.replace("_", " "), None))[0] for c in cols}
        lines = ["| pair | " + " | ".join(heads.values()) + " |", "| --- | " + " | ".join("---:" for _ in cols) + " |",
                 *(f"| {_md_cell(pair)} | " + " | ".join(_num(x.get(c, "")) for c in cols) + " |"
                   for pair, x in v.items())]
        legend = [(heads[c], _audit_column_meaning(c, n)) for c in cols]
        return [*lines, "", "Each row checks the records of the first split against the second:", "",
                *(f"- **{h}**: {w}" for h, w in legend if w)]
    return _kv_table(v) if isinstance(v, Mapping) else [_md_cell(v)]


def _license_section(license: str | None) -> list[str]:
    lic = (license or "unknown").strip()
    if card_license(lic) == "other":
        return ["The license of this data is **unknown**: its build config does not declare one "
                "(`license = \"unknown\"`), so the card says `other`. Check the terms of the original sources "
                "before using or redistributing it."]
    return [f"`{lic.lower()}`, as the build config declares it."]


def render_card(m: Manifest, split_bytes: Mapping[str, int], download_size: int, repo_id: str,
                license: str | None = None) -> str:
    """README.md: YAML front matter (configs, split sizes, tags, license) and a body a person reads from top to
    bottom: what the data is, its splits and fields, its lineage, the ledger, the removed records, the
    contamination audit and the license. `license` overrides the manifest's."""
    import yaml

    lic = license or m.license or "unknown"
    fm = yaml.safe_dump(_front_matter(m, split_bytes, download_size, lic), sort_keys=False, allow_unicode=True,
                        width=1000)
    cats = sorted({c for sc in m.counts.values() for c in sc.by_category})
    splits = list(m.counts)
    totals = [m.counts[s].records for s in splits]
    per_split = ", ".join(f"{s} {n:,}" for s, n in zip(splits, totals, strict=True))
    lines = [
        "---", fm.rstrip("\n"), "---", "",
        f"# {m.name} v{m.version}", "", DESCRIPTION, "",
        f"{sum(totals):,} records in {len(splits)} split{'s' if len(splits) != 1 else ''} ({per_split}) over "
        f"{len(cats)} categor{'ies' if len(cats) != 1 else 'y'}. Each record is an `instruction` (usually with "
        "Solidity code) and a reference `response`, labelled with its SWC `category`; `source` names the input "
        "file and line it came from.", "",
        f"Published by swcdata {m.tool_version} from the registry version `{m.ref}` "
        f"(content hash `{m.content_hash}`). License: `{card_license(lic)}` (see [License](#license)).", "",
        "```python", "from datasets import load_dataset", "",
        f'ds = load_dataset("{repo_id}", revision="v{m.version}")', "```", "",
        f"The registry manifest travels with the data: `{MANIFEST_PATH}` (content hash, lineage, per-file "
        f"sha256), with the version's other files under `{FILES_DIR}/`. `swcdata pull {repo_id}@v{m.version}` "
        f"downloads this version, checks it against the manifest and registers it locally as `{m.ref}`.", "",
        "## Splits and categories", "",
        "| category | " + " | ".join(splits) + " | total |",
        "| --- | " + " | ".join("---:" for _ in splits) + " | ---: |",
    ]
    for c in cats:
        per = [m.counts[s].by_category.get(c, 0) for s in splits]
        lines.append(f"| {c} | " + " | ".join(f"{n:,}" for n in per) + f" | {sum(per):,} |")
    lines += ["| **all** | " + " | ".join(f"**{n:,}**" for n in totals) + f" | **{sum(totals):,}** |", ""]
    notes = []
    augmented = m.ledger.get("augmented")
    if isinstance(augmented, int) and augmented:
        notes.append(f"- train holds {augmented:,} augmented variants of its records (`parent_id`, `transform` "
                     "and `template` set); the other splits hold original records only.")
    holdouts = [i.path for i in m.inputs if i.role == "holdout"]
    if holdouts and "test" in m.counts:
        n = m.ledger.get("holdout")
        notes.append(f"- test is the holdout set {', '.join(f'`{_md_cell(p)}`' for p in holdouts)}"
                     + (f" ({n:,} records)" if isinstance(n, int) else "")
                     + "; train and validation were decontaminated against it.")
    if notes:
        lines += [*notes, ""]
    lines += [
        "## Fields", "",
        "| field | meaning |", "| --- | --- |",
        "| `id` | stable id: xxh3-64 of the normalised instruction and response |",
        "| `instruction` | the prompt, usually with Solidity code |",
        "| `response` | the reference answer |",
        "| `category` | SWC registry id, e.g. `SWC-107` |",
        "| `source` | the input file (as listed under Lineage) and 1-based line the record came from |",
        "| `metadata` | JSON text of free-form extra fields, or null |",
        "| `parent_id`, `transform`, `template` | lineage of augmented records (null for originals) |",
        "",
        "## Lineage", "",
        f"- version: `{m.ref}`",
        f"- content hash (sha256 over every row): `{m.content_hash}`",
        f"- manifest: `{MANIFEST_PATH}`",
        f"- parent: `{m.parent}`" if m.parent else "- parent: none",
        f"- created: {m.created_at} with swcdata {m.tool_version}",
        f"- seed: {m.seed}" if m.seed is not None else "- seed: none",
        "",
    ]
    if m.inputs:
        lines += ["### Input files", "", "| file | role | bytes | sha256 |", "| --- | --- | ---: | --- |",
                  *(f"| {_md_cell(i.path)} | {i.role} | {i.bytes:,} | `{i.sha256}` |" for i in m.inputs), ""]
    if m.steps:
        lines += ["### Steps", "", *(f"{k}. **{s.name}**" + (f": {_STEP_WORDS[s.name]}" if s.name in _STEP_WORDS
                                                             else "") for k, s in enumerate(m.steps, 1)), "",
                  "<details><summary>Each step's full config</summary>", ""]
        for s in m.steps:
            lines += [f"**{s.name}**", "", "```json", json.dumps(s.config, indent=2, sort_keys=True, default=str),
                      "```", ""]
        lines += ["</details>", ""]
    lines += ["## Ledger", "", *_ledger_section(m.ledger), ""]
    if m.removed:
        lines += ["## Removed records", "", *_removed_section(m.removed), ""]
    lines += ["## Contamination audit between splits", "", *_contamination_section(m), ""]
    lines += ["## License", "", *_license_section(lic), ""]
    return "\n".join(lines)


# ---- sizes, shards and staging ----------------------------------------------------------------


def parse_size(value: int | str, option: str = "--max-shard-size") -> int:
    """Bytes from an int or a size: "500MB", "1GB" (powers of 1000, as `datasets` counts), "256MiB" (of 1024),
    "1000000". InputError (exit 2) for anything else or for less than one byte."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _SIZE_RE.match(str(value))
        unit = (m.group(2) or "").lower() if m else ""
        if m is None or unit not in _UNITS:
            raise InputError(f"{option} {value!r} is not a size",
                             hint="give bytes (1000000) or a number and a unit: 500MB, 1GB, 256MiB")
        n = int(float(m.group(1)) * _UNITS[unit])
    if n < 1:
        raise InputError(f"{option} {value!r} is less than one byte", hint="give a size such as 500MB")
    return n


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
          "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def shard_path(split: str, index: int = 0, count: int = 1) -> str:
    """`data/<split>-<i>-of-<n>.parquet`, the names `datasets` writes and reads (`data/<split>-*` in the card)."""
    return f"data/{split}-{index:05d}-of-{count:05d}.parquet"


def shard_ranges(rows: int, nbytes: int, max_shard_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each shard of a split of `rows` rows taking `nbytes` in Arrow: as few shards as keep
    each under `max_shard_size` (Arrow bytes, as `datasets` push_to_hub measures them), rows spread evenly."""
    n = max(1, min(rows, -(-nbytes // max_shard_size))) if rows else 1
    bounds = [rows * i // n for i in range(n + 1)]
    return [(bounds[i], bounds[i + 1] - bounds[i]) for i in range(n)]


def content_defined_chunking() -> bool:
    """Whether the installed pyarrow writes Parquet pages at content-defined boundaries (pyarrow >= 21): data
    shared with an earlier version then makes identical pages, which the Hub's chunk-level storage (Xet)
    does not upload again."""
    import inspect

    import pyarrow.parquet as pq

    return "use_content_defined_chunking" in inspect.signature(pq.write_table).parameters


def write_shard(table: pa.Table, f: Any) -> None:
    """One Parquet shard: the record schema with the `datasets` features in its metadata, zstd, fixed row groups
    (deterministic bytes), and content-defined chunking where pyarrow has it (the options `datasets` uses)."""
    import pyarrow.parquet as pq

    from swcdata.core.records import RECORD_SCHEMA

    meta = {"huggingface": json.dumps({"info": {"features": record_features().to_dict()}})}
    table = as_arrow(table).select(list(RECORD_SCHEMA.names)).cast(RECORD_SCHEMA).replace_schema_metadata(meta)
    cdc: dict[str, Any] = ({"use_content_defined_chunking": dict(CDC_OPTIONS), "write_page_index": True}
                           if content_defined_chunking() else {})
    pq.write_table(table, f, compression="zstd", row_group_size=10_000, use_dictionary=True, write_statistics=True,
                   **cdc)


def stage(dd: datasets.DatasetDict | Mapping[str, Any], m: Manifest, folder: Path, repo_id: str,
          license: str | None = None, *, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
          version_dir: Path | None = None) -> list[StagedFile]:
    """Write into `folder` what the Hub receives: the Parquet shards of each split, README.md (the card), the
    manifest (`swcdata/manifest.json`) and, from the registry version folder `version_dir`, the version's files
    other than its Arrow data (`swcdata/files/...`: the removed-record lists and the `datasets` metadata), so
    that `pull` rebuilds the version file for file. Returns the files with their sizes and hashes. `license`
    overrides the manifest's in the card."""
    from swcdata.core.io import atomic_output

    limit = parse_size(max_shard_size)
    split_bytes: dict[str, int] = {}
    paths = []
    for split in m.counts:
        table = as_arrow(dd[split])
        split_bytes[split] = int(table.nbytes)
        ranges = shard_ranges(table.num_rows, split_bytes[split], limit)
        for i, (offset, length) in enumerate(ranges):
            p = folder / shard_path(split, i, len(ranges))
            with atomic_output(p) as f:
                write_shard(table.slice(offset, length), f)
            paths.append(p)
    download = sum(p.stat().st_size for p in paths)
    card = folder / "README.md"
    card.write_text(render_card(m, split_bytes, download, repo_id, license), encoding="utf-8")
    manifest = folder / MANIFEST_PATH
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(m.to_json(), encoding="utf-8")
    extra = []
    if version_dir is not None:
        for rel in m.files:
            if not rel.endswith(".arrow"):  # (the Arrow data is rebuilt from the shards)
                dst = folder / FILES_DIR / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(version_dir / rel, dst)
                extra.append(dst)
    out = []
    for p in sorted([*paths, card, manifest, *extra]):
        out.append(StagedFile(path=p.relative_to(folder).as_posix(), bytes=p.stat().st_size,
                              sha256=sha256_file(p)))
    return out


def _prepare_dir(work_dir: Path | None) -> tuple[Path, bool]:
    """(folder, is_temporary). A given folder must be empty or new: everything in it gets uploaded. It
    is not made here: staging fills a temporary sibling that becomes it at the end (io.atomic_folder)."""
    if work_dir is None:
        return Path(tempfile.mkdtemp(prefix="swcdata-push-")), True
    if work_dir.exists() and (not work_dir.is_dir() or any(work_dir.iterdir())):
        raise InputError(f"{work_dir} exists and is not an empty folder",
                         hint="the whole staging folder is uploaded: give a new or empty --out folder")
    return work_dir, False


def _stage_into(dd: datasets.DatasetDict | Mapping[str, Any], m: Manifest, folder: Path, temporary: bool,
                repo_id: str, license: str | None, max_shard_size: int, version_dir: Path) -> list[StagedFile]:
    """`stage` into `folder`: a given --out folder is made all at once (every file or none; an interrupted
    run leaves no half-staged folder, so that a rerun with the same --out works)."""
    kwargs = {"max_shard_size": max_shard_size, "version_dir": version_dir}
    if temporary:
        return stage(dd, m, folder, repo_id, license, **kwargs)  # type: ignore[arg-type]
    from swcdata.core.io import atomic_folder

    with atomic_folder(folder) as staging:
        return stage(dd, m, staging, repo_id, license, **kwargs)  # type: ignore[arg-type]


def plan_commits(files: list[StagedFile], max_commit_size: int) -> list[list[str]]:
    """The paths of each commit. All in one when they add up to `max_commit_size` or less; otherwise the data
    (shards and version files) in parts of at most that size (a file larger than it alone), then a last
    commit with the card and the manifest, so the Hub shows the new version's card only once all of its data
    is there."""
    if sum(f.bytes for f in files) <= max_commit_size:
        return [[f.path for f in files]]
    last = [f.path for f in files if f.path in ("README.md", MANIFEST_PATH)]
    parts: list[list[str]] = []
    size = 0
    for f in files:
        if f.path in last:
            continue
        if not parts or (size + f.bytes > max_commit_size and parts[-1]):
            parts.append([])
            size = 0
        parts[-1].append(f.path)
        size += f.bytes
    return [*parts, last]


# ---- talking to the Hub -----------------------------------------------------------------------


@contextlib.contextmanager
def _hub_output() -> Iterator[None]:
    """huggingface_hub's progress bars on a terminal only, and its log lines (retries, 'no files have been
    modified') left out: the command reports what happened."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from huggingface_hub.utils import logging as hf_logging

    bars_were_off = are_progress_bars_disabled()
    if not sys.stderr.isatty():
        disable_progress_bars()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if not bars_were_off:
            enable_progress_bars()


def _is_network_error(e: BaseException) -> bool:
    return type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11") or isinstance(
        e, ConnectionError | TimeoutError)


def _call(step: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except SwcdataError:
        raise
    except Exception as e:  # HTTP errors, network errors, validation errors of huggingface_hub
        raise _hub_error(f"push failed at {step}", e, kwargs.get("repo_id")) from None


def _hub_error(what: str, e: Exception, repo_id: str | None) -> HubError:
    """One line: what failed, the exception's type and the first line of its message (never a header, so never
    the token), and what to do."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    hint = "check the repo id, your access to it (HF_TOKEN / `hf auth login`) and the network"
    if _is_network_error(e):
        hint = "the connection to the Hub was lost or refused: run the same command again" + (
            " (what is already on the Hub is not sent again)" if what.startswith("push") else "")
    elif type(e).__name__ in ("RepositoryNotFoundError", "RevisionNotFoundError"):
        hint = f"check the repo id {repo_id} and the revision, and your read access to a private repo"
    return HubError(f"{what}: {type(e).__name__}: {msg}", hint=hint)


def _remote_files(api: Any, repo_id: str) -> list[str]:
    from huggingface_hub import RepoFile

    return [f.path for f in api.list_repo_tree(repo_id, repo_type=REPO_TYPE, recursive=True)
            if isinstance(f, RepoFile)]


def _tag_holds(api: Any, repo_id: str, tag: str, manifest: Path) -> str | None:
    """The commit the tag points to when it holds this very manifest (the version was pushed before); None when
    it holds something else. RevisionNotFoundError when there is no such tag."""
    info = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=tag)
    found = api.get_paths_info(repo_id, [MANIFEST_PATH], repo_type=REPO_TYPE, revision=info.sha)
    data = manifest.read_bytes()
    for f in found:
        lfs = getattr(f, "lfs", None)
        oid = lfs.sha256 if lfs is not None else getattr(f, "blob_id", None)
        if oid in (hashlib.sha256(data).hexdigest(), _git_blob_oid(data)):
            return str(info.sha)
    return None


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def push(ref: str, repo_id: str, *, private: bool = False, dry_run: bool = False,
         api_factory: Callable[[], Any] = make_api, work_dir: Path | None = None,
         home: Path | str | None = None, license: str | None = None,
         max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
         max_commit_size: int | str = DEFAULT_MAX_COMMIT_SIZE) -> PushReport:
    """Push a registry version to the Hub dataset repo `repo_id`, then tag it `v<N>`.

    The shards, the card, the manifest and the version's files go in one commit that also deletes the files of
    an earlier version under `data/` and `swcdata/`; above `max_commit_size` the data goes in several commits
    first and the card, the manifest and the deletions last. Files the Hub holds already are not sent again, so
    a push that failed half-way is resumed by running it again. With `dry_run` the staging folder is written (to
    `work_dir`, else a temporary folder that is kept) and the operations are listed, but nothing is sent and no
    token is needed. `license` (an SPDX-like id) overrides the license the version's manifest records, in the
    card only."""
    from swcdata.registry.build import LICENSE_ID

    if not _REPO_ID_RE.match(repo_id):
        raise InputError(f"invalid Hub repo id {repo_id!r}", hint="write OWNER/NAME, e.g. my-org/swc-vulns")
    if license is not None and not re.match(LICENSE_ID, license):
        raise InputError(f"invalid license id {license!r}",
                         hint="give an SPDX-like id as the Hub lists it, e.g. mit, apache-2.0, cc-by-4.0 (or unknown)")
    shard_limit = parse_size(max_shard_size, "--max-shard-size")
    commit_limit = parse_size(max_commit_size, "--max-commit-size")
    reg = Registry(home)
    dd, m = reg.load(ref)
    api = None if dry_run else api_factory()  # (no token: refused before anything is staged)
    folder, temporary = _prepare_dir(work_dir)
    try:
        files = _stage_into(dd, m, folder, temporary, repo_id, license, shard_limit, reg.path(m))
        tag = f"v{m.version}"
        message = f"swcdata: {m.ref} ({m.content_hash[:12]})"
        description = (f"Registry version {m.ref}, content hash {m.content_hash}"
                       + (f", parent {m.parent}" if m.parent else "") + f". Tagged {tag}.")
        parts = plan_commits(files, commit_limit)
        messages = [message] if len(parts) == 1 else [
            *(f"{message}: data part {i} of {len(parts) - 1}" for i in range(1, len(parts))), message]
        common = {"repo_id": repo_id, "repo_type": REPO_TYPE}
        ops = [HubOperation(method="create_repo", kwargs={**common, "private": private, "exist_ok": True}),
               HubOperation(method="list_repo_tree", kwargs={**common, "recursive": True}),
               *(HubOperation(method="create_commit", kwargs={
                   **common, "commit_message": msg, "commit_description": description, "add": part,
                   **({"delete": f"the files under {', '.join(_OWNED)} that are not added"} if k == len(parts) - 1
                      else {})}) for k, (msg, part) in enumerate(zip(messages, parts, strict=True))),
               HubOperation(method="create_tag", kwargs={**common, "tag": tag, "tag_message": message,
                                                         "revision": "<commit oid of the last create_commit>"})]
        shards = Counter(f.path.split("/")[1].rsplit("-", 3)[0] for f in files if f.path.startswith("data/"))
        report = PushReport(ref=m.ref, content_hash=m.content_hash, repo_id=repo_id, private=private, tag=tag,
                            dry_run=dry_run, staging_dir=str(folder), files=files,
                            records={s: c.records for s, c in m.counts.items()},
                            shards={s: shards[s] for s in m.counts}, bytes=sum(f.bytes for f in files),
                            max_shard_size=shard_limit, max_commit_size=commit_limit,
                            content_defined_chunking=content_defined_chunking(),
                            license=card_license(license or m.license), operations=ops)
        if api is None:
            return report
        with _hub_output():
            return _send(api, report, folder, parts, messages, description, temporary)
    finally:
        if temporary and not dry_run:
            shutil.rmtree(folder, ignore_errors=True)


def _send(api: Any, report: PushReport, folder: Path, parts: list[list[str]], messages: list[str],
          description: str, temporary: bool) -> PushReport:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import HfHubHTTPError

    repo_id = report.repo_id
    common = {"repo_id": repo_id, "repo_type": REPO_TYPE}
    ops = list(report.operations)
    repo_url = _call("create_repo", api.create_repo, **ops[0].kwargs)
    url = str(repo_url) if repo_url is not None else None
    # A version tag is never moved: when it exists, it must hold this very version, and then nothing is sent.
    held = _call("repo_info", _existing_tag, api=api, repo_id=repo_id, tag=report.tag, manifest=folder / MANIFEST_PATH)
    if held is not None:
        return report.model_copy(update={
            "operations": ops[:1], "commit_oid": held, "tag_existed": True, "repo_url": url,
            "staging_dir": None if temporary else report.staging_dir})
    staged = {f.path for f in report.files}
    remote = _call("list_repo_tree", _remote_files, api=api, repo_id=repo_id)
    stale = sorted(p for p in remote if p.startswith(_OWNED) and p not in staged)
    commits: list[str] = []
    commit_url = None
    for k, (part, msg) in enumerate(zip(parts, messages, strict=True)):
        operations: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder / p)) for p in part]
        if k == len(parts) - 1:
            operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
            ops[2 + k] = HubOperation(method="create_commit", kwargs={**ops[2 + k].kwargs, "delete": stale})
        commit = _call("create_commit", api.create_commit, **common, operations=operations, commit_message=msg,
                       commit_description=description)
        oid = getattr(commit, "oid", None)
        if not oid:
            raise HubError(f"push failed at create_commit: the Hub returned no commit id for {repo_id}")
        commits.append(oid)
        commit_url = getattr(commit, "commit_url", None)
    tag_kwargs = {**ops[-1].kwargs, "revision": commits[-1]}
    tag_existed = False
    try:
        api.create_tag(**tag_kwargs)
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status != 409:
            raise _hub_error("push failed at create_tag", e, repo_id) from None
        # Tagged meanwhile (another push of the same version?): fine when the tag holds this version.
        held = _call("create_tag", _existing_tag, api=api, repo_id=repo_id, tag=report.tag,
                     manifest=folder / MANIFEST_PATH)
        if held is None:
            raise _hub_error("push failed at create_tag", e, repo_id) from None
        tag_existed = True
        tag_kwargs["revision"] = held
    except Exception as e:
        raise _hub_error("push failed at create_tag", e, repo_id) from None
    ops[-1] = HubOperation(method="create_tag", kwargs=tag_kwargs)
    return report.model_copy(update={
        "operations": ops, "commit_oid": commits[-1], "commits": commits, "commit_url": commit_url,
        "deleted": stale, "tag_existed": tag_existed, "repo_url": url,
        "staging_dir": None if temporary else report.staging_dir})


def _existing_tag(api: Any, repo_id: str, tag: str, manifest: Path) -> str | None:
    """None when the repo has no such tag; its commit when it holds this very version (this manifest); HubError
    when it holds another."""
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        held = _tag_holds(api, repo_id, tag, manifest)
    except RevisionNotFoundError:
        return None
    if held is None:
        m = Manifest.model_validate_json(manifest.read_bytes())
        raise HubError(f"push refused: the tag {tag} already exists on {repo_id} and holds another version than "
                       f"{m.ref} ({m.content_hash[:12]}); nothing was sent",
                       hint="a version tag is never moved: push to another repo, or delete the tag on the Hub if that "
                            "push was a mistake")
    return held


# ---- pulling ----------------------------------------------------------------------------------


def parse_hub_ref(spec: str) -> tuple[str, str | None]:
    """(repo id, revision or None) from `OWNER/NAME[@vN|@revision]`, also written `hf://[datasets/]OWNER/NAME...`."""
    text = spec.strip()
    text = text[len("hf://"):] if text.startswith("hf://") else text
    text = text[len("datasets/"):] if text.startswith("datasets/") else text
    repo_id, at, rev = text.partition("@")
    if not _REPO_ID_RE.match(repo_id) or (at and not rev.strip()) or any(c.isspace() for c in rev):
        raise InputError(f"invalid Hub dataset {spec!r}",
                         hint="write OWNER/NAME, OWNER/NAME@vN (a version's tag) or OWNER/NAME@<branch or commit>")
    return repo_id, rev or None


def _read_shards(root: Path, m: Manifest, where: str) -> dict[str, pa.Table]:
    """Each split of the manifest from its complete set of shards `data/<split>-<i>-of-<n>.parquet`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables: dict[str, pa.Table] = {}
    problems: list[str] = []
    for split in m.counts:
        pattern = re.compile(rf"^{re.escape(split)}-(\d{{5}})-of-(\d{{5}})\.parquet$")
        found = {(int(x.group(2)), int(x.group(1))): p for p in (root / "data").glob(f"{split}-*.parquet")
                 if (x := pattern.match(p.name))}
        counts = sorted({n for n, _ in found})
        if not counts:
            problems.append(f"{shard_path(split)} (or any shard of {split}) is missing")
            continue
        if len(counts) > 1:
            problems.append(f"the shards of {split} belong to different sets ({', '.join(f'of {n}' for n in counts)})")
            continue
        n = counts[0]
        missing = [shard_path(split, i, n) for i in range(n) if (n, i) not in found]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            problems.append(f"{missing[0]} is missing{more}")
            continue
        try:
            tables[split] = pa.concat_tables([pq.read_table(found[(n, i)]) for i in range(n)])
        except (pa.ArrowException, OSError) as e:
            problems.append(f"the shards of {split} are not readable Parquet of one schema ({e})")
    if problems:
        raise DataError(f"{where}: the data on the Hub does not match its manifest: {problems[0]}"
                        + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")
                        + "; refused", hint="the copy on the Hub is incomplete or altered: push the version again")
    return tables


def pull(spec: str, *, home: Path | str | None = None, api_factory: Callable[[], Any] | None = None) -> PullReport:
    """Download a version that `push` published (`OWNER/NAME`, `@vN`, or `@<branch or commit>`) and register it
    in the registry `home` as the same `name@vN` with the same manifest. Refused, with nothing written, when the
    data does not match the manifest (content hash, counts, each file's sha256, the manifest's digest) or the
    registry holds another version under that number. A version already here with the same content hash is
    checked and kept: only its manifest is downloaded."""
    repo_id, rev = parse_hub_ref(spec)
    revision = rev or "main"
    where = f"hf://{repo_id}@{revision}"
    reg = Registry(home)
    api = (api_factory or (lambda: make_api(write=False)))()
    try:
        reg.home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {reg.home}: {e.strerror}",
                         hint="point --home / SWCDATA_HOME at a writable folder") from None
    with _hub_output(), tempfile.TemporaryDirectory(prefix=".pull-", dir=reg.home) as tmp:
        root = Path(tmp)

        def get(what: str, fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except SwcdataError:
                raise
            except Exception as e:
                from huggingface_hub.errors import RemoteEntryNotFoundError

                if isinstance(e, RemoteEntryNotFoundError) and what == "the manifest":
                    raise HubError(f"pull failed: {where} has no {MANIFEST_PATH}, so it is not a version pushed by "
                                   "swcdata", hint="pull a repo that `swcdata push` wrote, at a version tag (@vN)"
                                   ) from None
                raise _hub_error(f"pull failed at {what}", e, repo_id) from None

        info = get("the revision", lambda: api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision))
        commit = str(info.sha)
        origin = where if revision == commit else f"{where} (commit {commit[:12]})"
        cache = str(root / ".hf-cache")  # (huggingface_hub's own notes stay in the temporary folder too)
        path = get("the manifest", lambda: api.hf_hub_download(repo_id, MANIFEST_PATH, repo_type=REPO_TYPE,
                                                               revision=commit, local_dir=tmp, cache_dir=cache))
        try:
            m = Manifest.model_validate_json(Path(path).read_bytes())
        except ValidationError as e:
            first = validation_problems(e, whole="(the whole file)")[0]
            raise DataError(f"{origin}: {MANIFEST_PATH} is not a valid manifest ({e.error_count()} problem(s); first: "
                            f"{first})") from None
        tag = re.fullmatch(r"[vV](\d+)", rev or "")
        if tag and int(tag.group(1)) != m.version:
            raise DataError(f"{origin} holds the manifest of {m.ref}, not of v{tag.group(1)}: the tag does not name "
                            "the version it holds; refused", hint="push the version again, or pull by commit")
        base = {"repo_id": repo_id, "revision": revision, "commit": commit, "ref": m.ref,
                "content_hash": m.content_hash, "home": str(reg.home),
                "records": {s: c.records for s, c in m.counts.items()}}
        try:
            here = reg.resolve(m.ref)
        except InputError:
            here = None
        if here is not None:
            if here.content_hash != m.content_hash:
                raise DataError(f"{m.ref} is already in the registry at {reg.home} with content hash "
                                f"{here.content_hash[:12]}, and {origin} holds {m.content_hash[:12]} under the same "
                                "number: refused (a version number names one content)",
                                hint="pull into another registry (--home or SWCDATA_HOME)")
            folder = reg.path(here)
            bad, _extra, _n = reg._check_files(here, folder)
            problems = reg._manifest_problems(here, folder) + [f"{b.path} differs from the manifest" for b in bad]
            if problems:
                raise DataError(f"{here.ref} is in the registry but was modified after publishing ({problems[0]})",
                                hint=f"run `swcdata verify {here.ref}`")
            return PullReport(**base, registered=False, path=str(folder), downloaded=[],
                              warnings=[*reg.warnings, *_parent_warning(reg, here)])
        get("the data", lambda: api.snapshot_download(repo_id, repo_type=REPO_TYPE, revision=commit, local_dir=tmp,
                                                      cache_dir=cache, allow_patterns=["data/*", f"{FILES_DIR}/*"]))
        tables = _read_shards(root, m, origin)
        files = {rel: root / FILES_DIR / rel for rel in m.files if not rel.endswith(".arrow")}
        missing = [f"{FILES_DIR}/{rel}" for rel, p in files.items() if not p.is_file()]
        if missing:
            raise DataError(f"{origin}: the data on the Hub does not match its manifest: {missing[0]} is missing; "
                            "refused", hint="the copy on the Hub is incomplete: push the version again")
        shards = (p.relative_to(root).as_posix() for p in (root / "data").glob("*.parquet"))
        downloaded = sorted([MANIFEST_PATH, *shards, *(f"{FILES_DIR}/{rel}" for rel in files)])
        staged = [StagedFile(path=p, bytes=(root / p).stat().st_size, sha256=sha256_file(root / p))
                  for p in downloaded]
        registered, created = reg.register(m, tables, files, origin)
        return PullReport(**base, registered=created, path=str(reg.path(registered)), downloaded=staged,
                          warnings=[*reg.warnings, *_parent_warning(reg, registered)])


def _parent_warning(reg: Registry, m: Manifest) -> list[str]:
    if m.parent is None:
        return []
    try:
        reg.resolve(m.parent)
    except (InputError, DataError):
        return [f"the parent {m.parent} is not in this registry: the chain to it is not checked (pull it too)"]
    return []
