"""The targets, checked against the measured cells: PASS, MISS (by how much), N/A or INFO."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from measure import OK
from report import Cell, overhead_ms, summarise
from tools import FLOOR, KEDRO, OLD, OURS

DEFAULT_STORE = "chunked-fs"
HELP_LIMIT_S = 0.3
MAP_RSS_LIMIT_MB = 200.0
MAP_TIME_LIMIT_S = 10.0
#: marginal cost per step, (t(10,000) - t(1,000)) / 9,000, in ms, on the default store
MARGINAL_LIMIT_MS = {"noop": 0.5, "params": 0.8, "map": 1.0}
#: the map's length in ``--full`` beyond 10,000: an element's cost must not grow with it
BIG_MAP = 100_000
#: ours at N = 1,000 at least this many times faster than Kedro
KEDRO_FACTOR = 2.0
SMALL_FILES_LIMIT = 1.5
CATALOG_LIMIT = 1.3
#: the S3 catalog's put of a large file against boto3's upload_file with the same settings
S3_PUT_LIMIT = 1.10
OVERHEAD_FACTOR = 10.0
GROWTH_LIMIT = 12.0
#: lookups with 1,000 earlier runs in the store may take this much longer than with 1 (noise)
LOOKUP_NOISE = 1.2
NO_CHANGE_LIMIT_S = 2.0
REPORT_SIZE_LIMIT_MB = 5.0
REPORT_PAINT_LIMIT_S = 3.0
#: ``runs show`` of 10,000 steps and ``runs list`` of 10,000 runs, whole process
LOOKING_LIMIT_S = 1.0


@dataclass
class Verdict:
    target: str
    outcome: str  # PASS, MISS, N/A, or INFO (a figure reported, no target)
    detail: str

    def line(self) -> str:
        return f"- **{self.outcome}** {self.target}: {self.detail}"


def _find(cells: list[Cell], workload: str, n: int, store: str) -> Cell | None:
    for cell in cells:
        if (cell.workload, cell.n, cell.store) == (workload, n, store):
            return cell
    return None


def _seconds(cell: Cell | None, tool: str) -> float | None:
    summary = summarise(cell, tool) if cell else None
    return summary.seconds if summary and summary.status == OK else None


def per_step_overhead(cells: list[Cell], workload: str) -> Verdict:
    """Ours (default store, N=1000) at least 10x below 0.5.1 (file-system, largest N done)."""
    target = (
        f"{workload}: per-step overhead, ours {DEFAULT_STORE} N=1000 >= {OVERHEAD_FACTOR:.0f}x "
        "lower than 0.5.1 file-system at its largest completed N"
    )
    ours_cell = _find(cells, workload, 1000, DEFAULT_STORE)
    ours = overhead_ms(ours_cell, OURS) if ours_cell else None
    done = [
        cell
        for cell in cells
        if (cell.workload, cell.store) == (workload, "file-system") and overhead_ms(cell, OLD)
    ]
    if ours is None or not done:
        return Verdict(target, "N/A", "missing measurement (ours at N=1000 or any 0.5.1 run)")
    largest = max(done, key=lambda cell: cell.n)
    old = overhead_ms(largest, OLD)
    assert old is not None
    factor = old / ours if ours > 0 else float("inf")
    detail = (
        f"ours {ours:.2f} ms/step vs 0.5.1 {old:.2f} ms/step at N={largest.n}: {factor:.1f}x lower"
    )
    if factor >= OVERHEAD_FACTOR:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} (short by {OVERHEAD_FACTOR / factor:.2f}x)")


def linear_growth(cells: list[Cell], workload: str, store: str = DEFAULT_STORE) -> Verdict:
    target = f"{workload}: ours {store} time(10,000) <= {GROWTH_LIMIT:.0f} x time(1,000)"
    small = _seconds(_find(cells, workload, 1000, store), OURS)
    big_cell = _find(cells, workload, 10000, store)
    if big_cell is None:
        return Verdict(target, "N/A", "N=10,000 not run (needs --full)")
    big = _seconds(big_cell, OURS)
    if small is None or big is None:
        summary = summarise(big_cell, OURS)
        why = f"{summary.status}: {summary.error}" if summary else "not measured"
        return Verdict(target, "MISS", f"no completed pair of runs ({why})")
    growth = big / small
    detail = f"{small:.2f} s -> {big:.2f} s: {growth:.1f}x"
    return Verdict(target, "PASS" if growth <= GROWTH_LIMIT else "MISS", detail)


def map_memory(cells: list[Cell]) -> Verdict:
    target = (
        f"map over 10,000 ({DEFAULT_STORE}) in under {MAP_TIME_LIMIT_S:.0f} s and "
        f"{MAP_RSS_LIMIT_MB:.0f} MB"
    )
    cell = _find(cells, "map", 10000, DEFAULT_STORE)
    if cell is None:
        return Verdict(target, "N/A", "N=10,000 not run (needs --full)")
    summary = summarise(cell, OURS)
    if summary is None or summary.status != OK or summary.rss_mb is None:
        why = f"{summary.status}: {summary.error}" if summary else "not measured"
        return Verdict(target, "MISS", f"did not complete ({why})")
    assert summary.seconds is not None
    detail = f"{summary.rss_mb:.0f} MB in {summary.seconds:.1f} s"
    if summary.rss_mb < MAP_RSS_LIMIT_MB and summary.seconds < MAP_TIME_LIMIT_S:
        return Verdict(target, "PASS", detail)
    over = max(summary.seconds / MAP_TIME_LIMIT_S, summary.rss_mb / MAP_RSS_LIMIT_MB)
    return Verdict(target, "MISS", f"{detail} ({over:.2f}x over)")


def marginal_cost(cells: list[Cell], workload: str) -> Verdict:
    """(t(10,000) - t(1,000)) / 9,000 on the default store: start-up drops out."""
    limit = MARGINAL_LIMIT_MS[workload]
    target = (
        f"{workload}: marginal cost per step, (t(10,000) - t(1,000)) / 9,000, ours "
        f"{DEFAULT_STORE} <= {limit} ms"
    )
    small = _seconds(_find(cells, workload, 1000, DEFAULT_STORE), OURS)
    big = _seconds(_find(cells, workload, 10000, DEFAULT_STORE), OURS)
    if small is None or big is None:
        return Verdict(target, "N/A", "needs N=1,000 and N=10,000 (--full)")
    marginal = (big - small) / 9000 * 1000
    detail = f"{small:.2f} s -> {big:.2f} s: {marginal:.2f} ms per step"
    if marginal <= limit:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({marginal / limit:.2f}x over)")


def big_map(cells: list[Cell]) -> Verdict:
    """(t(100,000) - t(10,000)) / 90,000 for the map: an element's cost whatever the length."""
    limit = MARGINAL_LIMIT_MS["map"]
    target = (
        f"map over {BIG_MAP:,}: marginal cost per element, (t({BIG_MAP:,}) - t(10,000)) / "
        f"{BIG_MAP - 10000:,}, ours {DEFAULT_STORE} <= {limit} ms"
    )
    big_cell = _find(cells, "map", BIG_MAP, DEFAULT_STORE)
    if big_cell is None:
        return Verdict(target, "N/A", f"N={BIG_MAP:,} not run (needs --full)")
    small = _seconds(_find(cells, "map", 10000, DEFAULT_STORE), OURS)
    big = _seconds(big_cell, OURS)
    if small is None or big is None:
        summary = summarise(big_cell, OURS)
        why = f"{summary.status}: {summary.error}" if summary else "not measured"
        return Verdict(target, "MISS", f"no completed pair of runs ({why})")
    marginal = (big - small) / (BIG_MAP - 10000) * 1000
    summary = summarise(big_cell, OURS)
    memory = f", {summary.rss_mb:.0f} MB" if summary and summary.rss_mb else ""
    detail = f"{small:.1f} s -> {big:.1f} s{memory}: {marginal:.2f} ms per element"
    if marginal <= limit:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({marginal / limit:.2f}x over)")


