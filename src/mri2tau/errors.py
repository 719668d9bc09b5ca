"""Errors that tell the user which subject, which file, what went wrong and how to fix it."""

from __future__ import annotations

from pathlib import Path


class PipelineInputError(RuntimeError):
    """Bad input for one subject: the message names subject, stage, file and a fix.

    Raised by every stage when data (not code) is at fault, so that Snakemake's failure
    summary and the rule log say exactly what to look at.
    """

    def __init__(
        self,
        reason: str,
        *,
        subject: str | None = None,
        stage: str | None = None,
        path: str | Path | None = None,
        fix: str | None = None,
    ) -> None:
        self.reason = reason
        self.subject = subject
        self.stage = stage
        self.path = None if path is None else str(path)
        self.fix = fix
        parts = []
        if subject:
            parts.append(f"subject {subject}")
        if stage:
            parts.append(f"stage {stage}")
        head = ", ".join(parts)
        msg = f"[{head}] {reason}" if head else reason
        if self.path:
            msg += f"\n  file: {self.path}"
        if fix:
            msg += f"\n  fix: {fix}"
        super().__init__(msg)
