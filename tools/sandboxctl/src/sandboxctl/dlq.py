"""`sandboxctl dlq list` and `sandboxctl dlq redrive`: what is in `sandbox-lifecycle.dlq`, and
putting records back on their original topic once the cause is fixed.

Redrive is safe to repeat: a consumer group remembers which dead letters were handled, records
still unreadable stay where they are, a record redriven `--max-redrives` times is left alone
(no loop), and a fact that reaches the projector twice changes nothing (facts are idempotent by
event id).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sandbox_common import commands, dead_letters, envelope, topics
from sandbox_common.kafka_connection import KafkaConnection
from sandboxctl.settings import Settings

_READERS = {
    topics.LIFECYCLE: envelope.decode,
    topics.COMMANDS: commands.decode,
}


@dataclass(frozen=True)
class Verdict:
    redrive: bool
    why: str


def judge(headers: Sequence[tuple[str, bytes]], value: bytes | None, max_redrives: int) -> Verdict:
    """Pure: redrive this dead letter now? Only when today's reader accepts it."""
    found = {k: v.decode(errors="replace") for k, v in headers}
    original = found.get(dead_letters.ORIGINAL_TOPIC)
    read = _READERS.get(original or "")
    if read is None:
        return Verdict(False, f"unknown original topic {original!r}")
    if dead_letters.redrive_count(headers) >= max_redrives:
        return Verdict(False, f"already redriven {max_redrives} times")
    if value is None:
        return Verdict(False, "empty record")
    try:
        read(value)
    except ValueError as exc:
        return Verdict(False, f"still unreadable: {exc}")
    return Verdict(True, "readable")


def _headers(record: Any) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in record.headers}


async def _partitions(kafka: KafkaConnection) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topics.LIFECYCLE_DLQ])
    finally:
        await admin.close()
    parts = sorted(p["partition"] for p in described.get("partitions") or [])
    if not parts:
        raise RuntimeError(f"topic {topics.LIFECYCLE_DLQ} not found")
    return [TopicPartition(topics.LIFECYCLE_DLQ, p) for p in parts]


async def _read_to_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> list[Any]:
    ends = await consumer.end_offsets(tps)
    wanted = {tp: end for tp, end in ends.items() if await consumer.position(tp) < end}
    out: list[Any] = []
    while wanted:
        batch = await consumer.getmany(*wanted, timeout_ms=2000)
        if not batch:
            break
        for tp, records in batch.items():
            out.extend(r for r in records if r.offset < wanted.get(tp, 0))
            if await consumer.position(tp) >= wanted.get(tp, 0):
                wanted.pop(tp, None)
    return out


async def _list(settings: Settings, limit: int) -> list[Any]:
    kafka = settings.kafka_connection()
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await _partitions(kafka)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records = await _read_to_end(consumer, tps)
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
    records.sort(key=lambda r: r.timestamp)
    return records[-limit:] if limit else records


def _dlq_list(args: argparse.Namespace, settings: Settings) -> None:
    records = asyncio.run(_list(settings, args.limit))
    for r in records:
        h = _headers(r)
        topic = h.get(dead_letters.ORIGINAL_TOPIC)
        partition = h.get(dead_letters.ORIGINAL_PARTITION)
        row = {
            "dlq": f"{r.partition}@{r.offset}",
            "original": f"{topic}[{partition}]@{h.get(dead_letters.ORIGINAL_OFFSET)}",
            "reason": h.get(dead_letters.REASON, ""),
            "redriven": dead_letters.redrive_count(r.headers),
            "value": (r.value or b"")[:120].decode(errors="replace"),
        }
        if args.json:
            print(json.dumps(row))
        else:
            print(
                f"{row['dlq']}  from {row['original']}  redriven {row['redriven']}x  "
                f"{row['reason']}\n    {row['value']}"
            )
    if not args.json:
        print(f"{len(records)} dead letter(s)")


async def redrive(settings: Settings, group: str, max_redrives: int, dry_run: bool) -> list[str]:
    kafka = settings.kafka_connection()
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        **kafka.client_kwargs(),
        acks="all",
        enable_idempotence=True,
        compression_type=topics.COMPRESSION,
    )
    await consumer.start()
    await producer.start()
    lines: list[str] = []
    try:
        tps = await _partitions(kafka)
        consumer.assign(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        records = await _read_to_end(consumer, tps)
        for r in records:
            verdict = judge(r.headers, r.value, max_redrives)
            where = f"{r.partition}@{r.offset}"
            if not verdict.redrive:
                lines.append(f"kept {where}: {verdict.why}")
                continue
            h = _headers(r)
            original = h[dead_letters.ORIGINAL_TOPIC]
            if not dry_run:
                count = dead_letters.redrive_count(r.headers) + 1
                await producer.send_and_wait(
                    original,
                    r.value,
                    key=r.key,
                    headers=[
                        (dead_letters.REDRIVE_COUNT, str(count).encode()),
                        ("dlq-redriven-from", f"{topics.LIFECYCLE_DLQ}[{where}]".encode()),
                    ],
                )
            lines.append(f"{'would redrive' if dry_run else 'redriven'} {where} to {original}")
        if records and not dry_run:
            # Only now: a crash before this redrives these again, which changes nothing.
            await consumer.commit()
    finally:
        await producer.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
    return lines


def _dlq_redrive(args: argparse.Namespace, settings: Settings) -> None:
    lines = asyncio.run(redrive(settings, args.group, args.max_redrives, args.dry_run))
    for line in lines:
        print(line)
    redriven = sum(1 for line in lines if not line.startswith("kept"))
    print(f"{redriven} redriven, {len(lines) - redriven} kept")


def add_commands(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help=f"dead letters in {topics.LIFECYCLE_DLQ}").add_subparsers(
        dest="action", required=True
    )
    listing = dlq.add_parser("list", help="show dead letters with their reason and origin")
    listing.add_argument("--limit", type=int, default=50, help="the newest N (0: all)")
    listing.add_argument("--json", action="store_true", help="JSON lines")
    listing.set_defaults(run=_dlq_list)
    redrive = dlq.add_parser(
        "redrive", help="republish dead letters that are readable now to their original topic"
    )
    redrive.add_argument(
        "--group", default="sandbox-dlq-redrive", help="consumer group remembering what was handled"
    )
    redrive.add_argument("--max-redrives", type=int, default=3, help="per record (default 3)")
    redrive.add_argument("--dry-run", action="store_true", help="say what would be redriven")
    redrive.set_defaults(run=_dlq_redrive)
