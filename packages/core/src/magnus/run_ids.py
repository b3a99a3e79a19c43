"""Run ids: generating readable ones and checking the ones users supply.

A generated id reads ``<adjective>-<surname>-<HHMM>`` (e.g. ``tranquil-noether-0932``), as in
0.5, with word lists kept to ``[a-z]+`` so ids are always safe in shells, paths, URLs and
Kubernetes names. Supplied ids are checked, which 0.5 did not do: a run id becomes a folder
name, a catalog prefix and an Argo parameter.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from magnus.exceptions import ConfigurationError


def _words(text: str) -> tuple[str, ...]:
    # Word lists read and edit better as prose than as hundreds of quoted literals.
    return tuple(text.split())


ADJECTIVES: tuple[str, ...] = _words(
    """
    able admiring affable agile airy amber amiable ample amused ancient apt ardent astute azure
    balmy blissful bold bouncy brave breezy bright brisk bubbly busy calm candid capable careful
    caring charming cheerful chipper civil clever cordial cosmic cozy crafty crisp curious dapper
    daring dashing dazzling deft delightful devoted diligent dreamy dynamic eager earnest easy
    ecstatic elastic elated electric elegant eloquent emerald epic exact fabled fair faithful
    fancy fearless fervent festive fiery fluent focused fond frank friendly frosty frugal funny
    gallant genial gentle gifted glad gleaming glowing golden graceful gracious grand grateful
    gutsy happy hardy hearty helpful heroic honest hopeful humble jazzy jolly jovial joyful keen
    kind laughing lively loyal lucent lucid lucky luminous lush magical majestic mellow merry
    mighty mindful modest neat nifty nimble noble nostalgic novel optimal orderly patient
    peaceful pensive peppy placid playful plucky poised polite practical precise proud prudent
    quaint quick quiet quirky radiant rapid rare ready regal relaxed resolute robust rosy rustic
    sage savvy serene sharp shiny silent silky sincere sleek smart smooth snappy snug solid
    sparkling speedy spirited splendid spry stable stately steady stellar sturdy sunny superb
    supple swift tactful tender thankful thoughtful tidy tireless tranquil trusty upbeat valiant
    velvet verdant vibrant vigilant vivid warm wise wistful witty wonderful youthful zealous zen
    zesty
    """
)

# Surnames of scientists, mathematicians and engineers, written in plain ASCII.
SURNAMES: tuple[str, ...] = _words(
    """
    abel agnesi alhazen ampere archimedes avicenna avogadro babbage backus banneker bardeen bath
    bell benz blackwell bohr boltzmann bose boyle brattain brunel burnell cannon cantor carnot
    carson carver cauchy cerf chadwick chandrasekhar copernicus crick curie dalton darwin
    descartes dijkstra dirac drew easley edison eiffel einstein elion engelbart erdos euclid euler
    faraday fermat fermi feynman fleming fourier franklin galileo galois gauss geiger germain
    gibbs godel goldberg goodall hamilton hamming hawking heisenberg herschel hertz hilbert
    hodgkin hollerith hooke hopper hubble huygens hypatia jackson jacobi jemison jenner johnson
    joule kalam kay kepler khwarizmi kilby knuth koch kovalevskaya lagrange lamarr laplace
    lavoisier leavitt leibniz lemaitre liskov lister lovelace marconi maxwell mcclintock mccarthy
    meitner mendel mendeleev minsky mirzakhani morse nash neumann newton nightingale noether
    noyce ohm pascal pasteur pauli pauling payne planck poincare raman ramanujan riemann ritchie
    roebling rubin rutherford sabin sagan saha salk sanger sarabhai schrodinger shannon somerville
    stephenson telford tesla tharp thomson torvalds turing vaughan volta watt wiener wilkins wu
    yonath zuse zwicky
    """
)

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def generate_run_id(now: datetime | None = None) -> str:
    """A fresh run id ``<adjective>-<surname>-<HHMM>`` (local time, OS-entropy choices).

    Two runs started in the same minute collide with probability 1 in
    ``len(ADJECTIVES) * len(SURNAMES)``; the run log store refuses an existing id.
    """
    moment = now if now is not None else datetime.now()
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(SURNAMES)}-{moment:%H%M}"


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a usable run id, else raise ``ConfigurationError``.

    A run id has 1 to 128 characters among ASCII letters, digits, ``-`` and ``_``, and starts
    with a letter or digit. Generated ids and Argo's ``{{workflow.uid}}`` (a UUID) qualify.
    """
    if isinstance(run_id, str) and _RUN_ID.fullmatch(run_id):
        return run_id
    raise ConfigurationError(
        f"Invalid run id {run_id!r}: a run id has 1 to 128 characters among ASCII letters, "
        f"digits, '-' and '_', and starts with a letter or digit"
    )
