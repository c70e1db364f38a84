"""Loss-free JSONL reading: path resolution, line streaming with provenance, line decoding.

Every line of every input is accounted for: a blank line is counted as blank, any other line is
either decoded into a JSON object or returned with the precise reason it could not be (invalid
UTF-8 with the byte offset, invalid JSON with line and column, not an object). Files are read as
bytes in a streaming fashion (one line in memory at a time, whatever its length); a UTF-8 BOM is
dropped, CRLF and a missing final newline are handled.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import io
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from swcdata.core.errors import InputError

_GLOB_CHARS = re.compile(r"[*?\[]")
BOM = b"\xef\xbb\xbf"


def resolve_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, directories (recursively, `*.jsonl`/`*.ndjson`) and globs into a sorted-per-argument,
    de-duplicated list of readable files. Raises `InputError` naming the first argument that gives nothing."""
    if not paths:
        raise InputError("no input paths given", hint="pass one or more JSONL files, directories or globs")
    out: list[Path] = []
    seen: set[Path] = set()
    for arg in paths:
        text = os.fspath(arg)
        if not text.strip():  # (Path("") is the current folder)
            raise InputError("an empty input path was given", hint="check the shell variable or glob that made it")
        p = Path(text)
        if p.is_dir():
            found = sorted(
                q for q in p.rglob("*")
                if q.is_file() and q.suffix in (".jsonl", ".ndjson") and not q.name.startswith(".")
            )
            if not found:
                raise InputError(f"directory contains no .jsonl files: {text}",
                                 hint="point at the JSONL files themselves or at a folder holding *.jsonl")
        elif p.is_file():
            found = [p]
        elif _GLOB_CHARS.search(text):
            found = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not found:
                raise InputError(f"no file matches the pattern: {text}")
        elif p.exists():
            raise InputError(f"not a regular file: {text}")
        else:
            raise InputError(f"no such file or directory: {text}")
        for q in found:
            if not os.access(q, os.R_OK):
                raise InputError(f"cannot read file (permission denied): {q}")
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


@dataclass(slots=True)
class FileStats:
    """Byte-level facts about one input file, filled in while it is streamed."""

    path: str
    sha256: str = ""
    bytes: int = 0
    lines: int = 0
    blank_lines: int = 0
    had_bom: bool = False
    crlf_lines: int = 0
    final_newline: bool = True


@dataclass(slots=True)
class LineChunk:
    """A run of consecutive non-blank lines of one file: (1-based line number, raw bytes without EOL)."""

    file: str
    lines: list[tuple[int, bytes]] = field(default_factory=list)


def _unwritable(path: Path, *, folder: bool = False) -> str | None:
    """Why `path` cannot be written as a file (or made as a folder, ``folder=True``), judged before
    anything is written; None when nothing stands in the way that can be seen in advance."""
    if path.as_posix() in ("-", "/dev/stdout") or path.as_posix().startswith(("/dev/", "/proc/")):
        return None
    if (home := inside_registry(path)) is not None:
        return f"it is inside the registry {home} (published versions are never written; write outside it)"
    if path.is_dir() and not folder:
        return "it is a folder"
    if path.exists() and folder and not path.is_dir():
        return "it is a file, not a folder"
    anc = path.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        return f"{anc} is a file, not a folder"
    if not os.access(anc, os.W_OK | os.X_OK):
        return f"permission denied in {anc}"
    return None


def make_dir(path: Path) -> Path:
    """``mkdir -p`` with a one-line InputError (exit 2) instead of an OSError."""
    why = _unwritable(path, folder=True)
    try:
        if why is None:
            path.mkdir(parents=True, exist_ok=True)
            return path
    except OSError as e:
        why = e.strerror
    raise InputError(f"cannot write to {path}: {why}")


@contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """Open `path` for writing through a temporary file beside it, which replaces `path` only when the
    block ends without an exception: an interrupted or failed run leaves no half-written output, and
    a file that was there stays as it was. A path under /dev or /proc (``/dev/stdout``, even when the
    shell sends it to a file) or that is not a regular file (a FIFO) is written directly; a symbolic
    link's target is replaced, not the link. ``-`` and ``/dev/stdout`` write to this process's stdout
    itself (opening /dev/stdout again would start a second write position in the same file)."""
    with _deferred_output(path) as (f, commit):
        yield f
        commit()


