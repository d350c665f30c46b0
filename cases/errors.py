"""The exception type of the `cases` package (bad command-line input, unusable output directory)."""


class CaseError(ValueError):
    """Invalid input for a case or its output directory."""
