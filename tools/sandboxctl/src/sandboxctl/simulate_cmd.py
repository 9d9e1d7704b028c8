"""`sandboxctl simulate --policy FILE`: the topic's recorded demand replayed through a candidate
policy, beside the policy in force, without touching live state (it reads the topic with no
consumer group and writes nothing). Progress on stderr, the figures on stdout; exit 0, or 1 with
one line (a candidate policy refused names its field).

The candidate takes the place of each selected project's own policy (every project without
--project); the global default, the settings and each sandbox's own metadata apply beneath it as
they do live. The policy in force is the one the topic set last, applied to the whole period.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from enforcer.schedule import ScheduleError, parse_schedule
from sandbox_common import topics
from sandbox_common.policies import Policy, PolicyError, decode_policy, encode_policy
from sandbox_common.policies.effective import Layers, resolve
from sandbox_common.whatif.facts import TopicFacts
from sandbox_common.whatif.learn import Gaps, learn_idle
from sandbox_common.whatif.ledger import NO_ENFORCEMENT, Ledger, RuleOf, idle_rule, tally
from sandbox_common.whatif.replay import Frame, Prices
from sandbox_common.whatif.trace import Trace
from sandboxctl import simulate_report as report
from sandboxctl.errors import OperatorError
from sandboxctl.settings import Settings

# Policy fields whose rules this simulation does not replay (pauses forced whatever the
# activity, deletes, pre-warms): said when a candidate sets them.
_NOT_SIMULATED = ("maxLifetimeSeconds", "quietHours", "deleteAfterPausedSeconds", "prewarm")


def _moment(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OperatorError(f"{name}: not an ISO 8601 time: {text!r}") from exc
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _candidate(path: str) -> Policy:
    try:
        body = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise OperatorError(f"--policy: cannot read {path}: {exc.strerror}") from exc
    try:
        return decode_policy(body)
    except PolicyError as exc:
        raise OperatorError(f"--policy: {exc}") from exc


def tick_seconds(schedule: str) -> float:
    """The checker's period on ENFORCER_SCHEDULE: the gap between two of its ticks."""
    try:
        parsed = parse_schedule(schedule)
    except ScheduleError as exc:
        raise OperatorError(str(exc)) from exc
    first = parsed.next_after(datetime(2026, 1, 1, tzinfo=UTC))
    return (parsed.next_after(first) - first).total_seconds()


async def read_topic(settings: Settings, topic: str) -> TopicFacts:
    from projector.replay.kafka_source import TopicReader
    from projector.replay.progress import Progress

    found = TopicFacts()
    async with TopicReader(settings.kafka_connection(), topic) as reader:
        start, end = await reader.starts(), await reader.ends()
        total = sum(max(0, end[p] - start.get(p, 0)) for p in end)
        progress = Progress(total, label="simulate")
        done = 0
        async for batch in reader.read(start, end):
            for record in batch:
                found.add(record.value)
            done += len(batch)
            progress.update(done)
        progress.update(done, force=True)
        progress.phase(f"read {done:,} records")
    return found


def learned_candidates(
    candidate: Policy, traces: list[Trace], frame: Frame, regret_seconds: float
) -> dict[str | None, Policy]:
    """An adaptive candidate learns each project's timeout from that project's demand in the
    frame, as the learner would from its history: the candidate as each project would get it."""
    idle = candidate.idle
    if idle is None:
        return {}
    by_project: dict[str | None, list[Trace]] = {}
    for trace in traces:
        by_project.setdefault(trace.project_id, []).append(trace)
    since, at = (datetime.fromtimestamp(t, UTC) for t in (frame.start, frame.end))
    found = {}
    for project, mine in by_project.items():
        gaps = Gaps.of(mine, until=frame.end)
        value = learn_idle(idle, gaps, regret_seconds, since, at)
        adapted = msgspec.structs.replace(idle, learned=value)
        found[project] = msgspec.structs.replace(candidate, idle=adapted)
    return found


