"""sanadctl seed: the Ad Dakhiliyah demo dataset, its centres registered over gRPC and its
history loaded through the batch queue (sanad.seed)."""

import argparse
import asyncio
import math
import os

from sanad.amqp.handling import BROKER_ERRORS
from sanad.cli.arguments import bounded, int64
from sanad.cli.broker import DEFAULT_AMQP_URL, NOT_AN_AMQP_URL, failure, remedy, where
from sanad.cli.client import Client
from sanad.cli.output import Printer
from sanad.domain.clock import FIRST_YEAR, utcnow
from sanad.seed.batches import ended
from sanad.seed.plan import SeedPlan
from sanad.seed.run import SeedSummary, Targets, seed

# Largest volume a seed takes, as a multiple of the real one.
MAX_SCALE = 100.0
# Items per batch: the batch worker takes at most 5000 (SANAD_BATCH_MAX_ITEMS' default).
MAX_BATCH_SIZE = 5000


def scale(text: str) -> float:
    """An argparse type for the fraction (or multiple) of the real volume: above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SCALE):
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_SCALE:g}")
    return value


def years(text: str) -> tuple[int, ...]:
    """An argparse type for comma-separated years, e.g. 2023,2024; each once, in order."""
    found: list[int] = []
    for part in text.split(","):
        try:
            year = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a year: {part.strip()!r} (comma-separated years, e.g. 2023,2024)"
            ) from None
        # Each transaction starts and finishes inside its year: the batch worker takes history
        # from FIRST_YEAR to its arrival, so a year not yet over had items refused and sent
        # again 20 times (9998 was still going after 5 minutes).
        last = utcnow().year - 1
        if not FIRST_YEAR <= year <= last:
            raise argparse.ArgumentTypeError(
                f"{year}: a year is {FIRST_YEAR} to {last} (statistics begin in {FIRST_YEAR},"
                " and the seed's transactions fill their whole year)"
            )
        found.append(year)
    return tuple(dict.fromkeys(found))


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register seed."""
    demo = commands.add_parser("seed", help="load the Ad Dakhiliyah 2023-2024 demo dataset")
    demo.add_argument("--governorate", default="DA", choices=["DA"])
    demo.add_argument(
        "--years", type=years, default="2023,2024", help="comma-separated (default 2023,2024)"
    )
    demo.add_argument("--seed", type=int64, default=2024, help="random seed (default 2024)")
    demo.add_argument("--scale", type=scale, default=1.0, help="fraction of the volume (1.0)")
    demo.add_argument("--batch-size", type=bounded(1, MAX_BATCH_SIZE), default=500)
    demo.add_argument(
        "--amqp-url",
        default=os.environ.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL),
        help="broker of the batch queue (env SANAD_AMQP_URL; default the local dev broker)",
    )
    demo.add_argument("--amqp-prefix", default=os.environ.get("SANAD_AMQP_PREFIX", "sanad"))
    demo.set_defaults(handler=run_seed)


def run_seed(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Register the demo centres and load their history through the batch queue; 1 when the
    broker failed it or the workers refused any of it."""
    if where(args.amqp_url) is None:
        printer.error(NOT_AN_AMQP_URL)
        return 2
    plan = SeedPlan(
        seed=args.seed, governorate=args.governorate, years=args.years, scale=args.scale
    )
    targets = Targets(
        registry=client.registry_target,
        amqp_url=args.amqp_url,
        amqp_prefix=args.amqp_prefix,
        batch_size=args.batch_size,
        timeout_s=client.timeout,
        credentials=client.credentials(),
        token=client.token,
    )
    try:
        summary = asyncio.run(seed(plan, targets))
    except BROKER_ERRORS as error:
        reason = failure(error, "a batch") + remedy(error)
        printer.error(
            f"seed history not loaded: RabbitMQ at {where(args.amqp_url)}: {ended(reason)}"
            " Seed again once it takes batches: batches answered are answered the same, never"
            " stored twice"
        )
        return 1
    _print_summary(printer, summary)
    for centre in summary.not_active:
        printer.warning(
            f"centre {centre} left as the registry has it: the seed takes only new licences to"
            " ACTIVE; its history is loaded all the same"
        )
    for problem in summary.load.problems[:10]:
        printer.error(problem)
    return 0 if not summary.load.problems else 1


def _print_summary(printer: Printer, summary: SeedSummary) -> None:
    """What was seeded: one JSON object with --json, else aligned lines."""
    load = summary.load
    figures: list[tuple[str, int | float]] = [
        ("centres", summary.centres),
        ("wilayats", summary.wilayats),
        ("omani_staff", summary.omani_staff),
        *((f"completed_{year}", n) for year, n in summary.completed_by_year.items()),
        ("batches", load.batches),
        ("items_accepted", load.accepted),
        ("items_rejected", load.rejected),
        ("batches_retried", load.retried),
        ("seconds", round(summary.seconds, 1)),
    ]
    if printer.as_json:
        printer.json(dict(figures))
    else:
        printer.fields([(name, f"{value:,}") for name, value in figures])
