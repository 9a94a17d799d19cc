"""One fit at a time per estimator object.

scikit-learn estimators are not thread-safe: two threads fitting the same object
interleave their writes to its attributes and leave a model that is neither fit. sphereml
refuses the second call instead, with an error that says what to do (one estimator per
thread, e.g. ``sklearn.base.clone``). Fitting different objects in threads at once is
fine and reproduces sequential fits.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_LOCK = threading.Lock()
# id(estimator) -> (thread running a fitting method on it, nesting depth in that thread)
_RUNNING: dict[int, tuple[int, int]] = {}


def one_fit_at_a_time(method: F) -> F:
    """Decorate a fitting method: a concurrent call on the same object from another
    thread raises a RuntimeError; nested calls in one thread (fit → fit_predict) pass."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        key, me = id(self), threading.get_ident()
        with _LOCK:
            owner, depth = _RUNNING.get(key, (me, 0))
            if owner != me:
                raise RuntimeError(
                    f"{type(self).__name__}.{method.__name__} was called while another "
                    "thread is fitting the same estimator object; estimators are not "
                    "thread-safe: give each thread its own (sklearn.base.clone(estimator))"
                )
            _RUNNING[key] = (me, depth + 1)
        try:
            return method(self, *args, **kwargs)
        finally:
            with _LOCK:
                owner, depth = _RUNNING[key]
                if depth == 1:
                    del _RUNNING[key]
                else:
                    _RUNNING[key] = (owner, depth - 1)

    return wrapper  # type: ignore[return-value]