def versus_kedro(cells: list[Cell], workload: str) -> Verdict:
    """The whole run at N = 1,000 at least twice as fast as Kedro's, side by side."""
    target = f"{workload}: ours {DEFAULT_STORE} N=1000 >= {KEDRO_FACTOR:.0f}x faster than Kedro"
    cell = _find(cells, workload, 1000, DEFAULT_STORE)
    ours, kedro = _seconds(cell, OURS), _seconds(cell, KEDRO)
    if ours is None or kedro is None:
        return Verdict(target, "N/A", "not measured (needs ours and kedro at N=1000)")
    factor = kedro / ours
    detail = f"ours {ours:.2f} s vs Kedro {kedro:.2f} s: {factor:.2f}x"
    if factor >= KEDRO_FACTOR:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} (short by {KEDRO_FACTOR / factor:.2f}x)")


def small_files(cells: list[Cell], workload: str) -> Verdict:
    """10,000 small files put and got within 1.5x of the hashlib + copy floor."""
    how = "over the originals" if workload == "catalog-10k" else "originals removed"
    target = f"catalog put+get of 10,000 small files ({how}) within {SMALL_FILES_LIMIT}x of floor"
    cell = _find(cells, workload, 10000, "")
    ours, floor = _seconds(cell, OURS), _seconds(cell, FLOOR)
    if ours is None or floor is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    ratio = ours / floor
    detail = f"ours {ours:.2f} s vs floor {floor:.2f} s: {ratio:.2f}x"
    if ratio <= SMALL_FILES_LIMIT:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({ratio / SMALL_FILES_LIMIT:.2f}x over)")


