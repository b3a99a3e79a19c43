"""Functions the example pipelines call. Plain python: magnus binds parameters to arguments."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from magnus import get_from_catalog, get_run_id, put_in_catalog


class TrainingConfig(BaseModel):
    learning_rate: float
    epochs: int


def prepare(rows: int = 3) -> dict:
    """Make some data and say how much."""
    data = Path("data")
    data.mkdir(exist_ok=True)
    (data / "rows.csv").write_text("\n".join(f"{i},{i * i}" for i in range(rows)) + "\n")
    print(f"prepared {rows} rows")
    return {"rows": rows, "source": "data/rows.csv"}


DEFAULT_CONFIG = TrainingConfig(learning_rate=0.01, epochs=10)


def train(rows: int, config: TrainingConfig = DEFAULT_CONFIG) -> dict:
    """Pretend to train: a typed pydantic parameter in, metrics out."""
    score = round(rows * config.learning_rate * config.epochs, 4)
    print(f"trained on {rows} rows with lr={config.learning_rate}: score {score}")
    return {"score": score}


def report(score: float, rows: int) -> None:
    """Print what the run produced."""
    print(f"run {get_run_id()}: score {score} from {rows} rows")


def write_greeting() -> None:
    """Write a file and put it in the catalog through the API."""
    Path("data").mkdir(exist_ok=True)
    Path("data/hello.txt").write_text("Hello from magnus\n")
    put_in_catalog("data/hello.txt")


def read_greeting() -> dict:
    """Get the file back from the catalog into a fresh folder and read it."""
    get_from_catalog("data/hello.txt", destination_folder="fetched")
    text = Path("fetched/data/hello.txt").read_text().strip()
    return {"greeting": text}


def flaky(fail_times: int = 1) -> None:
    """Fail the first ``fail_times`` attempts of a run (counted in a marker file)."""
    marker = Path("data") / f"flaky-{get_run_id()}"
    marker.parent.mkdir(exist_ok=True)
    seen = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(seen + 1))
    if seen < fail_times:
        raise RuntimeError(f"failing on purpose (attempt {seen + 1})")


def make_chunks(count: int = 3) -> dict:
    """A list parameter for a map to iterate on."""
    return {"chunks": [i * 10 for i in range(count)]}


def render(chunk: int, scale: int = 2) -> dict:
    """One map element: its own value in, a parameter out (reduced to a list on the map)."""
    print(f"rendering chunk {chunk}")
    return {"rendered": chunk * scale}


def summarise(rendered: list) -> dict:
    """After the map: the branches' values, in element order."""
    print(f"rendered {rendered}")
    return {"total": sum(rendered)}


def fit(model: str) -> dict:
    """One parallel branch."""
    return {f"{model}_score": len(model)}


def measure(rows: int = 3) -> dict:
    """Chooses a conditional's branch: the size of the data."""
    return {"size": "large" if rows > 100 else "small"}


def quick_fit() -> dict:
    """The conditional's branch for small data."""
    return {"method": "quick"}


def careful_fit() -> dict:
    """The conditional's branch for large data."""
    return {"method": "careful"}


def improve(loop_iteration: int, loss: float = 1.0) -> dict:
    """One iteration of a loop: halves the loss; the loop stops once it is small enough."""
    loss = loss / 2
    print(f"iteration {loop_iteration}: loss {loss}")
    return {"loss": loss, "converged": loss < 0.1}
