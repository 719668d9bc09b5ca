"""Pairing rules: which PET series stands for a visit, which T1 goes with it, which visits are kept.

* **PET per visit** (a visit = the tau PET series of one scan date): the first step of
  ``data.pet_input``'s preference (:data:`mri2tau.convert.classify.PET_INPUT_STEPS`: auto = raw,
  else ADNI step 2 "Co-registered, Averaged"; raw; averaged; uniform = step 4, else 3). Several
  series of that step on one date: the most files, then the earliest series time, then the folder.
* **T1 per PET**: among the T1s within ``max_days`` of the PET, the best kind
  (:data:`mri2tau.convert.classify.T1_KINDS`: original before REPEAT, ``_ND``, reformats and
  ADNI-processed T1s), then the closest date (equal gaps: the earlier T1), then on one date the
  earliest series time, then the lowest image ID, then the folder.
* **Visits**: ``first`` (the papers' rule) keeps the earliest visit that has a T1 within
  ``max_days``; ``all`` keeps every such visit.

Every series not used gets a (category, reason) for ``excluded.tsv``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass

from mri2tau.convert.classify import PET_INPUT_STEPS, T1_KIND_NAMES, T1_KINDS, describe_step
from mri2tau.io.adni import SeriesFolder

SESSIONS = ("first", "all")


@dataclass(frozen=True)
class Candidate:
    """A candidate series with what its header says.

    ``kind``: the T1 kind (:data:`T1_KINDS`); ``step``: the PET's ADNI processing step (0 = raw,
    ``None`` = processed, step unknown); ``frames``: PET frames declared; ``uid``: SeriesInstanceUID.
    """

    folder: SeriesFolder
    date: dt.date
    manufacturer: str
    uid: str = ""
    n_files: int = 0
    kind: str = "original"
    step: int | None = 0
    frames: int = 1
    when: dt.datetime | None = None


@dataclass(frozen=True)
class Unused:
    """A candidate series that is not used, and why."""

    series: Candidate
    category: str
    reason: str


def _image_number(c: Candidate) -> int:
    digits = re.sub(r"\D", "", c.folder.image_id)
    return int(digits) if digits else 0


def _tiebreak(c: Candidate) -> tuple:
    return (c.when or dt.datetime.combine(c.date, dt.time(0)), _image_number(c), str(c.folder.series_dir))


def choose_pet(visit: list[Candidate], pet_input: str) -> tuple[Candidate | None, list[Unused]]:
    """The PET series of one visit that ``pet_input`` uses, and why each other one is not used."""
    preference = PET_INPUT_STEPS[pet_input]
    usable = sorted((c for c in visit if c.step in preference),
                    key=lambda c: (preference.index(c.step), -c.n_files, *_tiebreak(c)))
    chosen = usable[0] if usable else None
    unused = []
    for c in visit:
        if c is chosen:
            continue
        what = describe_step(c.step)
        category = "raw_not_requested" if c.step == 0 else f"processed_step{c.step}" if c.step else "processed"
        if chosen is not None and c.step == chosen.step:
            unused.append(Unused(c, "duplicate", f"duplicate {what} series on {c.date}: {chosen.folder.image_id} "
                                                 "is used (most files, then earliest series time)"))
        elif chosen is not None:
            unused.append(Unused(c, category, f"{what}: the {describe_step(chosen.step)} series "
                                              f"{chosen.folder.image_id} of the same visit is used "
                                              f"(data.pet_input: {pet_input})"))
        else:
            unused.append(Unused(c, category, f"{what}: not used with data.pet_input: {pet_input}"))
    return chosen, unused


def t1_order(t1: Candidate, pet_date: dt.date) -> tuple:
    """Sort key of a T1 for a PET on ``pet_date`` (smallest = preferred; see the module docstring)."""
    return (T1_KINDS.index(t1.kind), abs((t1.date - pet_date).days), t1.date, *_tiebreak(t1))


def best_t1(t1s: list[Candidate], pet_date: dt.date, max_days: int) -> Candidate | None:
    """The T1 for a PET on ``pet_date``: best kind, then closest, within ``max_days``."""
    within = [t for t in t1s if abs((t.date - pet_date).days) <= max_days]
    return min(within, key=lambda t: t1_order(t, pet_date)) if within else None


def pair_visits(t1s: list[Candidate], pets: list[Candidate], *, max_days: int, pet_input: str = "auto",
                sessions: str = "first") -> tuple[list[tuple[Candidate, Candidate]], list[Unused]]:
    """(T1, PET) per kept visit, earliest first, and every PET series not used (with its reason)."""
    if sessions not in SESSIONS:
        raise ValueError(f"data.sessions must be one of {SESSIONS}, got {sessions!r}")
    visits: dict[dt.date, list[Candidate]] = defaultdict(list)
    for pet in pets:
        visits[pet.date].append(pet)
    pairs, unused = [], []
    for date in sorted(visits):
        pet, others = choose_pet(visits[date], pet_input)
        unused.extend(others)
        if pet is None:
            continue
        t1 = best_t1(t1s, date, max_days)
        if t1 is None:
            closest = min((abs((t.date - date).days) for t in t1s), default=None)
            gap = f" (closest gap {closest} days)" if closest is not None else " (no T1 at all)"
            unused.append(Unused(pet, "no_t1_in_window", f"no T1 within {max_days} days of this tau PET{gap}"))
        elif sessions == "first" and pairs:
            unused.append(Unused(pet, "later_visit", f"later tau PET visit: data.sessions: first keeps the "
                                                     f"earliest pairable visit ({pairs[0][1].date})"))
        else:
            pairs.append((t1, pet))
    return pairs, unused


def pair_series(t1s: list[Candidate], pets: list[Candidate], max_days: int) -> tuple[Candidate, Candidate] | None:
    """The papers' rule: the earliest PET with a T1 within ``max_days``, and its T1."""
    pairs, _ = pair_visits(t1s, pets, max_days=max_days)
    return pairs[0] if pairs else None


def unused_t1s(t1s: list[Candidate], pairs: list[tuple[Candidate, Candidate]]) -> list[Unused]:
    """Why each T1 that no kept pair uses is left out."""
    used = {id(t1): pet for t1, pet in pairs}
    out = []
    for t1 in t1s:
        if id(t1) in used:
            continue
        if not pairs:
            out.append(Unused(t1, "unpaired_t1", "no tau PET visit of the subject is paired (see its other rows)"))
            continue
        chosen, pet = min(pairs, key=lambda p: abs((p[0].date - t1.date).days))
        this = f"this one is {T1_KIND_NAMES[t1.kind]}, {abs((t1.date - pet.date).days)} days from that PET"
        used_text = (f"the T1 used with the tau PET of {pet.date} is {chosen.folder.image_id} "
                     f"({T1_KIND_NAMES[chosen.kind]}, {abs((chosen.date - pet.date).days)} days); {this}")
        if t1.date == chosen.date and t1.kind == chosen.kind:
            out.append(Unused(t1, "duplicate", f"duplicate T1 on {t1.date}: {used_text} (earliest series time, "
                                               "then lowest image ID)"))
        elif T1_KINDS.index(t1.kind) > T1_KINDS.index(chosen.kind):
            ranked = f"{T1_KIND_NAMES[t1.kind]} T1, ranked below {T1_KIND_NAMES[chosen.kind]}"
            out.append(Unused(t1, f"t1_{t1.kind}", f"{ranked}: {used_text}"))
        else:
            out.append(Unused(t1, "not_closest_t1", f"not the closest T1: {used_text}"))
    return out
