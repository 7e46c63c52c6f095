"""The seeded centres: 74 in 9 wilayats with 183 Omani staff; pure and deterministic."""

import random
from dataclasses import dataclass

from sanad.seed.catalogue import NAME_KINDS, NAME_WORDS, SERVICES, WILAYAT_CENTRES, WINNERS

TOTAL_OMANI_STAFF = 183
# Centres that opened in the last seeded year: they have no transactions the year before.
NEW_CENTRES = 6


@dataclass(frozen=True)
class Profile:
    """How well a centre works: drives its generated transactions."""

    speed: float  # running time as a multiple of ~1/3 of the SLA (lower is faster)
    rejection_rate: float
    mean_rating: float
    volume: float  # relative completions per Omani staff member


@dataclass(frozen=True)
class SeedCentre:
    """One centre to register, with the profile its history is generated from."""

    index: int
    licence_number: str
    name_ar: str
    name_en: str
    owner: str
    wilayat_code: str
    omani_staff: int
    total_staff: int
    service_codes: tuple[str, ...]
    profile: Profile
    award_place: int  # 1-3 for the report's winners, 0 otherwise
    opened_in_last_year: bool


WINNER_PROFILES = {
    1: Profile(speed=0.35, rejection_rate=0.008, mean_rating=4.85, volume=1.9),
    2: Profile(speed=0.45, rejection_rate=0.012, mean_rating=4.75, volume=1.8),
    3: Profile(speed=0.55, rejection_rate=0.015, mean_rating=4.65, volume=1.75),
}


def _other_profile(rng: random.Random) -> Profile:
    return Profile(
        speed=rng.uniform(0.7, 1.6),
        rejection_rate=rng.uniform(0.02, 0.08),
        mean_rating=rng.uniform(3.4, 4.4),
        volume=rng.uniform(0.6, 1.3),
    )


def _wilayat_slots() -> list[str]:
    """One wilayat code per non-winner centre, winners' places taken out."""
    slots: list[str] = []
    for code, count in WILAYAT_CENTRES:
        taken = sum(1 for w in WINNERS if w.wilayat_code == code)
        slots.extend([code] * (count - taken))
    return slots


def _newcomer_slots(slots: list[str]) -> set[int]:
    """The last slot of each of the largest wilayats, so every wilayat has centres every year."""
    last_of: dict[str, int] = {code: j for j, code in enumerate(slots)}
    largest = sorted(last_of, key=lambda code: -slots.count(code))[:NEW_CENTRES]
    return {last_of[code] for code in largest}


def _staff(rng: random.Random, others: int) -> list[int]:
    """Omani staff of the non-winners: 1-4 each, summing with the winners' to 183."""
    remaining = TOTAL_OMANI_STAFF - sum(w.omani_staff for w in WINNERS)
    staff = [2] * others
    extra = remaining - sum(staff)
    for index in rng.sample(range(others), extra):
        staff[index] += 1
    for _ in range(4):  # a few one-person and four-person centres, total unchanged
        low, high = rng.sample([i for i, s in enumerate(staff) if s == 2], 2)
        staff[low], staff[high] = 1, 3
    return staff


def _services(rng: random.Random, winner: bool) -> tuple[str, ...]:
    codes = [s.code for s in SERVICES]
    if winner:
        return tuple(codes)
    return tuple(sorted(rng.sample(codes, rng.randint(5, len(codes)))))


def plan_centres(seed: int, governorate: str = "DA") -> list[SeedCentre]:
    """The 74 centres of the dataset, winners first; the same seed gives the same centres."""
    rng = random.Random(f"centres-{seed}")  # noqa: S311 - sample data
    centres = [
        SeedCentre(
            index=i,
            licence_number=f"{governorate}-{w.wilayat_code.split('-')[1]}-{i + 1:04d}",
            name_ar=w.name_ar,
            name_en=w.name_en,
            owner=w.owner,
            wilayat_code=w.wilayat_code,
            omani_staff=w.omani_staff,
            total_staff=w.omani_staff + 1,
            service_codes=_services(rng, winner=True),
            profile=WINNER_PROFILES[w.place],
            award_place=w.place,
            opened_in_last_year=False,
        )
        for i, w in enumerate(WINNERS)
    ]
    slots = _wilayat_slots()
    names = [(w, k) for w in NAME_WORDS for k in NAME_KINDS]
    rng.shuffle(names)
    staff = _staff(rng, len(slots))
    newcomers = _newcomer_slots(slots)
    for j, wilayat in enumerate(slots):
        i = len(WINNERS) + j
        (word_ar, word_en), (kind_ar, kind_en) = names[j]
        centres.append(
            SeedCentre(
                index=i,
                licence_number=f"{governorate}-{wilayat.split('-')[1]}-{i + 1:04d}",
                name_ar=f"مركز {word_ar} {kind_ar}",
                name_en=f"{word_en} {kind_en} Centre",
                owner=f"مؤسسة {word_ar} للتجارة",
                wilayat_code=wilayat,
                omani_staff=staff[j],
                total_staff=staff[j] + rng.randint(0, 2),
                service_codes=_services(rng, winner=False),
                profile=_other_profile(rng),
                award_place=0,
                opened_in_last_year=j in newcomers,
            )
        )
    return centres
