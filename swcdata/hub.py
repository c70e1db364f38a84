"""`push`: publish a registry version on the Hugging Face Hub as parquet shards + a dataset card, tagged `vN`.

The staging folder holds exactly what is uploaded: `data/<split>-00000-of-00001.parquet` per split and a
`README.md` whose YAML front matter declares the `configs` (one data_files entry per split) and the split
sizes, and whose body gives the counts, the lineage and the contamination audit. Every call to the Hub goes
through one factory, `make_api`, that tests replace. The token is found by huggingface_hub itself
(`HF_TOKEN` or `hf auth login`); swcdata never reads, prints or stores it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
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


def _front_matter(m: Manifest, split_bytes: Mapping[str, int], download_size: int) -> dict[str, Any]:
    fm: dict[str, Any] = {
        "license": "apache-2.0",
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


def _kv_table(d: Mapping[str, Any]) -> list[str]:
    flat = _flatten(d)
    if not flat:
        return ["(none)"]
    return ["| key | value |", "| --- | --- |", *(f"| `{k}` | {_md_cell(v)} |" for k, v in flat.items())]


def _contamination(m: Manifest) -> list[tuple[str, Any]]:
    """Every contamination/audit summary the build recorded: in the ledger, in `removed`, or as a step."""
    found: list[tuple[str, Any]] = []
    for where, d in (("ledger", m.ledger), ("removed", m.removed)):
        for k, v in d.items():
            if "contamination" in k.lower() or k.lower() in ("audit", "leakage", "leaks"):
                found.append((f"{where}.{k}", v))
    for s in m.steps:
        if "contamination" in s.name.lower() or "audit" in s.name.lower():
            found.append((f"step {s.name}", s.summary or s.config))
    return found


def render_card(m: Manifest, split_bytes: Mapping[str, int], download_size: int, repo_id: str) -> str:
    """README.md: YAML front matter (configs, split sizes, tags) and a body with counts, lineage, audit."""
    import yaml

    fm = yaml.safe_dump(_front_matter(m, split_bytes, download_size), sort_keys=False, allow_unicode=True,
                        width=1000)
    cats = sorted({c for sc in m.counts.values() for c in sc.by_category})
    splits = list(m.counts)
    lines = [
        "---", fm.rstrip("\n"), "---", "",
        f"# {m.name} v{m.version}", "", DESCRIPTION, "",
        f"Published by swcdata {m.tool_version} from the registry version `{m.ref}` "
        f"(content hash `{m.content_hash}`).", "",
        "```python", "from datasets import load_dataset", "",
        f'ds = load_dataset("{repo_id}", revision="v{m.version}")', "```", "",
        "## Counts", "",
        "| category | " + " | ".join(splits) + " | total |",
        "| --- | " + " | ".join("---:" for _ in splits) + " | ---: |",
    ]
    for c in cats:
        per = [m.counts[s].by_category.get(c, 0) for s in splits]
        lines.append(f"| {c} | " + " | ".join(f"{n:,}" for n in per) + f" | {sum(per):,} |")
    totals = [m.counts[s].records for s in splits]
    lines += ["| **all** | " + " | ".join(f"**{n:,}**" for n in totals) + f" | **{sum(totals):,}** |", ""]
    lines += ["## Ledger", "", *_kv_table(m.ledger), ""]
    if m.removed:
        lines += ["## Removed", "", *_kv_table(m.removed), ""]
    contamination = _contamination(m)
    lines += ["## Contamination audit between splits", ""]
    if contamination:
        for where, v in contamination:
            lines += [f"From `{where}`:", "", *(_kv_table(v) if isinstance(v, Mapping) else [_md_cell(v)]), ""]
    else:
        lines += ["The manifest of this version records no contamination audit.", ""]
    lines += [
        "## Lineage", "",
        f"- version: `{m.ref}`",
        f"- content hash (sha256 over every row): `{m.content_hash}`",
        f"- parent: `{m.parent}`" if m.parent else "- parent: none",
        f"- created: {m.created_at}",
        f"- seed: {m.seed}" if m.seed is not None else "- seed: none",
        "",
    ]
    if m.steps:
        lines += ["### Steps", ""]
        for i, s in enumerate(m.steps, 1):
            lines += [f"{i}. **{s.name}**", "", "   ```json",
                      *("   " + ln for ln in json.dumps(s.config, indent=2, sort_keys=True, default=str).splitlines()),
                      "   ```", ""]
            if s.summary:
                lines += ["   summary: " + _md_cell(s.summary), ""]
    if m.inputs:
        lines += ["### Input files", "", "| path | bytes | sha256 |", "| --- | ---: | --- |",
                  *(f"| {_md_cell(i.path)} | {i.bytes:,} | `{i.sha256}` |" for i in m.inputs), ""]
    lines += [
        "## Fields", "",
        "| field | meaning |", "| --- | --- |",
        "| `id` | stable id: xxh3-64 of the normalised instruction and response |",
        "| `instruction` | the prompt, usually with Solidity code |",
        "| `response` | the reference answer |",
        "| `category` | SWC registry id, e.g. `SWC-107` |",
        "| `source` | the input file and 1-based line the record came from |",
        "| `metadata` | JSON text of free-form extra fields, or null |",
        "| `parent_id`, `transform`, `template` | lineage of augmented records (null for originals) |",
        "",
    ]
    return "\n".join(lines)


# ---- staging and pushing ----------------------------------------------------------------------


def stage(dd: datasets.DatasetDict | Mapping[str, Any], m: Manifest, folder: Path, repo_id: str) -> list[StagedFile]:
    """Write the parquet shards and README.md into `folder`; return the files with their sizes and hashes."""
    split_bytes: dict[str, int] = {}
    paths = []
    for split in m.counts:
        table = _as_arrow(dd[split])
        split_bytes[split] = int(table.nbytes)
        paths.append(write_parquet(table, folder / shard_path(split)))
    download = sum(p.stat().st_size for p in paths)
    card = folder / "README.md"
    card.write_text(render_card(m, split_bytes, download, repo_id), encoding="utf-8")
    out = []
    for p in sorted([*paths, card]):
        data = p.read_bytes()
        out.append(StagedFile(path=p.relative_to(folder).as_posix(), bytes=len(data),
                              sha256=hashlib.sha256(data).hexdigest()))
    return out


def _prepare_dir(work_dir: Path | None) -> tuple[Path, bool]:
    """(folder, is_temporary). A given folder must be empty or new: everything in it gets uploaded."""
    if work_dir is None:
        return Path(tempfile.mkdtemp(prefix="swcdata-push-")), True
    if work_dir.exists() and (not work_dir.is_dir() or any(work_dir.iterdir())):
        raise InputError(f"{work_dir} exists and is not an empty folder",
                         hint="the whole staging folder is uploaded: give a new or empty --out folder")
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {work_dir}: {e.strerror}") from None
    return work_dir, False


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
         home: Path | str | None = None) -> PushReport:
    """Push a registry version to the Hub dataset repo `repo_id` in one commit, then tag it `v<N>`.

    With `dry_run` the staging folder is written (to `work_dir`, else a temporary folder that is kept)
    and the operations are listed, but nothing is sent and no token is needed."""
    if not _REPO_ID_RE.match(repo_id):
        raise InputError(f"invalid Hub repo id {repo_id!r}", hint="write OWNER/NAME, e.g. my-org/swc-vulns")
    dd, m = Registry(home).load(ref)
    api = None if dry_run else api_factory()  # (no token: refused before anything is staged)
    folder, temporary = _prepare_dir(work_dir)
    try:
        files = stage(dd, m, folder, repo_id)
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
                            records={s: c.records for s, c in m.counts.items()}, operations=ops)
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
