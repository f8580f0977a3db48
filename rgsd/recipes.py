"""Find the shipped recipes (``recipes/*.yaml``) in a source checkout and in an installed wheel alike.

The repository's ``recipes/`` folder is the one source of truth. Building a wheel copies it into the package
as ``rgsd/_recipes/`` (see ``setup.py``); a checkout or an editable install reads ``recipes/`` directly.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).resolve().parent / "_recipes"
_CHECKOUT = Path(__file__).resolve().parents[1] / "recipes"


def folder() -> Path:
    """The folder holding the recipes: the packaged copy when installed, else the checkout's ``recipes/``."""
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def names() -> list[str]:
    """File names of every shipped recipe, sorted."""
    return sorted(p.name for p in folder().glob("*.yaml"))


def path(name: str) -> Path:
    """The path of the recipe ``name`` (``"rgsd-smollm2-cpu.yaml"``; the ``.yaml`` may be left out).

    Raises ``FileNotFoundError`` listing the recipes that exist.
    """
    file = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    found = folder() / file
    if not found.is_file():
        raise FileNotFoundError(f"no recipe {name!r} in {folder()} (recipes: {', '.join(names()) or 'none'})")
    return found


def config_file(value: str | Path) -> Path:
    """What ``--config VALUE`` reads: an existing file, else the shipped recipe of that name.

    ``rgsd-tiny-cpu``, ``rgsd-tiny-cpu.yaml`` and ``recipes/rgsd-tiny-cpu.yaml`` (the README's path, run from an
    installed wheel with no checkout around) all name the shipped recipe. A value like that which names no
    recipe raises ``FileNotFoundError`` listing the shipped ones; any other path is returned as given (the
    config reader says what is wrong with it).
    """
    given = Path(value)
    try:
        if given.exists():
            return given
    except (OSError, ValueError):  # a name no file system takes: the reader says so
        return given
    if given.is_absolute() or given.parent not in (Path("."), Path("recipes")):
        return given
    file = given.name if given.name.endswith((".yaml", ".yml")) else f"{given.name}.yaml"
    if (folder() / file).is_file():
        return folder() / file
    shipped = ", ".join(n.removesuffix(".yaml") for n in names()) or "none"
    raise FileNotFoundError(f"{value}: no such file, and no shipped recipe of that name (recipes: {shipped})")
