"""Operator commands over the metrics service: stats, report, leaderboard."""

import argparse
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from sanad.cli.arguments import int32, int64
from sanad.cli.client import Client
from sanad.cli.output import Printer, fee, money
from sanad.domain.clock import utcnow
from sanad.v1 import metrics_pb2


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register stats, report and leaderboard; report and leaderboard default to the current
    year (UTC), read as the command line is built."""
    this_year = utcnow().year
    year_help = f"the year (default: the current one in UTC, {this_year})"
    stats = commands.add_parser("stats", help="a centre's or a wilayat's transaction counters")
    stats.add_argument("center_id", nargs="?", default="")
    stats.add_argument("--wilayat", default="", help="a wilayat's counters instead, e.g. DA-NIZ")
    stats.add_argument("--year", type=int, help="only this year (default: all time)")
    stats.set_defaults(handler=show_stats)

    report = commands.add_parser("report", help="a governorate's figures for a year")
    report.add_argument("--governorate", default="DA", help="governorate code (default DA)")
    report.add_argument("--year", type=int32, default=this_year, help=year_help)
    report.set_defaults(handler=show_report)

    board = commands.add_parser("leaderboard", help="the excellence award ranking")
    board.add_argument("--governorate", default="DA", help="governorate code (default DA)")
    board.add_argument("--year", type=int32, default=this_year, help=year_help)
    board.add_argument("--limit", type=int32, default=10, help="at most this many (0 for all)")
    board.add_argument(
        "--min-completed",
        type=int64,
        help="rank only centres that completed at least this many in the year (default: the"
        " service's, SANAD_AWARD_MIN_COMPLETED; 0 ranks every active centre)",
    )
    board.set_defaults(handler=show_leaderboard)


# The years a Timestamp can bound: 1 January of the year after must still be one.
FIRST_STATS_YEAR, LAST_STATS_YEAR = 1, 9998


def _year_range(
    request: metrics_pb2.GetCenterStatsRequest | metrics_pb2.GetWilayatStatsRequest,
    year: int | None,
) -> None:
    if year is None:
        return
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(datetime(year, 1, 1, tzinfo=UTC))
    end.FromDatetime(datetime(year + 1, 1, 1, tzinfo=UTC))
    request.start_time.CopyFrom(start)
    request.end_time.CopyFrom(end)


def show_stats(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """GetCenterStats or GetWilayatStats."""
    if bool(args.center_id) == bool(args.wilayat):
        given = "both" if args.center_id else "neither"
        printer.error(f"give a centre id or --wilayat, one of them ({given} given)")
        return 2
    if args.year is not None and not FIRST_STATS_YEAR <= args.year <= LAST_STATS_YEAR:
        printer.error(f"--year must be between {FIRST_STATS_YEAR} and {LAST_STATS_YEAR}")
        return 2
    head: list[tuple[str, object]]
    if args.wilayat:
        by_wilayat = metrics_pb2.GetWilayatStatsRequest(wilayat_code=args.wilayat)
        _year_range(by_wilayat, args.year)
        response = client.call(client.metrics().GetWilayatStats, by_wilayat)
        head = [("wilayat_code", response.wilayat_code), ("centers", response.centers)]
    else:
        by_centre = metrics_pb2.GetCenterStatsRequest(center_id=args.center_id)
        _year_range(by_centre, args.year)
        response = client.call(client.metrics().GetCenterStats, by_centre)
        head = [("center_id", response.center_id)]
    if printer.as_json:
        printer.message(response)
        return 0
    s = response.stats
    printer.fields(
        [
            *head,
            ("submitted", f"{s.submitted:,}"),
            ("recorded", f"{s.recorded:,}"),
            ("completed", f"{s.completed:,}"),
            ("rejected", f"{s.rejected:,}"),
            ("cancelled", f"{s.cancelled:,}"),
            ("fees", fee(s.fees_baisa)),
            ("refunds_due", fee(s.refunds_due_baisa)),
            ("completed_within_sla", f"{s.completed_within_sla:,}"),
            ("mean_completion_seconds", f"{s.mean_completion_seconds:,.1f}"),
            ("ratings", f"{s.ratings:,}"),
            ("mean_rating", f"{s.mean_rating:.2f}"),
        ]
    )
    return 0


def show_report(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """GetGovernorateReport as a two-year table."""
    request = metrics_pb2.GetGovernorateReportRequest(
        governorate_code=args.governorate, year=args.year
    )
    response = client.call(client.metrics().GetGovernorateReport, request)
    if printer.as_json:
        printer.message(response)
        return 0
    cur, prev = response.current, response.previous
    rows = [
        ["", str(cur.year), str(prev.year), "change"],
        ["active centres", str(cur.active_centers), str(prev.active_centers), ""],
        ["wilayats with centres", *_pair(cur.wilayats_with_centers, prev.wilayats_with_centers)],
        [
            "transactions completed",
            f"{cur.transactions_completed:,}",
            f"{prev.transactions_completed:,}",
            _change(response),
        ],
        ["Omani staff", str(cur.omani_staff), str(prev.omani_staff), ""],
        ["fees", money(cur.fees_baisa), money(prev.fees_baisa), ""],
    ]
    printer.table(f"governorate {response.governorate_code}, {cur.year} against {prev.year}", rows)
    if response.HasField("compared_until"):
        last = response.compared_until.ToDatetime() - timedelta(days=1)
        printer.line(
            f"change: {cur.year} so far against {prev.year} up to {last:%d %b} "
            f"({response.previous_completed_compared:,} completed)"
        )
    return 0


def _change(response: metrics_pb2.GetGovernorateReportResponse) -> str:
    """The change in percent, or n/a when there was nothing to compare with."""
    if response.completed_change_undefined:
        return "n/a"
    return f"{response.completed_change_percent:+.2f}%"


def _pair(a: int, b: int) -> list[str]:
    return [str(a), str(b), ""]


def show_leaderboard(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """GetAwardLeaderboard with every component beside the score."""
    request = metrics_pb2.GetAwardLeaderboardRequest(
        governorate_code=args.governorate,
        year=args.year,
        limit=args.limit,
        min_completed=args.min_completed,
    )
    response = client.call(client.metrics().GetAwardLeaderboard, request)
    if printer.as_json:
        printer.message(response)
        return 0
    w = response.weights
    header = "rank score speed quality product. satisf. in-SLA median-h rejected per-staff rating"
    rows = [[*header.split(), "centre"]]
    for e in response.entries:
        c = e.components
        rows.append(
            [
                str(e.rank) if e.rank else "-",
                f"{e.score:.2f}",
                f"{c.speed_score:.3f}",
                f"{c.quality_score:.3f}",
                f"{c.productivity_score:.3f}",
                f"{c.satisfaction_score:.3f}",
                f"{100 * c.within_sla_share:.1f}%",
                f"{c.median_completion_hours:.1f}",
                f"{100 * c.rejection_rate:.1f}%",
                f"{c.completed_per_omani_staff:.0f}",
                f"{c.mean_rating:.2f}",
                e.center_name_ar or e.center_id,
            ]
        )
    title = f"award {response.governorate_code} {response.year}"
    printer.table(title, rows)
    printer.line(
        f"ranked: centres that completed at least {response.min_completed:,} in the year;"
        " the others follow unranked (-)"
    )
    printer.line(
        f"weights: speed {w.speed:g}, quality {w.quality:g}, productivity {w.productivity:g}, "
        f"satisfaction {w.satisfaction:g}"
    )
    printer.line(f"formula: {response.formula}")
    return 0
