"""magnus-executor-argo: render magnus pipelines as Argo Workflows.

``magnus execute -f pipeline.yaml -c argo.yaml`` writes the workflow (``output_file``); nothing
runs until it is submitted to Argo, whose containers call magnus back for every step.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
