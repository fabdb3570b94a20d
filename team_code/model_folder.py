"""A model folder is whole or refused.

Writing: a training builds its model in a temporary sibling of MODEL (``.MODEL.tmp-<pid>``,
same parent, so the same file system) and :func:`commit` moves it into place once every file
and the manifest are written. Where MODEL already exists the two folders are exchanged in one
step (Linux ``renameat2`` with ``RENAME_EXCHANGE``) and the old model, now in the temporary
folder, removed: a reader finds the old model or the new one at MODEL at every moment, never
half of each and never none. Where the system cannot exchange (another kernel, a file system
without it) MODEL is renamed aside (``.MODEL.old-<pid>``) and the new folder renamed into
place, which leaves MODEL missing between the two renames. An interrupted training leaves
the previous model as it was. The run state of a training lives in the live MODEL folder, not in
the temporary one: ``MODEL/.work`` (checkpoints and finished parts, for ``--resume``) and
``MODEL/.cache`` (per-record caches). An interrupted training leaves them there for the next
``--resume``; :func:`commit` carries them into the new folder.

Checking: ``manifest.json`` lists every file of the model (relative path, size in bytes,
SHA-256), the files of lead-set subfolders included, and records the kit's version and the
model format. :func:`check` refuses a folder whose files do not match the list (a file
missing, truncated or replaced, a file in a subfolder that the list does not have) and a
folder written by a kit whose outputs this kit does not guarantee to reproduce. Hashing reads
each file once per process: a folder verified before is not hashed again while none of its
files has changed (size, modification and change times, inode).

Loading: :func:`load_model` checks the folder (:func:`load_manifest`) and gives its primary
classifier (or the one named; ``hybrid.rules`` names a member of a trained hybrid); a folder
trained for several lead sets gives a :class:`LeadSetModels`, which serves each record with the
model of the largest lead set the record has (:func:`choose_lead_set`).

Layout::

    MODEL/manifest.json          classifiers, primary, classes, thresholds, versions, data
                                 summary, threads, and every file's size and SHA-256
    MODEL/<classifier>/config.json  + the family's tensors (safetensors) and JSON
    MODEL/leads-<set>/           with several lead sets: one model folder per set, listed in
                                 MODEL/manifest.json
    MODEL/.work, MODEL/.cache    run state of the trainings: checkpoints, per-record caches
"""

from __future__ import annotations

import ctypes
import errno
import glob
import hashlib
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from team_code import __version__
from team_code.classifiers import registry
from team_code.classifiers.base import Classifier
from team_code.context import RunContext
from team_code.data.records import Record, RecordError, read_header
from team_code.fileio import load_json, save_json

MANIFEST = "manifest.json"

#: The model format this kit writes and reads: the layout of the folder and its manifest.
FORMAT = "ecg-kit-model/2"

#: Kit versions, besides this one, whose model folders this kit serves with outputs identical
#: to theirs (same format). A release that changes no classifier's outputs lists the versions
#: before it here, with a test that serves a folder of each; any other folder is refused.
SERVED_VERSIONS: tuple[str, ...] = ()

#: Run state of a training kept in the live model folder, carried over by :func:`commit`.
RUN_STATE = (".work", ".cache")

#: Bytes read at a time while hashing.
_CHUNK = 1 << 20


class ModelFolderError(ValueError):
    """A model folder that is not whole, or not servable by this kit."""


# --------------------------------------------------------------------------------------------
# Writing


def staging_folder(target: str | os.PathLike) -> Path:
    """The temporary sibling this process builds ``target`` in."""
    target = Path(os.path.abspath(target))
    return target.parent / f".{target.name}.tmp-{os.getpid()}"


def _aside_folder(target: Path) -> Path:
    return target.parent / f".{target.name}.old-{os.getpid()}"


#: What every model format of this kit names in its manifest's ``format`` (``ecg-kit-model/1``,
#: ``/2``, ...): a folder whose manifest.json says anything else is not one of its models.
FORMAT_FAMILY = FORMAT.split("/")[0] + "/"


