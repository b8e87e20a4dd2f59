"""Rolls dice: ``!roll 2d6``, ``!roll d20``, ``!roll 3d8+2``.

The dice are seeded by the event's ``request_id``: a retried request rolls the same numbers.
"""

import random
import re

_DICE = re.compile(r"^(\d*)d(\d+)([+-]\d+)?$", re.IGNORECASE)


def handler(event, context):
    text = ((event.get("trigger") or {}).get("context_text") or "d6").strip()
    match = _DICE.match(text.replace(" ", ""))
    if not match:
        return {
            "success": False,
            "error": f"I can't roll {text!r}: try !roll 2d6, !roll d20 or !roll 3d8+2",
        }
    count = int(match.group(1) or 1)
    sides = int(match.group(2))
    bonus = int(match.group(3) or 0)
    if not (1 <= count <= 100 and 2 <= sides <= 1000):
        return {"success": False, "error": "use 1-100 dice with 2-1000 sides"}
    rng = random.Random(event.get("request_id"))
    rolls = [rng.randint(1, sides) for _ in range(count)]
    total = sum(rolls) + bonus
    shown = " + ".join(map(str, rolls)) + (f" {bonus:+d}" if bonus else "")
    user = (event.get("user") or {}).get("username") or "you"
    return {
        "success": True,
        "message": f"{user} rolled {text}: {shown} = {total}",
        "response_type": "text",
        "rolls": rolls,
        "total": total,
    }
