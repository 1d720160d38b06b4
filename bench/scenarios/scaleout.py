"""Scenario 6, scale-out: scenario 2 on one worker process, then on two.

Each worker keeps the same per-process concurrency, so two should come close
to twice the lines/s. The one-worker run is scenario 2's when that ran in the
same invocation, just before; otherwise it is run here.
"""

from __future__ import annotations

from bench.report import Check, ScenarioResult, ratio
from bench.runs import Context, capped_notes, failure_checks, service_run
from bench.scenarios.latency import SHARED_KEY, settings_for

TITLE = "scale-out"
SPEED_UP_LIMIT = 1.85


def run(ctx: Context) -> ScenarioResult:
    sizes = ctx.sizes
    path = ctx.batch_file(sizes.scaleout_lines, sizes.text_chars)
    one = ctx.shared_runs.get(SHARED_KEY)
    reused = one is not None and one["lines"] == sizes.scaleout_lines
    if one is None or not reused:
        with ctx.service("s6-one-worker", settings_for(ctx, workers=1)) as service:
            one = service_run(ctx, service, path, sizes.latency)
    settings = settings_for(ctx, workers=2)
    with ctx.service("s6-two-workers", settings) as service:
        two = service_run(ctx, service, path, sizes.latency)
    result = ScenarioResult("6", TITLE, settings=settings.as_record())
    result.settings.update(latency_s=sizes.latency, lines=sizes.scaleout_lines)
    speed_up = ratio(two["lines_per_s"], one["lines_per_s"])
    result.figures = {
        "one_worker": one,
        "two_workers": two,
        "speed_up": speed_up,
        "one_worker_from_scenario_2": reused,
    }
    result.checks = [
        Check("1 worker lines/s", one["lines_per_s"], "(reference)", None),
        Check("2 workers lines/s", two["lines_per_s"], "(reference)", None),
        Check.at_least("2 workers / 1 worker lines/s", speed_up, SPEED_UP_LIMIT, "x"),
    ]
    runs = {"1 worker": one, "2 workers": two}
    result.checks.extend(failure_checks(runs))
    result.notes.extend(capped_notes(runs))
    return result
