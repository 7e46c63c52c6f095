"""Dashboards as code: `python deploy/grafana/generate.py` writes dashboards/*.json.

`--check` exits non-zero when the committed JSON differs from what this script generates.
Every panel queries the Prometheus data source with uid "prometheus" (see provisioning/).
"""

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"
WORK_QUEUES = 'queue=~".+\\\\.(ingest|batch)"'
DEAD_QUEUES = 'queue=~".+\\\\.dead"'
# A stream's handling time is its whole life (a watch lasts minutes): latency reads unary calls.
UNARY = 'grpc_type="unary"'
# Server-side failures, as the SanadHighErrorRatio alert counts them: a stream that ran until its
# caller's deadline (a watch with a deadline ends so) is not one; a unary call that did is.
SERVER_ERRORS = 'grpc_code=~"UNKNOWN|INTERNAL|UNAVAILABLE|DATA_LOSS|UNIMPLEMENTED"'
KNOWN_SERVICE = 'grpc_service!="unknown"'
UNARY_DEADLINES = f'{UNARY}, grpc_code="DEADLINE_EXCEEDED"'
# The processes that store transactions; every process exports the storage histogram (at zero).
STORING = 'job=~"sanad-(ingest|batch)"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


def _quantile(q: float, metric: str, by: str = "", where: str = "") -> str:
    labels = ", ".join(x for x in ("le", by) if x)
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{{{where}}}[{RATE}])))"


def _rate(metric: str, by: str, where: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{{{where}}}[{RATE}]))"


def _mean(histogram: str, by: str) -> str:
    """A histogram's mean over the rate interval: its sum's rate over its count's. Not a
    quantile, which interpolates within a bucket: one item in every message read as 0.5."""
    return f"{_rate(f'{histogram}_sum', by)} / {_rate(f'{histogram}_count', by)}"


def _last_hour(counter: str) -> str:
    """Events a counter counted over the last hour, in whole events: increase() extrapolates to
    the window's ends (4 dead letters read 4.045), floor() leaves what the scrapes saw (exact up
    to 118 at a 15 s scrape interval); 0 when no process exports it."""
    return f"floor(sum(increase({counter}[1h]))) or vector(0)"