@contextmanager
def atomic_outputs(paths: Sequence[Path]) -> Iterator[list[BinaryIO]]:
    """:func:`atomic_output` for several files that belong together (the splits of one folder, a
    command's records and report): each is written to its temporary file, and they are moved in place
    together only when the block ends without an exception. An interrupted run leaves every file as it
    was, never a new train beside an old test. Folders made for them are removed again then (when
    still empty), so an interrupted export to a new folder leaves no folder."""
    with ExitStack() as stack:
        opened = [stack.enter_context(_deferred_output(path)) for path in paths]
        yield [f for f, _ in opened]
        for f, _ in opened:
            f.flush()  # (every byte written before any file moves: a full disk fails here, moving none)
        with _signals_deferred():  # (Ctrl-C or SIGTERM now would leave some moved, some not)
            for _, commit in opened:
                commit()


# ---- temporary files and folders ----------------------------------------------------------------

_WRITE_ERRORS = {
    errno.ENOSPC: ("no space left on device", "free some space on that filesystem, or write the output elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free some space within your quota, or write the output elsewhere"),
    errno.EFBIG: ("file size limit exceeded", "raise the limit on the size of files this process may write "
                  "(ulimit -f), or write the output to a filesystem that holds files this large"),
}


def temp_path(target: Path) -> Path:
    """The temporary sibling through which this process writes `target`: ``.<name>.<pid>.tmp``."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs (on this machine, in this pid namespace). A pid taken by
    a process of another user counts as alive."""
    if pid <= 0:  # (os.kill(0, ...) would mean the process group)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (EPERM)
        return True
    return True


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temporary files and folders beside `target` (``.<name>.<pid>.tmp``, see temp_path)
    that a process which died before it could clean up (``kill -9``, a power cut) left behind: only
    those whose pid runs no more, so another run writing the same output now keeps its own. Returns
    what was removed. Nothing else in the folder is looked at twice."""
    prefix, removed = f".{target.name}.", []
    try:
        names = [e.name for e in os.scandir(target.parent) if e.name.startswith(prefix) and e.name.endswith(".tmp")]
    except OSError:  # (no folder yet, or one we cannot list: nothing to clean)
        return removed
    for name in names:
        pid = name[len(prefix):-len(".tmp")]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        stale = target.parent / name
        try:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        except OSError:  # (gone already, or not ours to remove: left alone)
            continue
        removed.append(stale)
    return removed


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it made, the deepest first (see _remove_made)."""
    made = []
    p = folder
    while not os.path.lexists(p) and p != p.parent:
        made.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return made


def _remove_made(made: list[Path]) -> None:
    """Remove the folders _make_parents made, as long as they are empty."""
    for d in made:
        try:
            d.rmdir()
        except OSError:
            return


class _TempRaw(io.FileIO):
    """The raw file under an output's temporary file: a failed write (a full disk) names the file
    (OSError.filename), so that it is told apart from an error of an input and reported with the
    output's name. (Called once per buffer flush, not per write.)"""

    def write(self, b: Any) -> int | None:  # type: ignore[override]
        try:
            return super().write(b)
        except OSError as e:
            if e.filename is None:
                e.filename = os.fspath(self.name)
            raise


