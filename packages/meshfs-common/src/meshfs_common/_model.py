"""`Model`, the base of every wire model (in its own module so that the model modules can
share it without importing each other)."""

from __future__ import annotations

import msgspec


class Model(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Base of all wire models."""