def _is_kit_manifest(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest this kit wrote, in any of its model formats
    (another program's manifest.json makes its folder no model to replace)."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ModelFolderError):
        return False
    return str(manifest.get("format", "")).startswith(FORMAT_FAMILY)


def check_writable(target: str | os.PathLike) -> None:
    """Raise unless ``target`` may be replaced by a new model: it does not exist, or it is a
    folder holding a model (a manifest), run state (``.work``, ``.cache``) or nothing."""
    target = Path(os.path.abspath(target))
    if not target.exists():
        return
    if not target.is_dir():
        raise ModelFolderError(f"MODEL {target} exists and is not a folder")
    if _is_kit_manifest(target):
        return
    others = sorted(p.name for p in target.iterdir() if p.name not in RUN_STATE)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ModelFolderError(
            f"MODEL {target} exists and is not a model folder (it holds {shown}); a training "
            "replaces the whole folder: give a new or empty folder"
        )


def begin(target: str | os.PathLike) -> Path:
    """Make a fresh temporary folder for a new model of ``target`` and return it.

    Leftovers of trainings whose process is gone are cleared first: a temporary folder is
    removed, and an old model moved aside by an interrupted :func:`commit` is put back where
    ``target`` is missing or empty (else removed)."""
    target = Path(os.path.abspath(target))
    check_writable(target)
    for leftover in sorted(target.parent.glob(f".{glob.escape(target.name)}.*-*")):
        kind, _, pid = leftover.name[len(target.name) + 2 :].rpartition("-")
        if kind not in ("tmp", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and (not target.exists() or not any(target.iterdir())):
            if target.exists():
                target.rmdir()  # made empty for the run state of the training starting now
            os.rename(leftover, target)
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    staging = staging_folder(target)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a leftover of an earlier training in this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def file_list(folder: str | os.PathLike) -> list[dict]:
    """Every file of the model in ``folder``, sorted by path: ``{"path", "bytes", "sha256"}``.
    Its own manifest and the top level's hidden entries (run state) are not part of it."""
    folder = Path(folder)
    return [
        {"path": path, "bytes": (folder / path).stat().st_size, "sha256": sha256(folder / path)}
        for path in _model_files(folder)
    ]


def _model_files(folder: Path) -> list[str]:
    """Relative paths (POSIX) of the files that make the model of ``folder``."""
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name == MANIFEST:
            continue
        if entry.is_dir():
            found.extend(p.relative_to(folder).as_posix() for p in entry.rglob("*") if p.is_file())
        elif entry.is_file():
            found.append(entry.name)
    return sorted(found)


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: str | os.PathLike, manifest: dict) -> dict:
    """Save ``manifest`` in ``folder`` with the model format, the kit's version and the list
    of the folder's files (written last, once every file is in place); returns it."""
    manifest = {
        "format": FORMAT,
        "kit_version": __version__,
        **manifest,
        "files": file_list(folder),
    }
    save_json(Path(folder) / MANIFEST, manifest)
    return manifest


def commit(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished model in ``staging`` into place as ``target``, with the run state of
    the folder it replaces; the replaced model is removed."""
    staging, target = Path(staging), Path(os.path.abspath(target))
    if not (staging / MANIFEST).is_file():
        raise ModelFolderError(f"{staging} holds no finished model ({MANIFEST} is missing)")
    check_writable(target)
    if not target.exists():
        os.rename(staging, target)
        return
    if exchange(staging, target):
        aside = staging  # the replaced model
    else:
        aside = _aside_folder(target)
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(target, aside)
        os.rename(staging, target)
    for name in RUN_STATE:
        if (aside / name).exists():
            os.rename(aside / name, target / name)
    shutil.rmtree(aside, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap the paths ``a`` and ``b`` (both existing) in one atomic step; True where done,
    False where this system cannot or will not (not Linux, no ``renameat2`` in its C library,
    a file system without ``RENAME_EXCHANGE``, a sandbox that forbids the call), with nothing
    changed: the caller's plain renames then meet any real fault. Other failures raise."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM):
        return False  # not here (a seccomp filter may answer EPERM): the renames decide
    raise OSError(code, os.strerror(code), os.fspath(a), None, os.fspath(b))


def discard(staging: str | os.PathLike) -> None:
    """Remove an unfinished temporary folder (nothing when it is gone)."""
    shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Checking

#: Folders verified in this process: resolved path -> the stat signature they had then.
_verified: dict[str, tuple] = {}


def check(folder: str | os.PathLike, manifest: dict, verify: bool = True) -> None:
    """Refuse (:class:`ModelFolderError`) a model folder this kit cannot serve as trained:
    another model format or kit version, or (``verify``) files that do not match the
    manifest's list. The message names the folder and, for a file, its path and the problem."""
    check_version(folder, manifest)
    if verify:
        verify_files(folder, manifest)


def check_version(folder: str | os.PathLike, manifest: dict) -> None:
    """Refuse a folder written in another model format, or by another kit version that is not
    in :data:`SERVED_VERSIONS`; the message names both versions and says to retrain."""
    written = manifest.get("kit_version")
    theirs = f"kit version {written}" if written else "a kit before version 0.2.0"
    retrain = "retrain the model with this kit (train_model.py DATA MODEL)"
    if manifest.get("format") != FORMAT:
        raise ModelFolderError(
            f"{folder} was written by {theirs} in model format {manifest.get('format')!r}; "
            f"this is kit version {__version__}, which reads model format {FORMAT!r}: {retrain}"
        )
    if written != __version__ and written not in SERVED_VERSIONS:
        raise ModelFolderError(
            f"{folder} was written by {theirs}; this is kit version {__version__}, which does "
            f"not guarantee the same outputs from it: {retrain}, or serve it with kit "
            f"version {written}"
        )


def verify_files(folder: str | os.PathLike, manifest: dict) -> None:
    """Check the files of ``folder`` against the manifest's list: each listed file present
    with its size and SHA-256, and no other file in the model's subfolders."""
    folder = Path(folder)
    listed = _listed(folder, manifest)
    problems = []
    present = set(_model_files(folder))
    for path in sorted(present - set(listed)):
        if "/" in path:  # top-level files other than the list's are not read by any loader
            problems.append(f"{path}: not in the manifest's file list (from another training?)")
    stats = {}
    for path, entry in listed.items():
        try:
            stat = (folder / path).stat()
        except FileNotFoundError:
            problems.append(f"{path}: missing")
            continue
        if stat.st_size != entry["bytes"]:
            problems.append(
                f"{path}: size mismatch ({stat.st_size} bytes, the manifest lists "
                f"{entry['bytes']}: truncated or replaced)"
            )
        stats[path] = stat
    if not problems:
        key = str(folder.resolve())
        signature = _signature(folder, stats)
        if _verified.get(key) == signature:
            return
        for path, entry in listed.items():
            if sha256(folder / path) != entry["sha256"]:
                problems.append(
                    f"{path}: hash mismatch (SHA-256 differs from the manifest's: the file "
                    "was changed or replaced since training)"
                )
        if not problems:
            _verified[key] = signature
            return
    shown = "; ".join(problems[:5]) + (
        f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    )
    raise ModelFolderError(
        f"cannot load the model in {folder}: it is not the folder its training wrote: {shown}. "
        "Retrain it, or restore the folder as it was written"
    )


def _listed(folder: Path, manifest: dict) -> dict[str, dict]:
    """The manifest's file list as {path: entry}; a malformed list or a path that leaves the
    folder raises."""
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ModelFolderError(f"cannot load the model in {folder}: its manifest lists no files")
    listed = {}
    for entry in files:
        try:
            path, _, _ = str(entry["path"]), int(entry["bytes"]), str(entry["sha256"])
        except (KeyError, TypeError, ValueError):
            raise ModelFolderError(
                f"cannot load the model in {folder}: malformed file entry {entry!r}"
            ) from None
        parts = path.split("/")
        if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
            raise ModelFolderError(
                f"cannot load the model in {folder}: file {path!r} points outside the folder"
            )
        listed[path] = entry
    return listed


def _signature(folder: Path, stats: dict[str, os.stat_result]) -> tuple:
    """What changes when any listed file (or the manifest) is written, replaced or touched."""
    manifest = (folder / MANIFEST).stat()
    return tuple(
        (path, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino)
        for path, s in sorted({**stats, MANIFEST: manifest}.items())
    )


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of ``folder``; a missing one raises ``FileNotFoundError``, one that is
    not a JSON object :class:`ModelFolderError`."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a model folder: {MANIFEST} is missing")
    try:
        manifest = load_json(path)
    except (UnicodeDecodeError, ValueError) as error:
        raise ModelFolderError(f"{path} is not a model manifest: {error}") from error
    if not isinstance(manifest, dict):
        raise ModelFolderError(
            f"{path} is not a model manifest: it holds a JSON {type(manifest).__name__}, "
            "not an object"
        )
    return manifest


# --------------------------------------------------------------------------------------------
# Loading

#: Subfolder of a model folder holding the model of one lead set (with several lead sets).
LEAD_SET_FOLDER = "leads-{}"


def load_manifest(model_dir: str | os.PathLike, verify: bool = True) -> dict:
    """Read a model folder's manifest and check the folder (:func:`check`): a
    folder of another model format or kit version, or (``verify``) whose files do not match
    the manifest's list, raises :class:`~team_code.model_folder.ModelFolderError` (a
    ``ValueError``) naming the file and the problem. Files are hashed once per process while
    they stay unchanged."""
    manifest = read_manifest(model_dir)
    check(model_dir, manifest, verify)
    return manifest


def load_model(
    model_dir: str | os.PathLike,
    classifier: str | None = None,
    ctx: RunContext | None = None,
    verify: bool = True,
):
    """The primary classifier of a model folder (or the one named; ``hybrid.rules`` names a
    member of a trained hybrid), set to run under ``ctx``. A folder with several lead sets
    gives a :class:`LeadSetModels` that serves each record with the largest lead set it has.
    The folder is checked first (:func:`load_manifest`; ``verify=False`` skips the files'
    sizes and hashes, for a folder whose enclosing model folder verified them)."""
    manifest = load_manifest(model_dir, verify)
    ctx = ctx or RunContext(progress=False)
    if "lead_sets" in manifest:
        return LeadSetModels.load(model_dir, manifest, classifier, ctx)
    name = classifier or manifest["primary"]
    top, _, member = name.partition(".")
    if top not in manifest["classifiers"]:
        raise KeyError(
            f"{model_dir} has no {top!r} classifier; it has {describe_classifiers(manifest)}"
        )
    folder = _subfolder(model_dir, manifest["classifiers"][top]["folder"], "classifier")
    model = registry.get(top).load(folder).use(ctx)
    if member:
        members = getattr(model, "members_", {})
        if member not in members:
            raise KeyError(
                f"{model_dir}: {top} has no member {member!r}; it has "
                f"{describe_classifiers(manifest)}"
            )
        return members[member]
    return model


def _subfolder(model_dir, name, what: str) -> Path:
    """``model_dir/name`` for a folder name read from a manifest; one that would point
    outside the model folder raises."""
    name = str(name)
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"{model_dir}: {what} folder {name!r} points outside the model folder")
    return Path(model_dir) / name


def describe_classifiers(manifest: dict) -> str:
    """The classifiers a model holds, members of hybrids as ``hybrid.<member>``."""
    names = []
    for name, entry in manifest.get("classifiers", {}).items():
        names.append(name)
        names.extend(f"{name}.{m}" for m in entry.get("members", ()))
    return ", ".join(names)


class LeadSetModels:
    """The models of one folder trained for several lead sets (``train --leads 12,6,2``).

    Each record is served by the model of the largest lead set whose leads the record has
    (:meth:`choose`); a record with fewer leads than every trained set fails on its own, with
    a message naming its leads and the smallest set's. All sets share the task's classes.
    """

    def __init__(self, models: dict[str, Classifier], leads: dict[str, tuple[str, ...]]):
        order = sorted(models, key=lambda name: -len(leads[name]))
        self.models = {name: models[name] for name in order}
        self.leads = {name: leads[name] for name in order}
        classes = {tuple(m.classes_) for m in models.values()}
        if len(classes) != 1:
            raise ValueError("the lead sets' models do not share their classes")
        self.classes_ = next(iter(classes))

    @classmethod
    def load(cls, model_dir, manifest: dict, classifier: str | None, ctx: RunContext):
        """The lead sets' models of ``model_dir``, whose ``manifest`` was read (and its files,
        lead-set folders included, verified) by :func:`load_manifest`."""
        models, leads = {}, {}
        for name, entry in manifest["lead_sets"].items():
            folder = _subfolder(model_dir, entry["folder"], "lead-set")
            models[name] = load_model(folder, classifier, ctx, verify=False)
            leads[name] = tuple(entry["leads"])
        return cls(models, leads)

    def choose(self, record: Record) -> str:
        """The largest lead set whose leads ``record`` has; raises naming what is missing."""
        name = choose_lead_set(self.leads, record.leads)
        if name is None:
            smallest = list(self.leads.values())[-1]
            raise RecordError(
                record.name,
                f"has leads {', '.join(record.leads)}: fewer than any trained lead set (the "
                f"smallest needs {', '.join(smallest)})",
            )
        return name


def choose_lead_set(lead_sets: Mapping[str, Sequence[str]], leads: Sequence[str]) -> str | None:
    """The largest of ``lead_sets`` ({name: leads}) whose leads are all in ``leads``."""
    have = set(leads)
    fitting = [name for name, wanted in lead_sets.items() if have >= set(wanted)]
    return max(fitting, key=lambda name: len(lead_sets[name]), default=None)


def served_lead_sets(manifest: dict, paths: Sequence[Path], names: set[str]) -> dict[str, str]:
    """The lead set whose model serves each of the records ``names`` (from their headers)."""
    sets = {name: entry["leads"] for name, entry in manifest["lead_sets"].items()}
    served = {}
    for path in paths:
        if path.stem in names:
            chosen = choose_lead_set(sets, read_header(path).leads)
            if chosen is not None:
                served[path.stem] = chosen
    return served