def catalog_speed(cells: list[Cell], workload: str = "catalog-1g") -> Verdict:
    """Ours within the limit of the floor; ``workload`` picks the get over the original or not."""
    how = "get over the original" if workload == "catalog-1g" else "get after removing it"
    target = f"catalog put+get of 1 GB ({how}) within {CATALOG_LIMIT}x of hashlib+copyfile"
    cell = _find(cells, workload, 1, "")
    ours, floor = _seconds(cell, OURS), _seconds(cell, FLOOR)
    if ours is None or floor is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    ratio = ours / floor
    detail = f"ours {ours:.2f} s vs floor {floor:.2f} s: {ratio:.2f}x"
    if ratio <= CATALOG_LIMIT:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({ratio / CATALOG_LIMIT:.2f}x over the limit)")


def s3_put(cells: list[Cell]) -> Verdict:
    """The ``s3`` catalog's put of 200 MiB within 10% of raw boto3 (same client and config)."""
    target = (
        f"S3 catalog put of a 200 MiB file within {S3_PUT_LIMIT:.2f}x of boto3 upload_file "
        "(same client and TransferConfig, moto on this machine)"
    )
    cell = _find(cells, "catalog-s3-put", 1, "")
    ours, floor = _seconds(cell, OURS), _seconds(cell, FLOOR)
    if ours is None or floor is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    ratio = ours / floor
    detail = f"ours {ours:.2f} s vs boto3 {floor:.2f} s: {ratio:.2f}x"
    if ratio <= S3_PUT_LIMIT:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({ratio / S3_PUT_LIMIT:.2f}x over the limit)")


def help_speed(cells: list[Cell]) -> Verdict:
    target = f"`magnus --help` under {HELP_LIMIT_S} s"
    seconds = _seconds(_find(cells, "help", 1, ""), OURS)
    if seconds is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    detail = f"{seconds:.3f} s"
    if seconds < HELP_LIMIT_S:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({seconds - HELP_LIMIT_S:.3f} s over)")