def operations() -> Dashboard:
    """Throughput, errors, latency, backlog, dead letters, per-process health."""
    rpcs = "sanad_grpc_server_handled_total"
    # As SanadHighErrorRatio counts: a call to a method the server lacks (grpc_service
    # "unknown") is the caller's mistake, and drew a line at 100% that the alert leaves out.
    known = f"{rpcs}{{{KNOWN_SERVICE}}}"
    errors = (
        f"(sum by (grpc_service) (rate({rpcs}{{{KNOWN_SERVICE}, {SERVER_ERRORS}}}[{RATE}])"
        f" or rate({rpcs}{{{KNOWN_SERVICE}, {UNARY_DEADLINES}}}[{RATE}]))"
        f" or sum by (grpc_service) (rate({known}[{RATE}])) * 0)"
        f" / sum by (grpc_service) (rate({known}[{RATE}]))"
    )
    d = Dashboard("sanad-operations", "Sanad Mesh - operations overview", operations.__doc__ or "")
    d.panels = [
        Panel(
            "Calls per second by service",
            "gRPC calls answered per second, by service; a stream counts once, when it ends.",
            (Query(_rate(rpcs, "grpc_service"), "{{grpc_service}}"),),
            "reqps",
        ),
        Panel(
            "Transactions accepted and stored per second",
            "Accepted = confirmed by RabbitMQ (intake) or stored by the batch worker; stored ="
            " committed to MongoDB by a worker, each transaction once. Counted in transactions,"
            " not messages (intake packs several into one).",
            (
                Query(_rate("sanad_transactions_submitted_total", "job"), "accepted ({{job}})"),
                Query(
                    _rate("sanad_transaction_recorded_lag_seconds_count", "job", STORING),
                    "stored ({{job}})",
                ),
            ),
            "ops",
        ),
        Panel(
            "Server error ratio by service",
            "Share of calls failing on our side (bad input excluded). Alert above 5%.",
            (Query(errors, "{{grpc_service}}"),),
            "percentunit",
        ),
        Panel(
            "Answers by status code",
            "Calls per second by gRPC status code; INVALID_ARGUMENT is a caller's bad input.",
            (Query(_rate(rpcs, "grpc_code"), "{{grpc_code}}"),),
            "reqps",
        ),
        Panel(
            "Unary call latency p50 / p99 by service",
            "Objective: 99% of unary calls within 250 ms. Streams (watches, streamed submissions)"
            " are left out: their handling time is how long the client kept them open.",
            (
                Query(
                    _quantile(0.5, "sanad_grpc_server_handling_seconds", "grpc_service", UNARY),
                    "p50 {{grpc_service}}",
                ),
                Query(
                    _quantile(0.99, "sanad_grpc_server_handling_seconds", "grpc_service", UNARY),
                    "p99 {{grpc_service}}",
                ),
            ),
            "s",
        ),
        Panel(
            "Submission to storage, and broker confirm (p99)",
            "From a transaction's acceptance to its storage, by worker: a batch's items all"
            " count from the batch's start, so a large batch's last chunks read minutes by"
            " design, and one line over both workers hid the ingest worker's behind them."
            " Publish-to-confirm time by exchange.",
            (
                Query(
                    _quantile(0.99, "sanad_transaction_recorded_lag_seconds", "job", STORING),
                    "submitted to recorded ({{job}})",
                ),
                Query(
                    _quantile(0.99, "sanad_amqp_publish_confirm_seconds", "exchange"),
                    "confirm {{exchange}}",
                ),
            ),
            "s",
        ),
        Panel(
            "MongoDB write time (p99)",
            "Time of one MongoDB write transaction of a worker's micro-batch.",
            (Query(_quantile(0.99, "sanad_mongo_write_seconds", "operation"), "{{operation}}"),),
            "s",
        ),
        Panel(
            "Micro-batch and pack size (mean)",
            "Messages stored per MongoDB write by the workers; submissions per message intake"
            " publishes (more than 1 once publishes wait for confirms: packing).",
            (
                Query(_mean("sanad_worker_micro_batch_size", "queue"), "{{queue}}"),
                Query(
                    _mean("sanad_amqp_pack_items", "exchange"),
                    "submissions per message {{exchange}}",
                ),
            ),
        ),
        Panel(
            "Work queue backlog",
            "Messages in the work queues (RabbitMQ): waiting for a worker, and in all, with those"
            " a worker holds unacknowledged (a stalled worker holds up to its prefetch). Alert"
            " when the waiting keep growing.",
            (
                Query(f"rabbitmq_queue_messages_ready{{{WORK_QUEUES}}}", "waiting {{queue}}"),
                Query(f"rabbitmq_queue_messages{{{WORK_QUEUES}}}", "in all {{queue}}"),
            ),
        ),
        Panel(
            "Consumers per work queue",
            "Workers attached to each work queue (RabbitMQ); 0 means nothing is stored.",
            (Query(f"rabbitmq_queue_consumers{{{WORK_QUEUES}}}", "{{queue}}"),),
        ),
        Panel(
            "Dead letters waiting",
            "Messages set aside in dead-letter queues (RabbitMQ).",
            (Query(f"rabbitmq_queue_messages{{{DEAD_QUEUES}}}", "{{queue}}"),),
        ),
        Panel(
            "Dead-lettered, retried and refused in the last hour",
            "Messages the workers could not process (dead-lettered); retries of a worker's"
            " micro-batch (all its messages at once) after a transient failure or a"
            " stalled publish confirm, not messages; messages the broker refused (a work queue"
            " at its bound: callers got UNAVAILABLE);"
            " batches refused whole whose submitter nobody answered (among the dead-lettered,"
            " an operator's to look at before they expire).",
            (
                Query(
                    _last_hour("sanad_amqp_dead_lettered_total"),
                    "dead-lettered",
                ),
                Query(_last_hour("sanad_worker_retries_total"), "micro-batch retries"),
                Query(
                    _last_hour('sanad_amqp_published_total{outcome="refused"}'),
                    "refused by the broker",
                ),
                Query(
                    _last_hour("sanad_batch_refusals_unanswered_total"),
                    "batches refused unanswered",
                ),
            ),
            kind="stat",
        ),
        Panel(
            "Audit events waiting and lost",
            "Audit events MongoDB did not take yet, waiting to be written again (alert after"
            " 2 minutes), and those lost in the last hour (each logged as 'audit event lost').",
            (
                Query('sum(sanad_audit_events_deferred{job=~"sanad-.+"}) or vector(0)', "waiting"),
                Query(
                    _last_hour("sanad_audit_events_lost_total"),
                    "lost in the last hour",
                ),
            ),
            kind="stat",
        ),
        Panel(
            "Accepted changes unsent",
            "Status changes and ratings intake may have accepted without seeing them published,"
            " waiting to be tried again (most leave within seconds), and how long the oldest"
            " has waited (alert past 5 minutes: until then the store and the statistics miss"
            " it).",
            (
                Query('sum(sanad_intake_resends_waiting{job=~"sanad-.+"}) or vector(0)', "waiting"),
                Query(
                    'max(sanad_intake_resends_oldest_seconds{job=~"sanad-.+"}) or vector(0)',
                    "oldest (s)",
                ),
            ),
            kind="stat",
        ),
        Panel(
            "Processes up",
            "1 when Prometheus reached the process at its last scrape; one tile per replica.",
            (Query('up{job=~"sanad-.+"}', "{{job}} {{instance}}"),),
            kind="stat",
        ),
        Panel(
            "Dependencies answering",
            "1 when the process's last check of MongoDB, RabbitMQ or the registry succeeded.",
            (Query("sanad_dependency_up", "{{job}} {{instance}} {{dependency}}"),),
            kind="stat",
        ),
        Panel(
            "Certificates: time left",
            "Until the earliest end of each certificate and CA file a job's processes use"
            " (gRPC's and MongoDB's as read at start, the AMQP URL's as on disk). Alerts at"
            " two weeks and at two days.",
            (
                Query(
                    "min by (job, file) (sanad_tls_certificate_expiry_timestamp_seconds) - time()",
                    "{{job}} {{file}}",
                ),
            ),
            "s",
            kind="stat",
        ),
        Panel(
            "Memory per process",
            "Resident memory of each process, one line per replica.",
            (Query('process_resident_memory_bytes{job=~"sanad-.+"}', "{{job}} {{instance}}"),),
            "bytes",
            width=24,
        ),
    ]
    return d


