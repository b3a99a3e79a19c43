"""The markers of magnus' hooks: ``hookspec`` for a specification, ``hookimpl`` for a plugin's.

A leaf module: a plugin, the specifications and the manager all import it, and it imports nothing
of magnus, so marking a hook never pulls in the rest of magnus.
"""

from __future__ import annotations

import pluggy

#: pluggy's project name: markers set ``magnus_spec``/``magnus_impl`` on what they mark
PROJECT_NAME = "magnus"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
