"""How a skill reports failure."""


class SkillError(Exception):
    """A skill failed; ``retryable`` says whether another attempt could succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