def scenarios(
    facts: TopicFacts,
    candidate: Policy | dict[str | None, Policy],
    projects: set[str] | None,
    settings: Settings,
    tick: float,
) -> dict[str, RuleOf]:
    """`candidate`: one policy for every selected project, or each project's own (learned)."""
    setting = Policy(idle_timeout_seconds=settings.idle_timeout_seconds)
    default = facts.policy(None)
    in_force: dict[str | None, Policy] = {}
    tried: dict[str | None, Policy] = {}

    def policy_of(trace: Trace, cache: dict[str | None, Policy], try_candidate: bool) -> Policy:
        project = trace.project_id
        found = cache.get(project)
        if found is None:
            mine = facts.policy(project) if project is not None else None
            if try_candidate and (projects is None or project in projects):
                mine = candidate.get(project) if isinstance(candidate, dict) else candidate
            found = cache[project] = resolve(Layers(setting=setting, default=default, project=mine))
        return found

    return {
        report.IN_FORCE: lambda t: idle_rule(
            policy_of(t, in_force, False), t.own_idle_seconds, tick
        ),
        report.CANDIDATE: lambda t: idle_rule(policy_of(t, tried, True), t.own_idle_seconds, tick),
        report.NO_ENFORCEMENT: lambda _t: NO_ENFORCEMENT,
    }


def _run(args: argparse.Namespace, settings: Settings) -> None:
    candidate = _candidate(args.policy)
    start, end = _moment(args.since, "--from"), _moment(args.until, "--to")
    if start is not None and end is not None and end <= start:
        raise OperatorError("--to must be later than --from")
    tick = tick_seconds(settings.enforcer_schedule)
    facts = asyncio.run(read_topic(settings, args.topic))
    projects = set(args.project) if args.project else None
    traces = facts.traces.of_projects(projects)
    # A sandbox the topic saw no end of is still alive: counted up to now, not to its last fact.
    now = settings.clock()().timestamp()
    first = facts.first if facts.first is not None else now
    frame = Frame(
        start=first if start is None else start,
        end=max(now, facts.last or now) if end is None else end,
        regret_seconds=args.regret_seconds or settings.regret_window_seconds,
        prices=Prices(settings.price_vcpu_second, settings.price_gib_second),
    )
    learned = learned_candidates(candidate, traces, frame, frame.regret_seconds)
    rules = scenarios(facts, learned or candidate, projects, settings, tick)
    ledger: Ledger = tally(traces, rules, frame)
    header: dict[str, Any] = {
        "facts": facts.facts,
        "sandboxes": len(traces),
        "from": frame.start,
        "to": frame.end,
        "regretWindowSeconds": frame.regret_seconds,
        "tickSeconds": tick,
        "candidatePolicy": json.loads(encode_policy(candidate)),
        "notSimulated": [f for f in _NOT_SIMULATED if f in candidate.fields_set()],
        "learned": {
            str(p): c.idle_seconds() for p, c in sorted(learned.items(), key=lambda kv: str(kv[0]))
        },
        "unreadable": facts.unreadable,
    }
    if args.json:
        document = report.as_json(ledger, header)
        document["from"], document["to"] = (
            datetime.fromtimestamp(frame.start, UTC).isoformat(),
            datetime.fromtimestamp(frame.end, UTC).isoformat(),
        )
        print(json.dumps(document, indent=2))
        return
    header["candidatePolicy"] = encode_policy(candidate).decode()
    for line in report.as_lines(ledger, header, args.limit):
        print(line)


def add_commands(sub: Any) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="what-if: replay the topic's activity through a candidate policy (read-only)",
        description=(
            "Replays every sandbox's recorded activity through a candidate policy and the policy"
            " in force, and prints pauses, regrets, running time, idle time avoided (against no"
            " enforcement) and cost per project and in total. Reads the topic only."
        ),
    )
    simulate.add_argument(
        "--policy", required=True, help="the candidate policy's JSON file ('-': standard input)"
    )
    simulate.add_argument(
        "--from", dest="since", help="count from this time (ISO 8601, UTC; default the first fact)"
    )
    simulate.add_argument(
        "--to", dest="until", help="count up to this time (ISO 8601, UTC; default now)"
    )
    simulate.add_argument(
        "--project", action="append", help="only this project (repeatable; default: all)"
    )
    simulate.add_argument("--topic", default=topics.LIFECYCLE, help="the topic to read")
    simulate.add_argument(
        "--regret-seconds",
        type=float,
        help="a return this soon after a pause is a regret (default REGRET_WINDOW_SECONDS)",
    )
    simulate.add_argument(
        "--limit", type=int, default=50, help="projects shown, most changed first (0: all)"
    )
    simulate.add_argument("--json", action="store_true", help="one JSON document, every project")
    simulate.set_defaults(run=_run)