def centres() -> Dashboard:
    """Where the work happens: transactions by governorate, wilayat and agency."""
    d = Dashboard("sanad-centres", "Sanad Mesh - centres and wilayats", centres.__doc__ or "")
    finished = "sanad_transactions_finished_total"
    d.panels = [
        Panel(
            "Transactions accepted per hour by wilayat",
            "Transactions accepted at the centres of each wilayat.",
            (
                Query(
                    "sum by (wilayat) (increase(sanad_transactions_submitted_total[1h]))",
                    "{{wilayat}}",
                ),
            ),
        ),
        Panel(
            "Transactions completed per hour by wilayat",
            "Transactions that reached completed, by the wilayat of their centre.",
            (
                Query(
                    f'sum by (wilayat) (increase({finished}{{outcome="completed"}}[1h]))',
                    "{{wilayat}}",
                ),
            ),
        ),
        Panel(
            "Transactions accepted per hour by agency",
            "By the ministry or authority that owns the e-service.",
            (
                Query(
                    "sum by (agency) (increase(sanad_transactions_submitted_total[1h]))",
                    "{{agency}}",
                ),
            ),
        ),
        Panel(
            "Fees of accepted transactions, last 24 hours, by governorate (OMR)",
            "Fees of the transactions accepted over the last 24 hours, in Omani rials, including"
            " those whose fee is due back after a rejection or cancellation.",
            (
                Query(
                    "sum by (governorate) (increase(sanad_transaction_fees_baisa_total[1d]))"
                    " / 1000",
                    "{{governorate}}",
                ),
            ),
            "suffix: OMR",
        ),
        Panel(
            "Outcomes per hour",
            "Completed, rejected and cancelled transactions (the fee of a rejected or a"
            " cancelled one is due back).",
            (Query(f"sum by (outcome) (increase({finished}[1h]))", "{{outcome}}"),),
        ),
        Panel(
            "Batch items by outcome",
            "Items of batch submissions accepted or rejected per second (a batch refused whole"
            " counts no items).",
            (Query(_rate("sanad_batch_items_total", "outcome"), "{{outcome}}"),),
            "ops",
        ),
    ]
    return d


