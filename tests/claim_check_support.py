"""A run whose data is larger than the claim check's threshold, and a look at every payload
a history holds (tests of runtime.claim_check)."""

from collections.abc import Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload

BIG = "claim check " * 17_000  # 204,000 characters: over the threshold, under a step's 256 KiB
MARGIN = 1024  # a reference is ~130 bytes; payloads at or under the threshold stay inline


def flow(text: str) -> list[dict]:
    return [
        {"id": "big", "skill": "echo", "input": {"text": text}},
        {"id": "again", "skill": "template", "input": {
            "template": "$t", "variables": {"t": {"$ref": "steps.big.output.text"}}}},
    ]  # fmt: skip


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere in ``message`` (maps and repeated fields included)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated:
            entries = value.values() if field.message_type.GetOptions().map_entry else value
        else:
            entries = [value]
        for entry in entries:
            if isinstance(entry, Payload):
                yield entry
            elif isinstance(entry, Message):
                yield from payloads_in(entry)