def import_purity(heavy: dict[str, list[str]]) -> Verdict:
    target = "`import magnus` imports none of boto3, hvac, mlflow, git, papermill"
    if OURS not in heavy:
        return Verdict(target, "N/A", "not measured")
    loaded = heavy[OURS]
    old = ", ".join(heavy.get(OLD, [])) or "none"
    if not loaded:
        return Verdict(target, "PASS", f"ours imports none (0.5.1 imports: {old})")
    return Verdict(target, "MISS", f"ours imports {', '.join(loaded)} (0.5.1 imports: {old})")


def lookup_flat(cells: list[Cell]) -> Verdict:
    """``find_fingerprint`` costs the same with 1,000 earlier runs in the store as with 1."""
    target = (
        f"find_fingerprint with 1,000 earlier runs in the store within {LOOKUP_NOISE}x of "
        "with 1 (chunked-fs)"
    )
    one_cell = next((cell for cell in cells if cell.workload == "lookup-1"), None)
    many_cell = next((cell for cell in cells if cell.workload == "lookup-1000"), None)
    one, many = _seconds(one_cell, OURS), _seconds(many_cell, OURS)
    if one_cell is None or one is None or many is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    per = 1e6 / one_cell.n
    ratio = many / one
    detail = f"{one * per:.0f} us vs {many * per:.0f} us per lookup: {ratio:.2f}x"
    runs = [
        _seconds(next((c for c in cells if c.workload == key), None), OURS)
        for key in ("reuse-hit-1", "reuse-hit-1000")
    ]
    if runs[0] is not None and runs[1] is not None:
        detail += (
            f"; the --reuse run of {one_cell.n} steps, all hits: {runs[0]:.2f} s vs "
            f"{runs[1]:.2f} s ({runs[1] / runs[0]:.2f}x)"
        )
    return Verdict(target, "PASS" if ratio <= LOOKUP_NOISE else "MISS", detail)


def reuse_cost(cells: list[Cell]) -> Verdict:
    """What a run costs when every step is reused, against the same run computing them all."""
    target = "a --reuse run whose steps all hit, against the first run (reported, no target)"
    first = next((cell for cell in cells if cell.workload == "reuse-miss"), None)
    hit = next((cell for cell in cells if cell.workload == "reuse-hit-1"), None)
    if first is None or hit is None:
        return Verdict(target, "N/A", "not measured")
    first_s, hit_s = _seconds(first, OURS), _seconds(hit, OURS)
    if first_s is None or hit_s is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    detail = f"{hit.n} steps: first run {first_s:.2f} s, all reused {hit_s:.2f} s"
    first_ms, hit_ms = overhead_ms(first, OURS), overhead_ms(hit, OURS)
    if first_ms is not None and hit_ms is not None:
        detail += f"; {first_ms:.2f} ms per step run, {hit_ms:.2f} ms per step reused"
    return Verdict(target, "INFO", detail)


def no_change_check(cells: list[Cell]) -> Verdict:
    """Finding that 100,000 hashed files are unchanged reads none of them and takes < 2 s."""
    target = f"no-change check of 100,000 files under {NO_CHANGE_LIMIT_S:.0f} s"
    alone = _seconds(next((c for c in cells if c.workload == "stat-check"), None), OURS)
    put = _seconds(next((c for c in cells if c.workload == "stat-check-put"), None), OURS)
    if alone is None and put is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    parts = []
    if alone is not None:
        parts.append(f"stat cache {alone:.2f} s")
    if put is not None:
        parts.append(f"catalog put of them all {put:.2f} s")
    worst = max(seconds for seconds in (alone, put) if seconds is not None)
    outcome = "PASS" if worst < NO_CHANGE_LIMIT_S else "MISS"
    return Verdict(target, outcome, "; ".join(parts))