def award() -> Dashboard:
    """Service levels behind the excellence award: speed, quality, satisfaction."""
    d = Dashboard("sanad-award", "Sanad Mesh - SLA and award", award.__doc__ or "")
    finished = "sanad_transactions_finished_total"
    within = "sanad_transactions_completed_within_sla_total"
    d.panels = [
        Panel(
            "Completed within SLA by agency (last 24 h)",
            "Share of completions whose running clock (paused time excluded) met the SLA.",
            (
                Query(
                    f"sum by (agency) (increase({within}[1d]))"
                    f' / sum by (agency) (increase({finished}{{outcome="completed"}}[1d]))',
                    "{{agency}}",
                ),
            ),
            "percentunit",
        ),
        Panel(
            "Submission to completion by agency (median, p90)",
            "Wall-clock time from acceptance to completion.",
            (
                Query(
                    _quantile(0.5, "sanad_transaction_completed_lag_seconds", "agency"),
                    "median {{agency}}",
                ),
                Query(
                    _quantile(0.9, "sanad_transaction_completed_lag_seconds", "agency"),
                    "p90 {{agency}}",
                ),
            ),
            "s",
        ),
        Panel(
            "Rejected share by wilayat (last 24 h)",
            "Rejected among completed and rejected transactions (cancelled ones left out): the"
            " award's rejection rate, its quality component.",
            (
                Query(
                    f'sum by (wilayat) (increase({finished}{{outcome="rejected"}}[1d]))'
                    f' / sum by (wilayat) (increase({finished}{{outcome=~"completed|rejected"}}'
                    "[1d]))",
                    "{{wilayat}}",
                ),
            ),
            "percentunit",
        ),
        Panel(
            "Mean beneficiary rating by governorate (last 24 h)",
            "Ratings 1-5 given to completed transactions: the award's satisfaction component.",
            (
                Query(
                    "sum by (governorate) (increase(sanad_transaction_rating_sum[1d]))"
                    " / sum by (governorate) (increase(sanad_transaction_rating_count[1d]))",
                    "{{governorate}}",
                ),
            ),
        ),
        Panel(
            "Report and leaderboard answer time (p99)",
            "Latency of the metrics service's statistics, report and leaderboard calls.",
            (
                Query(
                    _quantile(
                        0.99,
                        "sanad_grpc_server_handling_seconds",
                        "grpc_method",
                        f'{UNARY}, grpc_service="sanad.v1.MetricsService"',
                    ),
                    "{{grpc_method}}",
                ),
            ),
            "s",
            width=24,
        ),
    ]
    return d


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, object]:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for index, query in enumerate(panel.queries)
        ],
    }


def render(dashboard: Dashboard) -> dict[str, object]:
    """The Grafana JSON model of a dashboard; panels flow two to a row."""
    panels, x, y = [], 0, 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel_json(panel, panel_id, x, y))
        x += panel.width
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["sanad"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboards() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{d.uid}.json": json.dumps(render(d), indent=2, ensure_ascii=False) + "\n"
        for d in (operations(), centres(), award())
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for name, text in dashboards().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale dashboards: {', '.join(stale)}; run python deploy/grafana/generate.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
