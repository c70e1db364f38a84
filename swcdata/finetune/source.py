"""Where the training data comes from: a registry version `NAME@vN`, or a local folder.

`load_dataset(spec)` returns the `DatasetDict` and the `DatasetRef` a run records. A registry
version is loaded (and hash-verified) through `swcdata.registry.store.Registry().load`; a folder may
hold a `DatasetDict.save_to_disk` or `<split>.jsonl` files (the output of `swcdata split`), and
gets the registry's content hash computed on the spot, with version `local`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from swcdata.core.errors import InputError
from swcdata.finetune.runs import DatasetRef

if TYPE_CHECKING:
    import datasets


def load_dataset(spec: str, home: Path | None = None) -> tuple[datasets.DatasetDict, DatasetRef]:
    path = Path(spec)
    if path.is_dir():
        return load_folder(path)
    if "@" not in spec and "/" in spec:  # (a registry name never holds a "/")
        from swcdata.core.errors import InputError

        raise InputError(f"no such folder: {spec}", hint="give a folder of <split>.jsonl files or a saved "
                         "DatasetDict, or a registry version NAME@vN")
    from swcdata.registry.store import Registry

    dd, manifest = Registry(home).load(spec)
    return dd, DatasetRef(name=manifest.name, version=manifest.version, content_hash=manifest.content_hash)


def load_folder(path: Path) -> tuple[datasets.DatasetDict, DatasetRef]:
    import datasets as hfd

    from swcdata.registry.content import content_hash

    if (path / "dataset_dict.json").is_file():
        dd = hfd.load_from_disk(str(path), keep_in_memory=True)
        if not isinstance(dd, hfd.DatasetDict):
            raise InputError(f"{path} holds a single Dataset, not a DatasetDict with train/validation splits")
    else:
        from swcdata.steps.split_dir import read_split_dir

        dd = hfd.DatasetDict({name: hfd.Dataset(table) for name, table in read_split_dir(path).items()})
    return dd, DatasetRef(name=path.resolve().name, version="local", content_hash=content_hash(dd))
