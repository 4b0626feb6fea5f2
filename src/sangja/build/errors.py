"""Build errors: one line that names the Containerfile and the line of the instruction."""

from __future__ import annotations

from ..errors import SangjaError

__all__ = ["BuildError", "StepFailed"]


class BuildError(SangjaError):
    """A build cannot go on. ``where`` ("Containerfile:12") is put in front once known."""

    engine_exit_code = 125

    def __init__(self, message: str, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def at(self, where: str) -> BuildError:
        """This error located at `where` (kept if it already has a place)."""
        if self.where is not None:
            return self
        located = type(self).__new__(type(self))
        located.__dict__.update(self.__dict__)
        BuildError.__init__(located, self.message, where)
        return located


class StepFailed(BuildError):
    """A RUN step exited non-zero: its exit code and the tail of its output. `sangja
    build` then exits 1, as `docker build` does."""

    engine_exit_code = 1

    def __init__(self, message: str, where: str | None = None, exit_code: int = 1,
                 tail: str = ""):
        super().__init__(message, where)
        self.exit_code = exit_code
        self.tail = tail
