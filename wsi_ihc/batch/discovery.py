"""Which slides a batch runs, and the unique output folder name of each.

A slide is a file with an extension OpenSlide or the fallback reader opens, found by a
recursive walk of a folder or read from a list file. Two formats span several files:
a folder of DICOM ``.dcm`` files is one slide (OpenSlide opens it from any of them), and a
Hamamatsu ``.vms``/``.vmu`` key file names JPEG/raw companions that are not slides.
"""

from __future__ import annotations

import fnmatch
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wsi_ihc.errors import ConfigError

#: Single-file formats, lower case: OpenSlide's, then what the TIAToolbox fallback adds.
SLIDE_SUFFIXES: tuple[str, ...] = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".vms",
    ".vmu",
    ".scn",
    ".mrxs",
    ".svslide",
    ".bif",
    ".dcm",
    ".jp2",
    ".qptiff",
    ".jpg",
    ".jpeg",
    ".png",
)
#: Suffixes of two parts, stripped whole from output names ("a.ome.tif" -> "a").
COMPOUND_SUFFIXES: tuple[str, ...] = (".ome.tif", ".ome.tiff")
DICOM_SUFFIX = ".dcm"
#: Formats whose key file lists companion files (``ImageFile=a.jpg``) that are not slides.
KEY_FILE_SUFFIXES: tuple[str, ...] = (".vms", ".vmu")
#: Folder names under the output root that belong to the batch itself.
RESERVED_STEMS: frozenset[str] = frozenset({"errors"})


@dataclass(frozen=True)
class SlideJob:
    """One slide of a batch.

    ``source`` is what the user points at (a file, or a DICOM folder); ``path`` is what the
    reader opens (the file, or the first ``.dcm`` of the folder); ``stem`` is the output
    folder name under the results root, unique within the batch.
    """

    source: Path
    path: Path
    stem: str


def find_slides(root: Path, pattern: str = "*", exclude: Path | None = None) -> list[SlideJob]:
    """Slides under ``root`` (recursive, sorted), whose relative path matches ``pattern``.

    Hidden files and folders and everything under ``exclude`` (the results folder, when it
    lies inside ``root``) are skipped. ``pattern`` is a glob on the path relative to
    ``root`` (``*`` also crosses ``/``), e.g. ``*.svs`` or ``case_*/*.ndpi``.
    """
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder of slides")
    excluded = exclude.resolve() if exclude is not None else None
    found: list[tuple[Path, Path]] = []  # (source, path to open)
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and (here / name).resolve() != excluded
        )
        files = [here / name for name in sorted(names) if not name.startswith(".")]
        found.extend(_slides_in_folder(here, files, root, pattern))
    return _named(found, root)


def read_slide_list(list_file: Path) -> list[SlideJob]:
    """Slides named in a text file, one path per line (``#`` comments and blanks ignored).

    Relative paths are taken from the list file's folder. A ``.dcm`` file or a folder of
    them stands for its DICOM slide. Paths that do not exist are kept: the slide then
    fails on its own with a clear error instead of stopping the batch.
    """
    try:
        lines = list_file.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"{list_file}: cannot read slide list ({exc.strerror})") from exc
    found: dict[Path, Path] = {}
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = (list_file.parent / entry).expanduser()
        if path.is_dir():
            members = sorted(p for p in path.iterdir() if p.suffix.lower() == DICOM_SUFFIX)
            if not members:
                raise ConfigError(f"{list_file}: {entry} is a folder without DICOM (.dcm) files")
            found.setdefault(path, members[0])
        elif path.suffix.lower() == DICOM_SUFFIX:
            found.setdefault(path.parent, path)
        else:
            found.setdefault(path, path)
    if not found:
        raise ConfigError(f"{list_file}: the slide list names no slides")
    return _named(list(found.items()), None)


def slide_name(path: Path) -> str:
    """File name without its slide suffix ("a.ome.tiff" -> "a", "b.svs" -> "b")."""
    lower = path.name.lower()
    for suffix in COMPOUND_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem if path.suffix else path.name


