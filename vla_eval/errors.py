"""User-facing errors.

A `UsageError` means the input was wrong (a bad count, a missing file, a malformed
record); the command line turns it into one line on stderr and exit status 2. It
depends on nothing.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: the message says what was wrong and what to do."""


class DataError(UsageError):
    """A file's content is wrong (malformed record, duplicate, wrong format version)."""
