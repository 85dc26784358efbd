"""The one exception tree of emingest.

Every error a user can see derives from :class:`EmingestError`. Subclasses also inherit the
built-in exception they refine, so callers can catch either (zarr does the same with
``NodeNotFoundError(BaseZarrError, FileNotFoundError)``). Library exceptions are translated at
the edge with ``raise ... from err`` so the message says what, where and what to do.
"""

from __future__ import annotations


class EmingestError(Exception):
    """Root of every error raised on purpose by emingest."""


class ConfigError(EmingestError, ValueError):
    """A setting, option or configuration file is invalid. Stops the run."""


class SourceError(EmingestError):
    """An archive (or a local input) could not give what was asked of it."""


class EntryNotFoundError(SourceError, FileNotFoundError):
    """The id, file or array asked for does not exist at the source."""


class RemoteFormatError(SourceError):
    """The source answered, but with a payload we cannot interpret (malformed JSON, bad header)."""


class TransientSourceError(SourceError):
    """A failure that may pass: timeouts, resets, 429/5xx. The retry policy retries these only."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IntegrityError(EmingestError):
    """Bytes do not match what was promised: wrong size, wrong digest, truncated body."""


class ConversionError(EmingestError):
    """A volume could not be read or written: corrupt file, unsupported layout, unwritable store."""


class UnsupportedFormatError(ConversionError):
    """The input is not an image format we can read."""


class CatalogError(EmingestError):
    """The catalog database could not be read or written."""


class RunInterrupted(EmingestError):
    """The run was asked to stop (Ctrl-C): what is written stays, the same command resumes."""


class LocalStorageError(EmingestError, OSError):
    """The local disk refused a write: no space left (ENOSPC), quota exceeded (EDQUOT), a
    read-only file system (EROFS) or a file size limit (EFBIG). Never retried: waiting does
    not free space. ``path`` is where the write failed; ``needed_bytes`` how much more was
    needed, when known. After space is freed the same command resumes."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        needed_bytes: int | None = None,
        errno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.needed_bytes = needed_bytes
        self.errno = errno


class DataRootError(EmingestError, OSError):
    """An object-storage data root (``s3://``) refused a read, write, listing or delete after
    the client's retries: the message names the object and the server's answer."""


class RequestError(EmingestError, ValueError):
    """A request (HTTP, SDK call) asks for something invalid: bad region, unknown level."""


class RequestTooLargeError(RequestError):
    """A request asks for more than a configured size limit (HTTP 413)."""


class JobCancelledError(EmingestError):
    """A job was cancelled; its volumes stay resumable (the same job again continues)."""


class MissingExtraError(EmingestError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


__all__ = [
    "CatalogError",
    "ConfigError",
    "ConversionError",
    "EmingestError",
    "EntryNotFoundError",
    "IntegrityError",
    "JobCancelledError",
    "LocalStorageError",
    "MissingExtraError",
    "RemoteFormatError",
    "RequestError",
    "RequestTooLargeError",
    "RunInterrupted",
    "SourceError",
    "TransientSourceError",
    "UnsupportedFormatError",
]
