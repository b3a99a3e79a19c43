"""``python -m magnus``: the command line, with the running interpreter."""

from magnus.cli import main

main()
