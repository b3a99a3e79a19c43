"""The run log: its schema (``models``) and the store contract (``base``)."""
