"""The SDK twin of examples/python-tasks.yaml: same graph, same dag_hash.

Run it from the repository root: python -m examples.sdk_pipeline
"""

from examples.functions import prepare, report, train
from magnus import Catalog, Pipeline, PythonTask


def main() -> None:
    pipeline = Pipeline(
        description="Parameters flow from step to step",
        steps=[
            PythonTask(name="prepare", function=prepare, catalog=Catalog(put=["data/rows.csv"])),
            PythonTask(name="train", function=train),
            PythonTask(name="report", function=report),
        ],
    )
    pipeline.execute(parameters_file="examples/parameters.yaml")


if __name__ == "__main__":
    main()
