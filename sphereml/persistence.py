"""Saving and loading fitted estimators safely, through ``skops.io``.

A fitted sphereml estimator is plain data — NumPy arrays, builtins and sphereml's own
classes — so a file written by :func:`save` names no other type. :func:`load` trusts
exactly that: the classes defined in sphereml (besides the NumPy and builtin types that
skops trusts by default) and refuses, by name and before anything in the file is built,
a file that names any other type or function. A file edited to call ``os.system``,
``builtins.eval`` or ``subprocess.Popen`` on load is therefore refused, not run.

Both need the optional ``skops`` package (``persist`` extra).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["UntrustedTypesError", "dumps", "load", "loads", "save", "untrusted_types"]

PathLike = str | os.PathLike


class UntrustedTypesError(ValueError):
    """A model file names types or functions that are not sphereml's."""


def _skops_io():
    try:
        import skops.io as sio
    except ImportError as exc:
        raise ImportError(
            "saving and loading models needs the optional 'skops' package: install sphereml "
            "with its 'persist' extra (pip install -e '.[persist]' from the repository)"
        ) from exc
    return sio


def _is_sphereml_class(name: str) -> bool:
    """Whether ``name`` ("module.Class") is a class defined in a sphereml module.

    Only sphereml's own modules are imported to check; a name that resolves to a
    function, a module or a class defined elsewhere (re-exported) is not trusted.
    """
    module_name, _, attribute = name.rpartition(".")
    if not (module_name == "sphereml" or module_name.startswith("sphereml.")):
        return False
    if not attribute.isidentifier():
        return False
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    value = getattr(module, attribute, None)
    return isinstance(value, type) and value.__module__ == module_name


def _foreign(names: list[str]) -> list[str]:
    return sorted(name for name in names if not _is_sphereml_class(name))


def untrusted_types(file: PathLike | None = None, *, data: bytes | None = None) -> list[str]:
    """The types a skops file names that :func:`load` would refuse (empty for a file
    written by :func:`save`).

    Parameters
    ----------
    file : str or path-like, default=None
        A ``.skops`` file.
    data : bytes, default=None
        The file's contents instead of ``file``.

    Returns
    -------
    list of str
        Fully qualified names, sorted.
    """
    sio = _skops_io()
    if (file is None) == (data is None):
        raise TypeError("pass exactly one of file and data")
    if file is not None:
        names = sio.get_untrusted_types(file=file)
    else:
        names = sio.get_untrusted_types(data=data)
    return _foreign(names)


def dumps(estimator: Any) -> bytes:
    """The bytes :func:`save` writes (for storage other than files); see :func:`save`."""
    sio = _skops_io()
    data = sio.dumps(estimator)
    foreign = untrusted_types(data=data)
    if foreign:
        raise UntrustedTypesError(
            f"the estimator holds objects of types that sphereml.load refuses: {foreign}; "
            "replace them by plain values (numbers, strings, arrays) before saving, or "
            "use skops.io.dump and trust these types yourself when loading"
        )
    return data


def save(estimator: Any, file: PathLike) -> None:
    """Write a fitted (or unfitted) estimator to a ``.skops`` file that :func:`load` reads.

    Parameters
    ----------
    estimator : object
        A sphereml estimator, or a scikit-learn pipeline of such estimators and
        scikit-learn's own parts.
    file : str or path-like

    Raises
    ------
    UntrustedTypesError
        The estimator holds an object of a type :func:`load` would refuse (e.g. a
        callable passed as a hyper-parameter); nothing is written.
    """
    data = dumps(estimator)
    with open(file, "wb") as handle:
        handle.write(data)


def _refuse_foreign(names: list[str], source: str) -> None:
    foreign = _foreign(names)
    if foreign:
        raise UntrustedTypesError(
            f"{source} names types or functions that are not sphereml's: {foreign}. "
            "sphereml.load builds only sphereml's own classes and the NumPy and builtin "
            "types skops trusts; a file written by sphereml.save never names others. If "
            "you know and trust where the file comes from, inspect it with "
            "skops.io.get_untrusted_types and load it with skops.io.load(file, trusted=...)."
        )


def load(file: PathLike) -> Any:
    """Load an estimator saved by :func:`save` (or by ``skops.io.dump``), running no
    code that the file names unless it is one of sphereml's classes.

    Parameters
    ----------
    file : str or path-like
        A ``.skops`` file.

    Returns
    -------
    estimator
        The estimator, ready to predict; a model trained on a GPU loads on a machine
        without one.

    Raises
    ------
    UntrustedTypesError
        The file names a type or function that is neither sphereml's nor one skops
        trusts by default (a tampered file, or a model holding foreign objects);
        nothing from the file has been built.
    ValueError
        The file's arrays do not fit its estimator (a corrupt file, or one written by
        an incompatible version of sphereml).

    Examples
    --------
    >>> import numpy as np, sphereml, tempfile, os
    >>> model = sphereml.VMFMixture(2, random_state=0).fit(np.eye(3)[:2] + 0.1)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skops")
    >>> sphereml.save(model, path)
    >>> sphereml.load(path).means_.shape
    (2, 3)
    """
    sio = _skops_io()
    names = sio.get_untrusted_types(file=file)
    _refuse_foreign(names, repr(os.fspath(file)))
    return sio.load(file, trusted=names)


def loads(data: bytes) -> Any:
    """:func:`load` from the bytes of a ``.skops`` file."""
    sio = _skops_io()
    names = sio.get_untrusted_types(data=data)
    _refuse_foreign(names, "the data")
    return sio.loads(data, trusted=names)
