"""The failures a user can fix: a missing file, model, dataset or device.

The ``larpo-lite`` command ends these (and ``ValueError``, ``OSError``) with their message on
one line and exit code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class LarpoLiteError(RuntimeError):
    """An expected failure; the message names the file, model or parameter and what to do."""
