"""Progress bars: tqdm on a terminal; nothing when stderr is a file or a pipe (no carriage-return
junk in logs), when disabled, or when tqdm is not installed."""
from __future__ import annotations

import sys
from typing import Iterable, Optional


class _NoBar:
    def __init__(self, iterable: Optional[Iterable] = None):
        self._iterable = iterable or ()

    def __iter__(self):
        return iter(self._iterable)

    def update(self, n):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def bar(iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: str = "", unit: str = "it",
        enabled: bool = True, mininterval: float = 0.1):
    if not enabled:
        return _NoBar(iterable)
    try:
        from tqdm import tqdm
    except ImportError:  # optional dependency
        return _NoBar(iterable)
    # disable=None: tqdm draws only when stderr is a terminal
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=mininterval, disable=None)
