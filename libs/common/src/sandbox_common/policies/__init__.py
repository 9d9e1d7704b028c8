"""Lifecycle policies: the shape (model), the policy in force and its sources (effective), and
quiet-hours windows (quiet_hours). Pure domain: no I/O."""

from sandbox_common.policies.book import NO_GOVERNS, NO_POLICIES, Governs, Placed, PolicyBook
from sandbox_common.policies.effective import Layers, Level, Value, explain, resolve
from sandbox_common.policies.model import (
    Policy,
    PolicyError,
    QuietHours,
    decode_policy,
    encode_policy,
)

__all__ = [
    "NO_GOVERNS",
    "NO_POLICIES",
    "Governs",
    "Layers",
    "Level",
    "Placed",
    "Policy",
    "PolicyBook",
    "PolicyError",
    "QuietHours",
    "Value",
    "decode_policy",
    "encode_policy",
    "explain",
    "resolve",
]