def _slides_in_folder(
    folder: Path, files: list[Path], root: Path, pattern: str
) -> Iterable[tuple[Path, Path]]:
    def matches(path: Path) -> bool:
        return fnmatch.fnmatch(path.relative_to(root).as_posix(), pattern)

    companions = {c for f in files if f.suffix.lower() in KEY_FILE_SUFFIXES for c in _companions(f)}
    dicom = [f for f in files if f.suffix.lower() == DICOM_SUFFIX]
    if any(matches(f) for f in dicom):
        yield folder, dicom[0]
    for path in files:
        suffix = path.suffix.lower()
        slide = suffix in SLIDE_SUFFIXES and suffix != DICOM_SUFFIX and path not in companions
        if slide and matches(path):
            yield path, path


def _companions(key_file: Path) -> set[Path]:
    """Files a Hamamatsu key file names (``ImageFile(1,0)=x.jpg``, ``MapFile=y.jpg``)."""
    try:
        lines = key_file.read_text(errors="replace").splitlines()
    except OSError:
        return set()
    values = (line.split("=", 1)[1].strip() for line in lines if "=" in line)
    return {key_file.parent / value for value in values if value and "/" not in value}


def _named(found: list[tuple[Path, Path]], root: Path | None) -> list[SlideJob]:
    """Give each slide a unique output name: its stem; where stems collide, the stem
    prefixed by parent folders (``a__x``, ``b__x`` for a/x.svs and b/x.svs) until they
    differ, the shallower slide keeping the shorter name; last, the relative path with its
    suffix (``x.svs``, ``x.tif``)."""
    candidates = [_name_candidates(source, path, root) for source, path in found]
    level = [0] * len(found)
    while True:
        names = [cands[lv] for cands, lv in zip(candidates, level, strict=True)]
        groups: dict[str, list[int]] = defaultdict(list)
        for index, name in enumerate(names):
            groups[name.lower()].append(index)  # case-insensitive file systems
        moved = False
        for name, members in groups.items():
            if len(members) == 1 and name not in RESERVED_STEMS:
                continue
            deeper = [i for i in members if level[i] < len(candidates[i]) - 2]
            for index in deeper or [i for i in members if level[i] < len(candidates[i]) - 1]:
                level[index] += 1
                moved = True
        if not moved:
            break
    if len({name.lower() for name in names}) != len(names):
        raise ConfigError(f"cannot give unique output names to the slides: {sorted(names)}")
    return [
        SlideJob(source=source, path=path, stem=name)
        for (source, path), name in zip(found, names, strict=True)
    ]


def _name_candidates(source: Path, path: Path, root: Path | None) -> list[str]:
    """Output names for one slide, from shortest to longest (the last is unique)."""
    if root is not None and source.resolve() == root.resolve():
        parts: tuple[str, ...] = (root.resolve().name,)
    elif root is not None:
        parts = source.relative_to(root).parts
    else:
        parts = source.resolve().parts[1:]
    stem = slide_name(source) if source == path else source.name  # a DICOM folder: its name
    parents = parts[:-1]
    names = ["__".join((*parents[len(parents) - k :], stem)) for k in range(len(parents) + 1)]
    names.append("__".join(parts))
    return names


def slide_jobs(
    folder: Path | None, list_file: Path | None, pattern: str, out_root: Path
) -> list[SlideJob]:
    """The slides of a batch: those under ``folder`` matching ``pattern``, or those
    ``list_file`` names (one of the two); never none."""
    if (folder is None) == (list_file is None):
        raise ConfigError("give a folder of slides or --list FILE (one of them)")
    if list_file is not None and pattern != "*":
        raise ConfigError(
            f"--pattern filters a folder of slides; {list_file} should list only the slides to run"
        )
    if list_file is not None:
        jobs = read_slide_list(list_file)
    else:
        jobs = find_slides(folder, pattern, exclude=out_root)
    if not jobs:
        raise ConfigError(f"{folder}: no slides match {pattern!r}")
    return jobs
