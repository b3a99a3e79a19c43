"""Secrets: the contract, the record of the secrets served in a run, and the built-in providers.

``base`` holds the contract (``BaseSecrets``); ``served`` records the names of the secrets a run
served so that every process of the run masks them; ``do_nothing``, ``dotenv`` and ``env`` are the
built-in ``do-nothing``, ``dotenv`` and ``env-secrets-manager`` providers. The names below are what
plugins import from ``magnus.secrets``.
"""

from magnus.secrets.base import BaseSecrets
from magnus.secrets.do_nothing import DoNothingSecrets
from magnus.secrets.dotenv import DotenvSecrets
from magnus.secrets.env import EnvSecretsManager
from magnus.secrets.served import (
    SERVED_KEY,
    RunRecord,
    mask_secrets_served_in_run,
    recording_served,
)

__all__ = [
    "SERVED_KEY",
    "BaseSecrets",
    "DoNothingSecrets",
    "DotenvSecrets",
    "EnvSecretsManager",
    "RunRecord",
    "mask_secrets_served_in_run",
    "recording_served",
]
