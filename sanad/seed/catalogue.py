"""The names the seed draws from: wilayat sizes, award winners, centre names, e-services."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedService:
    """One catalogue e-service the seeded centres offer."""

    code: str
    agency_code: str
    name_ar: str
    name_en: str
    fee_baisa: int
    sla_hours: int
    weight: int  # relative popularity


SERVICES = (
    SeedService("ROP-VISA-RENEW", "ROP", "تجديد تأشيرة", "Visa renewal", 5000, 48, 18),
    SeedService(
        "ROP-VEHICLE-RENEW",
        "ROP",
        "تجديد ملكية مركبة",
        "Vehicle registration renewal",
        3000,
        24,
        20,
    ),
    SeedService("MOL-PERMIT-ISSUE", "MOL", "إصدار تصريح عمل", "Work permit issue", 4000, 72, 12),
    SeedService("MOL-PERMIT-RENEW", "MOL", "تجديد تصريح عمل", "Work permit renewal", 3000, 48, 14),
    SeedService(
        "MOCIIP-CR-ISSUE", "MOCIIP", "إصدار سجل تجاري", "Commercial registration", 5000, 72, 6
    ),
    SeedService(
        "MOCIIP-CR-RENEW",
        "MOCIIP",
        "تجديد سجل تجاري",
        "Commercial registration renewal",
        3000,
        24,
        12,
    ),
    SeedService(
        "MOHUP-LAND-CERT", "MOHUP", "شهادة بيانات أرض", "Land data certificate", 2000, 120, 6
    ),
    SeedService(
        "MOSD-AID-APPLY", "MOSD", "طلب مساعدة اجتماعية", "Social aid application", 1000, 168, 4
    ),
    SeedService(
        "MOH-FITNESS-EXAM", "MOH", "حجز فحص اللياقة الطبية", "Medical fitness booking", 2000, 48, 8
    ),
)

# Ad Dakhiliyah's 9 wilayats and how many of the 74 centres each has (sums to 74).
WILAYAT_CENTRES = (
    ("DA-NIZ", 17),
    ("DA-BAH", 10),
    ("DA-SAM", 11),
    ("DA-IZK", 9),
    ("DA-ADM", 6),
    ("DA-MAN", 5),
    ("DA-HAM", 6),
    ("DA-BID", 6),
    ("DA-JAK", 4),
)


@dataclass(frozen=True)
class Winner:
    """A centre named in the award report, with its wilayat and place."""

    place: int
    name_ar: str
    name_en: str
    owner: str
    wilayat_code: str
    omani_staff: int


# From the Oman News Agency report on the Ad Dakhiliyah Sanad award.
WINNERS = (
    Winner(
        1,
        "مركز أبراج الشرق",
        "Abraj Al Sharq Centre",
        "مؤسسة أبراج الشرق الوطنية",
        "DA-NIZ",
        3,
    ),
    Winner(
        2,
        "مركز جرنان للخدمات المتميزة",
        "Jarnan Centre for Distinguished Services",
        "مؤسسة جرنان للخدمات",
        "DA-IZK",
        3,
    ),
    Winner(
        3,
        "مركز الوسام للطباعة وتخليص المعاملات",
        "Al Wisam Centre for Printing and Transaction Clearance",
        "مؤسسة الوسام",
        "DA-BAH",
        2,
    ),
)

# Words for the other centres' names: (Arabic, English).
NAME_WORDS = (
    ("النخبة", "Al Nukhba"),
    ("الريادة", "Al Riyada"),
    ("الأمل", "Al Amal"),
    ("الفجر", "Al Fajr"),
    ("الواحة", "Al Waha"),
    ("الإنجاز", "Al Injaz"),
    ("السلام", "Al Salam"),
    ("الشموخ", "Al Shumukh"),
    ("التميز", "Al Tamayuz"),
    ("الفلج", "Al Falaj"),
    ("النخيل", "Al Nakheel"),
    ("القلعة", "Al Qalaa"),
    ("المستقبل", "Al Mustaqbal"),
    ("الصفوة", "Al Safwa"),
    ("الإتقان", "Al Itqan"),
    ("الرؤية", "Al Ruya"),
    ("البيان", "Al Bayan"),
    ("الأفق", "Al Ufuq"),
    ("الجوهرة", "Al Jawhara"),
    ("الوفاء", "Al Wafa"),
    ("السنابل", "Al Sanabil"),
    ("الشروق", "Al Shurooq"),
    ("المنار", "Al Manar"),
    ("الهدف", "Al Hadaf"),
)
NAME_KINDS = (
    ("لخدمات سند", "Sanad Services"),
    ("للخدمات الإلكترونية", "E-Services"),
    ("لتخليص المعاملات", "Transaction Clearance"),
)
