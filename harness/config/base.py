"""The base of every configuration model: strict and immutable.

Every block of an experiment is a model of this kind, so a misspelt or unknown key is an
error that names the field (``extra="forbid"``) instead of a setting silently ignored, and a
validated spec cannot be changed afterwards (``frozen``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A model that rejects unknown keys and cannot be changed once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
