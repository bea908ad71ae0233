"""Why an account is at risk: the severity scale and the reason every rule returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RiskLevel(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an account is at risk: `key` tells flags apart (one per champion); `text` is for reps."""

    code: str
    key: str
    text: str
    severity: RiskLevel
    details: dict[str, Any] = field(default_factory=dict)
