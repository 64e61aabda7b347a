"""The refusals services raise; nothing was written when one is raised."""


class AdminError(ValueError):
    """A refused admin change (tenants, rules, limits, egress, secrets, stop requests)."""


class UnknownIncident(AdminError):
    """No such incident, or (asked for a tenant) one of another tenant: told alike."""


class IncidentStateError(AdminError):
    """The incident's status does not allow the change (already resolved, rolled back, ...)."""


class ApiKeyError(ValueError):
    """A refused API key operation."""


class CandidateRequestError(ValueError):
    """A refused candidate request; the message names the problem."""


class Rejected(Exception):
    """A business rejection of a workflow's write, named by ``type`` (the activity raises
    it as a non-retryable ApplicationError of that type: retrying cannot change it)."""

    def __init__(self, message: str, *, type: str) -> None:  # noqa: A002 - ApplicationError's
        super().__init__(message)
        self.type = type
