"""Docker's error replies: an HTTP status and a `{"message": ...}` body."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def from_exception(e: BaseException) -> ApiError:
    """The status Docker gives for an engine error (404 for what does not exist, 409 for a
    conflict with the object's state, 400 for a bad value, 500 otherwise)."""
    if isinstance(e, ApiError):
        return e
    from ..engine.records import NameInUse, NoSuchContainer, NoSuchVolume, VolumeInUse
    from ..image.db import AmbiguousImage, ImageNotFound

    msg = str(e)
    if isinstance(e, NoSuchContainer | NoSuchVolume):
        return ApiError(404, msg)
    if isinstance(e, ImageNotFound):
        return ApiError(404, f"No such image: {e.args[0] if e.args else msg}")
    if isinstance(e, NameInUse | VolumeInUse | AmbiguousImage):
        return ApiError(409, msg)
    cls = type(e).__name__
    if cls in ("InvalidOption", "InvalidReference", "UsageError", "JSONError", "FilterError",
               "FilterSyntaxError", "PruneFilterError"):
        return ApiError(400, msg)
    if cls in ("ImageInUse",):
        return ApiError(409, msg)
    if cls in ("NoSuchNetwork",):
        return ApiError(404, msg)
    low = msg.lower()
    if "is not running" in low or "is paused" in low or "is not paused" in low or (
            "cannot remove" in low) or "already in use" in low or "in use" in low:
        return ApiError(409, msg)
    if "no such" in low or "not found" in low:
        return ApiError(404, msg)
    if "invalid" in low or "conflicting options" in low:
        return ApiError(400, msg)
    return ApiError(500, msg)
