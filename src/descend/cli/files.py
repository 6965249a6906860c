"""Output paths of the commands: checked, and their folders made, before any work is done."""

from __future__ import annotations

from pathlib import Path

FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def output_path(path: Path | None, what: str, formats: tuple[str, ...] = FIGURE_FORMATS) -> Path | None:
    """``path`` with its folder created (as ``descend train`` does), checked before any work is done.

    A folder given as a file, or a suffix that cannot be written, is an error naming ``what``.
    """
    if path is None:
        return None
    if path.is_dir():
        raise ValueError(f"{what} must be a file path such as figures/race.png, got the folder {str(path)!r}")
    if path.suffix.lower().lstrip(".") not in formats:
        raise ValueError(f"{what} must end in one of .{', .'.join(formats)}, got {str(path)!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what}: cannot create the folder {str(path.parent)!r} ({err.strerror})") from None
    return path


def check_folder(path: Path, what: str) -> None:
    """A folder to be made at ``path``: ValueError naming ``what`` when a file stands where one of
    its parent folders would be (``afile/sub``), found before any work is done; nothing is created.
    (``path`` itself being a file is the caller's to report.)"""
    for place in path.parents:
        if place.exists():
            if not place.is_dir():
                raise ValueError(f"{what} {str(path)!r} cannot be made: {str(place)!r} is a file, not a folder")
            return
