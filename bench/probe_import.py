"""Time ``import magnus`` in this interpreter and list the heavy modules it drags in.

Run with the interpreter of the tool under test; prints one JSON object. Standard library only,
so it runs in the magnus 0.5.1 environment too.
"""

from __future__ import annotations

import json
import sys
import time

#: Modules a cheap ``import magnus`` must not load (optional integrations and their clients).
HEAVY = ("boto3", "hvac", "mlflow", "git", "papermill")


def main() -> None:
    start = time.perf_counter()
    import magnus  # noqa: F401  (the import is what is measured)

    seconds = time.perf_counter() - start
    loaded = [name for name in HEAVY if name in sys.modules]
    print(json.dumps({"seconds": seconds, "heavy": loaded, "modules": len(sys.modules)}))


if __name__ == "__main__":
    main()
