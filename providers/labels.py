"""Our label on every instance: the one way leftovers are found, by us, by `inv sweep` and by a
teammate. Pure.

Every instance the provider rents carries ``[vast-gpu:<project>/<stack>/<resource>]`` (after a
user label, if the stack sets one), so a create that was killed, a deploy whose teardown was
cut short, or a stack deleted by hand without destroy cannot hide a billing machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TAG_PREFIX = "vast-gpu:"
_TAG = re.compile(re.escape(TAG_PREFIX) + r"([^/\]\s]+)/([^/\]\s]+)/([^/\]\s]+)\]?$")


@dataclass(frozen=True)
class Tag:
    project: str
    stack: str
    resource: str

    def __str__(self) -> str:
        return f"{TAG_PREFIX}{self.project}/{self.stack}/{self.resource}"


def resource_tag(project: str, stack: str, name: str) -> str:
    """Names project, stack and resource, so leftovers can always be found."""
    return str(Tag(project, stack, name))


def full_label(tag: str, user_label: str | None) -> str:
    return f"{user_label} [{tag}]" if user_label else tag


def carries_tag(label: str | None, tag: str) -> bool:
    """True when the label is ours for that resource (the tag alone, or a user label + [tag])."""
    return bool(label) and (label == tag or label.endswith(f"[{tag}]"))


def parse_tag(label: str | None) -> Tag | None:
    """The tag in one of our labels, else None (someone else's instance)."""
    if not label:
        return None
    match = _TAG.search(label.strip())
    return Tag(match.group(1), match.group(2), match.group(3)) if match else None
