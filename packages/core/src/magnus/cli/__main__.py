"""``python -m magnus.cli``: how an orchestrator and a parallel run call magnus back."""

from magnus.cli import main

main()