def _write_error(path: Path, e: OSError, *, replaced: bool = True) -> InputError:
    """The one-line error for a write to `path` that failed (exit 2: the environment, not the data);
    `replaced`: it was written through a temporary file, so `path` is untouched."""
    why, fix = _WRITE_ERRORS.get(e.errno or 0, ((e.strerror or str(e)).lower(), "check the output's folder"))
    untouched = f"; nothing was written: {path} is as it was before this run" if replaced else ""
    return InputError(f"cannot write {path}: {why} (errno {errno.errorcode.get(e.errno or 0, e.errno)})",
                      hint=fix + untouched)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive in the block take effect when it ends (the main thread only:
    no other thread can set a handler)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(s)
        if old is not None:  # (None: a handler not set from Python, which cannot be restored)
            saved[s] = old
            signal.signal(s, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for s, old in saved.items():
            signal.signal(s, old)
        for s in dict.fromkeys(caught):
            signal.raise_signal(s)


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Make the folder `path` with everything in it at once: the block fills a temporary sibling
    folder (``.<name>.<pid>.tmp``, yielded), renamed to `path` when the block ends without an
    exception and removed otherwise, so an interrupted run leaves no half-filled folder (and a rerun
    finds nothing in its way). `path` must be new or an empty folder, which the new one replaces.
    Temporary folders of runs that died (their pid is gone) are removed first."""
    why = _unwritable(path, folder=True)
    if why is None and path.is_dir() and any(path.iterdir()):
        why = "it is a folder that is not empty"
    if why is not None:
        raise InputError(f"cannot write {path}: {why}")
    remove_stale_temps(path)
    tmp = temp_path(path)
    made: list[Path] = []
    try:
        made = _make_parents(path.parent)
        if tmp.exists():  # (left by an earlier process with this pid)
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as e:
        _remove_made(made)
        raise InputError(f"cannot write {path}: {e.strerror}") from None
    done = False
    try:
        try:
            yield tmp
        except InputError as e:  # (one of its files: named by its final path, not the temporary one)
            if str(tmp) not in e.message:
                raise
            raise InputError(e.message.replace(str(tmp), str(path)), hint=e.hint) from None
        try:
            os.replace(tmp, path)  # (POSIX: a new name, or an empty folder, which it replaces)
        except OSError as e:
            raise InputError(f"cannot write {path}: {e.strerror}",
                             hint="another process wrote into it meanwhile?" if path.is_dir() else None) from None
        done = True
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)
            _remove_made(made)


@contextmanager
def _deferred_output(path: Path) -> Iterator[tuple[BinaryIO, Callable[[], None]]]:
    """The file to write `path` through (see atomic_output) and the call that moves it in place; a
    temporary file is removed if the block ends before that call (also when closing it fails: a full
    disk), with the folders made for it. A write that fails for want of space, quota or file size
    becomes an InputError naming `path`. Temporary files of earlier runs that died beside `path` are
    removed first (see remove_stale_temps)."""
    if path.as_posix() in ("-", "/dev/stdout"):
        sys.stdout.flush()
        yield sys.stdout.buffer, sys.stdout.buffer.flush
        return
    why = _unwritable(path)
    if why is not None:
        raise InputError(f"cannot write {path}: {why}")
    if path.as_posix().startswith(("/dev/", "/proc/")) or (path.exists() and not path.is_file()):
        try:
            with io.BufferedWriter(_TempRaw(os.fspath(path), "w")) as direct:
                yield direct, direct.flush
        except OSError as e:
            if e.filename == os.fspath(path):  # (opening, writing or closing it failed: /dev/full, a FIFO)
                raise _write_error(path, e, replaced=False) from None
            raise
        return
    target = path.resolve() if path.is_symlink() else path
    remove_stale_temps(target)
    tmp = temp_path(target)
    made: list[Path] = []
    try:
        made = _make_parents(target.parent)
        f = io.BufferedWriter(_TempRaw(tmp, "w"), buffer_size=1 << 18)
    except OSError as e:
        _remove_made(made)
        raise InputError(f"cannot write {path}: {e.strerror}") from e
    done = False

    def commit() -> None:
        nonlocal done
        f.close()
        os.replace(tmp, target)
        done = True

    try:
        yield f, commit
    except OSError as e:
        if e.filename == str(tmp):  # (this file's write, or its close, failed)
            raise _write_error(path, e) from None
        raise
    finally:
        if not done:
            with suppress(OSError):  # (closing writes what is buffered: on a full disk that fails again)
                f.close()
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            _remove_made(made)


def check_outputs(inputs: Sequence[Path], outputs: Sequence[tuple[str, Path | None]]) -> None:
    """Refuse (InputError, exit 2) an output file that is one of the inputs, or that another output
    names too: opening it for writing would truncate what it holds, before or while it is read.
    Files are compared by device and inode where they exist (a link or another spelling of the same
    path is the same file), else by resolved path."""

    def key(p: Path) -> tuple[object, ...]:
        try:
            st = p.stat()
            return ("file", st.st_dev, st.st_ino)
        except OSError:
            return ("path", str(p.resolve()))

    ins = {key(p) for p in inputs}
    seen: dict[tuple[object, ...], str] = {}
    for option, path in outputs:
        if path is None:
            continue
        why = _unwritable(path)
        if why is not None:  # (refused before any work, so that no other output is written either)
            raise InputError(f"{option} {path}: cannot write it: {why}")
        k = key(path)
        if k in ins:
            raise InputError(f"{option} {path} is one of the inputs: writing it would destroy them",
                             hint="write the output to another file")
        if k in seen:
            raise InputError(f"{option} and {seen[k]} both write {path}: one would overwrite the other")
        seen[k] = option


def default_registry_home() -> Path | None:
    """The registry folder as `registry.store.registry_home` finds it (`$SWCDATA_HOME`, else `./registry`; the core
    cannot import the registry); None when `$SWCDATA_HOME` cannot be expanded (the registry says why)."""
    env = os.environ.get("SWCDATA_HOME")
    try:
        return Path(env).expanduser() if env else Path("registry")
    except RuntimeError:  # (~nouser)
        return None


def inside_registry(path: Path, home: Path | None = None) -> Path | None:
    """The registry folder that `path` is in or is (`home`, and the default one), else None. Paths are
    compared resolved, so a link into the registry or a `..` out of it count for where they lead."""
    if path.as_posix() in ("-", "/dev/stdout"):
        return None
    target = path.resolve()
    for h in (home, default_registry_home()):
        if h is None:
            continue
        try:
            root = h.expanduser().resolve()
        except RuntimeError:  # (~nouser: not a folder anything can be written into)
            continue
        if target == root or root in target.parents:
            return h
    return None


def refuse_inside_registry(outputs: Sequence[tuple[str, Path | None]], home: Path | None = None) -> None:
    """InputError (exit 2) for an output file or folder inside the registry (`home`, and the default one):
    published versions are read-only and written by `publish` alone (the output checks of every command
    apply this to the default registry; commands with --home call it with theirs)."""
    for option, path in outputs:
        if path is not None and (h := inside_registry(path, home)) is not None:
            raise InputError(f"{option} {path} is inside the registry {h}: published versions are never written "
                             "by other commands", hint="write the output outside the registry")


def iter_chunks(path: Path, stats: FileStats, chunk_size: int = 1000) -> Iterator[LineChunk]:
    """Stream a file as chunks of non-blank lines; counts blank lines and hashes the bytes into `stats`."""
    h = hashlib.sha256()
    name = str(path)
    chunk = LineChunk(name)
    lineno = 0
    last = b""
    try:
        f = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed in finally
    except OSError as e:
        raise InputError(f"cannot open {path}: {e.strerror}") from e
    try:
        for raw in f:
            lineno += 1
            h.update(raw)
            stats.bytes += len(raw)
            last = raw
            if lineno == 1 and raw.startswith(BOM):
                stats.had_bom = True
                raw = raw[3:]
            if raw.endswith(b"\n"):
                raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                    stats.crlf_lines += 1
            elif raw.endswith(b"\r"):
                raw = raw[:-1]
            if not raw.strip():
                stats.blank_lines += 1
                continue
            chunk.lines.append((lineno, raw))
            if len(chunk.lines) >= chunk_size:
                yield chunk
                chunk = LineChunk(name)
    except OSError as e:
        raise InputError(f"cannot read {path} at line {lineno + 1}: {e.strerror}") from e
    finally:
        f.close()
    if chunk.lines:
        yield chunk
    stats.lines = lineno
    stats.final_newline = lineno == 0 or last.endswith(b"\n")
    stats.sha256 = h.hexdigest()


@dataclass(slots=True)
class LineUnit:
    """A run of whole consecutive lines of one file, by byte range (blank lines included).

    ``first_line`` is the 1-based number of its first line and ``lines`` how many lines it holds
    (a final line without a newline counts). ``data`` holds the bytes when the reader was asked
    for them; otherwise whoever checks the unit reads ``size`` bytes at ``offset`` itself.
    ``stamp`` is the file's :func:`file_stamp` when the reader opened it: reading the unit later
    checks that the file is still that one, unchanged.
    """

    file: str
    offset: int
    size: int
    first_line: int
    lines: int
    data: bytes | None = None
    stamp: tuple[int, int, int, int] | None = None


def file_stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells that a file changed: its device and inode (replaced by another file), its size and
    its modification time (rewritten in place)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def stamp_change(before: tuple[int, int, int, int], now: tuple[int, int, int, int]) -> str | None:
    """How a file changed between two stamps, in words; None when it did not."""
    if before[:2] != now[:2]:
        return "it was replaced by another file"
    if before[2] != now[2]:
        return f"its size changed from {before[2]:,} to {now[2]:,} bytes"
    if before[3] != now[3]:
        return "it was modified (its modification time changed)"
    return None


def changed_error(path: str | Path, why: str) -> InputError:
    """The InputError for a file that changed while it was read (`why`: how, as `stamp_change` says it)."""
    return InputError(f"{path} changed while it was read: {why}; nothing was written",
                      hint="rerun when nothing writes it any more, or read a copy taken when it is complete "
                           "(cp FILE SNAPSHOT.jsonl)")


_MIN_READ = 8 << 20  # bytes read at a time, at least


# A file that is not UTF-8 JSONL at all, told by its first bytes: one message for the file, not one per line.
_FORMATS: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first: gunzip -k FILE (or zcat FILE > FILE.jsonl)"),
    (b"BZh", "bzip2-compressed", "decompress it first: bunzip2 -k FILE"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first: unxz -k FILE"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first: unzstd FILE"),
    (b"PK\x03\x04", "a zip archive", "extract it first: unzip FILE"),
    (b"\xff\xfe\x00\x00", "UTF-32 text (little-endian BOM)", "convert it: iconv -f UTF-32 -t UTF-8 FILE > OUT"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (big-endian BOM)", "convert it: iconv -f UTF-32 -t UTF-8 FILE > OUT"),
    (b"\xff\xfe", "UTF-16 text (little-endian BOM)", "convert it: iconv -f UTF-16 -t UTF-8 FILE > OUT"),
    (b"\xfe\xff", "UTF-16 text (big-endian BOM)", "convert it: iconv -f UTF-16 -t UTF-8 FILE > OUT"),
)


def refuse_unreadable_format(path: Path, head: bytes) -> None:
    """An InputError when the first bytes say the file is compressed, an archive or UTF-16/32 text; also for
    UTF-16 without a BOM (`{` followed by a NUL byte, or the reverse)."""
    for magic, what, fix in _FORMATS:
        if head.startswith(magic):
            raise InputError(f"{path} is {what}, not UTF-8 JSONL", hint=fix.replace("FILE", str(path)))
    if len(head) >= 2 and ((head[0] == 0x7B and head[1] == 0) or (head[0] == 0 and head[1] == 0x7B)):
        raise InputError(f"{path} looks like UTF-16 text without a byte-order mark, not UTF-8 JSONL",
                         hint=f"convert it: iconv -f UTF-16 -t UTF-8 {path} > OUT")


def iter_units(path: Path, stats: FileStats, max_lines: int = 500, max_bytes: int = 1 << 20,
               *, with_data: bool = False, digest: bool = True) -> Iterator[LineUnit]:
    """Cut a file into units of at most ``max_lines`` lines and (unless one line is longer)
    ``max_bytes`` bytes, at line ends, without looking at the lines themselves: the bytes are
    hashed and the newlines counted at C speed, in bounded memory (one buffer of a few reads).

    Fills in `stats` (sha256 unless `digest` is False, bytes, lines, BOM, final newline) except
    the per-line facts (blank and CRLF lines), which :func:`split_unit` counts.
    """
    h = hashlib.sha256() if digest else None
    name = str(path)
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in finally
    except OSError as e:
        raise InputError(f"cannot open {path}: {e.strerror}") from e
    try:
        refuse_unreadable_format(path, os.pread(f.fileno(), 8, 0))
    except BaseException:
        f.close()
        raise
    read_size = max(4 * max_bytes, _MIN_READ)
    # One buffer for the whole file, read into in place: its bytes [0, size) are the file's from
    # `base` on. (A fresh buffer per read costs a page fault every 4 KB, as much as the hashing.) A
    # small file gets a buffer of its size.
    try:
        opened = os.fstat(f.fileno())
    except OSError as e:
        f.close()
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    stamp = file_stamp(opened)  # (checked at the end, and by whoever reads a unit later: see read_unit)
    buf = bytearray(min(2 * read_size, opened.st_size + 1))
    size = 0
    base = 0  # file offset of buf[0]
    p = 0  # start of the next unit in buf
    first_line = 1
    eof = False
    ends_with_newline = True

    def more() -> bool:
        """Read on: the bytes from p on move to the front of buf, the next read goes after them
        (buf grows only for a line longer than the buffer); False at the end of the file."""
        nonlocal buf, size, base, p, eof, ends_with_newline
        keep = size - p
        room = min(len(buf) - keep, read_size)
        if room < 1:  # the buffer holds one unfinished line: grow it
            buf.extend(bytes(read_size))
            room = read_size
        with memoryview(buf) as mv:
            if keep and p:
                mv[:keep] = mv[p:size]
            base += p
            size, p = keep, 0
            with mv[keep : keep + room] as tail:
                got = f.readinto(tail) or 0
                if got and h is not None:
                    with tail[:got] as block:
                        h.update(block)
        if not got:
            eof = True
            return False
        if stats.bytes == 0 and buf.startswith(BOM):
            stats.had_bom = True
        stats.bytes += got
        size = keep + got
        ends_with_newline = buf[size - 1] == 10
        return True

    try:
        while True:
            if p >= size and (eof or not more()):
                break
            limit = min(size, p + max_bytes)
            # up to max_lines newlines before the byte limit, one C-speed find per line
            find = buf.find
            j = p - 1
            n = 0
            while n < max_lines:
                k = find(b"\n", j + 1, limit)
                if k < 0:
                    break
                j = k
                n += 1
            if n == max_lines or (n and limit < size):
                end = j + 1
            elif limit == size:  # the data ran out before a limit: read on, or take the rest of the file
                if not eof and more():
                    continue
                end = size  # (more() may have moved the data to the front of buf, p with it)
                if buf[end - 1] != 10:  # the final line, without a newline
                    n += 1
            else:  # a line longer than max_bytes: read on to its end
                k = buf.find(b"\n", limit, size)
                while k < 0 and not eof:
                    m = size - p
                    if more():
                        k = buf.find(b"\n", m, size)
                end = k + 1 if k >= 0 else size
                n = 1
            yield LineUnit(name, base + p, end - p, first_line, n, bytes(buf[p:end]) if with_data else None, stamp)
            first_line += n
            p = end
        # The bytes read (and hashed) are the file's only if it did not change meanwhile: rewritten in
        # place (a new mtime), grown or cut (a new size, or fewer bytes than it had), or replaced.
        now = file_stamp(os.fstat(f.fileno()))
        why = stamp_change(stamp, now) or stamp_change(stamp, file_stamp(os.stat(path)))
        if why is None and stats.bytes != opened.st_size:
            why = f"{stats.bytes:,} bytes were read of the {opened.st_size:,} it had"
        if why is not None:
            raise changed_error(path, why)
    except FileNotFoundError:  # (the final os.stat: removed or renamed away)
        raise changed_error(path, "it was removed or renamed") from None
    except OSError as e:
        raise InputError(f"cannot read {path} at line {first_line}: {e.strerror}") from e
    finally:
        f.close()
    stats.lines = first_line - 1
    stats.final_newline = ends_with_newline
    stats.sha256 = h.hexdigest() if h is not None else ""


def read_unit(unit: LineUnit) -> bytes:
    """The bytes of a unit: its ``data``, or read from its file."""
    if unit.data is not None:
        return unit.data
    try:
        with open(unit.file, "rb", buffering=0) as f:
            data = os.pread(f.fileno(), unit.size, unit.offset)
            why = stamp_change(unit.stamp, file_stamp(os.fstat(f.fileno()))) if unit.stamp is not None else None
    except FileNotFoundError:
        raise changed_error(unit.file, "it was removed or renamed") from None
    except OSError as e:
        raise InputError(f"cannot read {unit.file} at line {unit.first_line}: {e.strerror}") from e
    if why is None and len(data) != unit.size:
        why = f"it ends before line {unit.first_line}'s bytes"
    if why is not None:
        raise changed_error(unit.file, why)
    return data


def split_unit(data: bytes, first_line: int, file_start: bool) -> tuple[list[tuple[int, bytes]], int, int]:
    """The non-blank lines of a unit's bytes as (line number, raw bytes without EOL), with its
    blank and CRLF line counts; exactly what :func:`iter_chunks` yields and counts for these lines.
    ``file_start``: the unit starts the file (a UTF-8 BOM there is dropped)."""
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()  # (the empty piece after the last newline)
        unterminated = False
    else:
        unterminated = True
    if file_start and parts and parts[0].startswith(BOM):
        parts[0] = parts[0][3:]
    crlf = 0
    if b"\r" in data:
        last = len(parts) - 1
        for k, raw in enumerate(parts):
            if raw.endswith(b"\r"):
                parts[k] = raw[:-1]
                if k < last or not unterminated:
                    crlf += 1
    out = [(first_line + k, raw) for k, raw in enumerate(parts) if raw and not raw.isspace()]
    return out, len(parts) - len(out), crlf


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, as hex (read in blocks by `hashlib.file_digest`, the GIL released)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --------------------------------------------------------------------------- decoding one line


@dataclass(slots=True)
class Decoded:
    """The outcome of decoding one line: an object, or a rule id and message saying why not."""

    obj: dict[str, Any] | None
    text: str | None  # the line as text (None when it is not valid UTF-8)
    error_rule: str | None = None
    error_message: str | None = None
    duplicate_keys: list[str] | None = None


def _count_keys(value: Any) -> int:
    """Keys in all the objects nested in `value` (iterative: orjson decodes nesting deeper than
    Python's recursion limit)."""
    n = 0
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            n += len(v)
            stack.extend(x for x in v.values() if isinstance(x, dict | list))
        elif isinstance(v, list):
            stack.extend(x for x in v if isinstance(x, dict | list))
    return n


def _find_duplicate_keys(text: str) -> list[str]:
    import json

    dups: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen and k not in dups:
                dups.append(k)
            seen.add(k)
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=hook)
    except RecursionError:  # nested deeper than the json module recurses (orjson reads 1,024 levels)
        return []  # (such a line is quarantined as too-deep when it is stored: see validate)
    return dups


# A key token is a closing quote followed by a colon. Inside a JSON string a quote is always escaped,
# so `\"` + colon is text, and an unescaped one is a key -- unless a string ends in an escaped
# backslash (`\\"`), in which case the exact check runs.
_KEY_TOKEN = re.compile(rb'"\s*:')
_ESCAPED_KEY_TOKEN = re.compile(rb'\\"\s*:')
_SPACED_KEY_TOKEN = re.compile(rb'"\s+:')


def _may_have_duplicate_keys(raw: bytes, n_keys: int) -> bool:
    """Cheap and conservative: False only when the line provably has no repeated key."""
    if b'\\\\"' in raw:
        return True
    if _SPACED_KEY_TOKEN.search(raw) is None:
        # The usual layout (no blank between a key and its colon), as every JSON writer emits it:
        # two C-speed substring counts instead of counting the regex's matches.
        return raw.count(b'":') - raw.count(b'\\":') != n_keys
    tokens = len(_KEY_TOKEN.findall(raw))
    if b'\\"' in raw:
        tokens -= len(_ESCAPED_KEY_TOKEN.findall(raw))
    return tokens != n_keys


def duplicate_keys(raw: bytes, obj: Any) -> list[str] | None:
    """The keys that repeat in the line `raw` whose decoded value is the object `obj` (None when
    none does); the exact (slow) check runs only when the cheap byte-level test says one might."""
    try:
        if orjson.dumps(obj) == raw:  # the line is the object's compact form, which has each key once
            return None
    except orjson.JSONEncodeError:  # (nested deeper than orjson writes)
        pass
    n = len(obj)
    for v in obj.values():
        if isinstance(v, dict | list):
            n = _count_keys(obj)
            break
    if _may_have_duplicate_keys(raw, n):
        return _find_duplicate_keys(raw.decode("utf-8")) or None
    return None


def decode_line(raw: bytes) -> Decoded:
    """Decode one non-blank JSONL line. Never raises."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as ue:
            return Decoded(None, None, "invalid-utf8",
                           f"not valid UTF-8: byte 0x{raw[ue.start]:02x} at byte offset {ue.start} ({ue.reason})")
        why = f"invalid JSON: {e}"
        if "\r" in text.rstrip("\r"):  # (a CR inside the line: JSON strings escape theirs)
            why += ("; the line holds carriage returns (CR): if the file ends its lines with CR alone, convert them "
                    "to LF")
        return Decoded(None, text, "invalid-json", why)
    text = raw.decode("utf-8")
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
                type(None): "null"}.get(type(obj), type(obj).__name__)
        return Decoded(None, text, "not-an-object", f"expected a JSON object, got {kind}")
    return Decoded(obj, text, duplicate_keys=duplicate_keys(raw, obj))
