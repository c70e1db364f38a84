"""`push`: publish a registry version on the Hugging Face Hub as parquet shards + a dataset card, tagged `vN`.

The staging folder holds exactly what is uploaded: `data/<split>-00000-of-00001.parquet` per split and a
`README.md` whose YAML front matter declares the `configs` (one data_files entry per split) and the split
sizes and the license, and whose body reads from top to bottom: what the data is, splits and categories,
fields, lineage, the ledger, the removed records, the contamination audit and the license. Every call to
the Hub goes through one factory, `make_api`, that tests replace. The token is found by huggingface_hub itself
(`HF_TOKEN` or `hf auth login`); swcdata never reads, prints or stores it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from swcdata.errors import InputError, SwcdataError
from swcdata.registry import Manifest, Registry, _as_arrow, _features, _flatten, write_parquet

if TYPE_CHECKING:
    import datasets
    from huggingface_hub import HfApi

REPO_TYPE = "dataset"
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
DESCRIPTION = "Instruction/response pairs about vulnerabilities in Solidity smart contracts (SWC registry classes)."


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

    method: str = Field(description="HfApi method: create_repo, upload_folder or create_tag.")
    kwargs: dict[str, Any]


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
    license: str = Field("other", description="The license id of the card's front matter ('other' where the "
                         "license is unknown).")
    operations: list[HubOperation]
    commit_oid: str | None = None
    commit_url: str | None = None
    repo_url: str | None = None


def make_api() -> HfApi:
    """The one door to the Hub. huggingface_hub finds the token (HF_TOKEN or `hf auth login`)."""
    from huggingface_hub import HfApi, get_token

    try:
        found = get_token() is not None
    except Exception:  # e.g. a failed OIDC exchange: huggingface_hub will say more when used
        found = True
    if not found:
        raise InputError("no Hugging Face token found: pushing needs one with write access",
                         hint="export HF_TOKEN=... or run `hf auth login` (or use --dry-run to stage only)")
    return HfApi()


# ---- the dataset card -------------------------------------------------------------------------


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
              (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T"


def shard_path(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


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
        features: list[Any] | None = _features()._to_yaml_list()
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
    flat = _flatten(d)
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
    lines += [f"| `{k}` | {_num(v)} |" for k, v in _flatten(other).items()]
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
    from swcdata.audit import AuditSummary

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


# ---- staging and pushing ----------------------------------------------------------------------


def stage(dd: datasets.DatasetDict | Mapping[str, Any], m: Manifest, folder: Path, repo_id: str,
          license: str | None = None) -> list[StagedFile]:
    """Write the parquet shards and README.md into `folder`; return the files with their sizes and hashes.
    `license` overrides the manifest's in the card."""
    split_bytes: dict[str, int] = {}
    paths = []
    for split in m.counts:
        table = _as_arrow(dd[split])
        split_bytes[split] = int(table.nbytes)
        paths.append(write_parquet(table, folder / shard_path(split)))
    download = sum(p.stat().st_size for p in paths)
    card = folder / "README.md"
    card.write_text(render_card(m, split_bytes, download, repo_id, license), encoding="utf-8")
    out = []
    for p in sorted([*paths, card]):
        data = p.read_bytes()
        out.append(StagedFile(path=p.relative_to(folder).as_posix(), bytes=len(data),
                              sha256=hashlib.sha256(data).hexdigest()))
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
                repo_id: str, license: str | None) -> list[StagedFile]:
    """`stage` into `folder`: a given --out folder is made all at once (every file or none; an interrupted
    run leaves no half-staged folder, so that a rerun with the same --out works)."""
    if temporary:
        return stage(dd, m, folder, repo_id, license)
    from swcdata.io import atomic_folder

    with atomic_folder(folder) as staging:
        return stage(dd, m, staging, repo_id, license)