def _figure(cell: Cell | None, name: str) -> float | None:
    """The median of a figure our runs in ``cell`` reported beside their time."""
    runs = cell.runs.get(OURS, []) if cell else []
    values = [run.figures[name] for run in runs if run.status == OK and name in run.figures]
    return statistics.median(values) if values else None


def report_size(cells: list[Cell]) -> Verdict:
    """The report of a map over 10,000 elements is under 5 MB (10^6 bytes a MB)."""
    target = f"report of a map over 10,000 elements under {REPORT_SIZE_LIMIT_MB:.0f} MB"
    paint = next((cell for cell in cells if cell.workload == "report-paint"), None)
    size = _figure(paint, "bytes")
    if size is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    megabytes = size / 1e6
    detail = f"{size:,.0f} bytes ({megabytes:.2f} MB)"
    written = _seconds(next((c for c in cells if c.workload == "report-write"), None), OURS)
    if written is not None:
        detail += f", written by `magnus report` in {written:.2f} s"
    if megabytes < REPORT_SIZE_LIMIT_MB:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({megabytes - REPORT_SIZE_LIMIT_MB:.2f} MB over)")


def report_paint(cells: list[Cell]) -> Verdict:
    """The page's script has drawn everything within 3 s of the navigation's start."""
    target = (
        "report of a map over 10,000 elements paints in headless chromium under "
        f"{REPORT_PAINT_LIMIT_S:.0f} s"
    )
    paint = next((cell for cell in cells if cell.workload == "report-paint"), None)
    seconds = _seconds(paint, OURS)
    if seconds is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    detail = f"{seconds:.2f} s from navigation start to the end of drawing"
    browser = _figure(paint, "browser_seconds")
    if browser is not None:
        detail += f" (the whole chromium run: {browser:.2f} s)"
    if seconds < REPORT_PAINT_LIMIT_S:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({seconds - REPORT_PAINT_LIMIT_S:.2f} s over)")


def looking(cells: list[Cell], what: str) -> Verdict:
    """``magnus runs show`` of a 10,000-step run, or ``runs list`` of 10,000 runs, under 1 s."""
    subject = {"show": "of a 10,000-step run", "list": "over 10,000 runs"}[what]
    target = f"`magnus runs {what}` {subject} under {LOOKING_LIMIT_S:.0f} s"
    cell = next((c for c in cells if c.workload == f"looking-{what}"), None)
    seconds = _seconds(cell, OURS)
    if seconds is None:
        return Verdict(target, "N/A", "not measured (or failed)")
    floor = _seconds(cell, FLOOR)
    detail = f"{seconds:.2f} s" + (f" (floor: {floor:.2f} s)" if floor is not None else "")
    if seconds < LOOKING_LIMIT_S:
        return Verdict(target, "PASS", detail)
    return Verdict(target, "MISS", f"{detail} ({seconds - LOOKING_LIMIT_S:.2f} s over)")


def check_all(cells: list[Cell], heavy: dict[str, list[str]]) -> list[Verdict]:
    return [
        per_step_overhead(cells, "noop"),
        per_step_overhead(cells, "params"),
        *(marginal_cost(cells, workload) for workload in MARGINAL_LIMIT_MS),
        *(versus_kedro(cells, workload) for workload in MARGINAL_LIMIT_MS),
        *(
            linear_growth(cells, workload, store)
            for store in (DEFAULT_STORE, "file-system")
            for workload in MARGINAL_LIMIT_MS
        ),
        map_memory(cells),
        big_map(cells),
        catalog_speed(cells),
        catalog_speed(cells, "catalog-1g-absent"),
        small_files(cells, "catalog-10k"),
        small_files(cells, "catalog-10k-absent"),
        s3_put(cells),
        help_speed(cells),
        import_purity(heavy),
        lookup_flat(cells),
        reuse_cost(cells),
        no_change_check(cells),
        report_size(cells),
        report_paint(cells),
        looking(cells, "show"),
        looking(cells, "list"),
    ]