def _call(step: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except SwcdataError:
        raise
    except Exception as e:  # HTTP errors, network errors, validation errors of huggingface_hub
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        hint = "check the repo id, your write access (HF_TOKEN / `hf auth login`) and the network"
        if step == "create_tag" and ("409" in msg or "already exists" in msg.lower()):
            hint = (f"the tag {kwargs.get('tag')} already exists on {kwargs.get('repo_id')}: this version was "
                    "pushed before (the data commit was a no-op if nothing changed)")
        raise HubError(f"push failed at {step}: {type(e).__name__}: {msg}", hint=hint) from None


def push(ref: str, repo_id: str, *, private: bool = False, dry_run: bool = False,
         api_factory: Callable[[], Any] = make_api, work_dir: Path | None = None,
         home: Path | str | None = None, license: str | None = None) -> PushReport:
    """Push a registry version to the Hub dataset repo `repo_id` in one commit, then tag it `v<N>`.

    With `dry_run` the staging folder is written (to `work_dir`, else a temporary folder that is kept)
    and the operations are listed, but nothing is sent and no token is needed. `license` (an SPDX-like id)
    overrides the license the version's manifest records, in the card only."""
    from swcdata.build import LICENSE_ID

    if not _REPO_ID_RE.match(repo_id):
        raise InputError(f"invalid Hub repo id {repo_id!r}", hint="write OWNER/NAME, e.g. my-org/swc-vulns")
    if license is not None and not re.match(LICENSE_ID, license):
        raise InputError(f"invalid license id {license!r}",
                         hint="give an SPDX-like id as the Hub lists it, e.g. mit, apache-2.0, cc-by-4.0 (or unknown)")
    dd, m = Registry(home).load(ref)
    api = None if dry_run else api_factory()  # (no token: refused before anything is staged)
    folder, temporary = _prepare_dir(work_dir)
    try:
        files = _stage_into(dd, m, folder, temporary, repo_id, license)
        tag = f"v{m.version}"
        message = f"swcdata: {m.ref} ({m.content_hash[:12]})"
        description = (f"Registry version {m.ref}, content hash {m.content_hash}"
                       + (f", parent {m.parent}" if m.parent else "") + f". Tagged {tag}.")
        ops = [
            HubOperation(method="create_repo", kwargs={"repo_id": repo_id, "repo_type": REPO_TYPE,
                                                       "private": private, "exist_ok": True}),
            HubOperation(method="upload_folder", kwargs={
                "repo_id": repo_id, "repo_type": REPO_TYPE, "folder_path": str(folder),
                "commit_message": message, "commit_description": description,
                "delete_patterns": ["data/*"]}),
            HubOperation(method="create_tag", kwargs={"repo_id": repo_id, "repo_type": REPO_TYPE, "tag": tag,
                                                      "tag_message": message,
                                                      "revision": "<commit oid of upload_folder>"}),
        ]
        report = PushReport(ref=m.ref, content_hash=m.content_hash, repo_id=repo_id, private=private, tag=tag,
                            dry_run=dry_run, staging_dir=str(folder), files=files,
                            records={s: c.records for s, c in m.counts.items()},
                            license=card_license(license or m.license), operations=ops)
        if api is None:
            return report
        repo_url = _call("create_repo", api.create_repo, **ops[0].kwargs)
        commit = _call("upload_folder", api.upload_folder, **ops[1].kwargs)
        oid = getattr(commit, "oid", None)
        if not oid:
            raise HubError(f"push failed at upload_folder: the Hub returned no commit id for {repo_id}")
        tag_kwargs = {**ops[2].kwargs, "revision": oid}
        _call("create_tag", api.create_tag, **tag_kwargs)
        ops[2] = HubOperation(method="create_tag", kwargs=tag_kwargs)
        return report.model_copy(update={
            "operations": ops, "commit_oid": oid, "commit_url": getattr(commit, "commit_url", None),
            "repo_url": str(repo_url) if repo_url is not None else None,
            "staging_dir": None if temporary else str(folder)})
    finally:
        if temporary and not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
