"""Draws a raffle winner (``!raffle alice bob carol``).

Reserved concurrency 1: only one draw at a time, so two simultaneous ``!raffle`` commands
cannot both pick a winner; the second is throttled (429) and the adapter retries it.
"""

import random
import time


def handler(event, context):
    entrants = ((event.get("trigger") or {}).get("context_text") or "").split()
    if not entrants:
        return {"success": False, "error": "nobody entered: !raffle NAME NAME ..."}
    time.sleep(0.3)  # drawing (and holding the only slot)
    winner = random.Random(event.get("request_id")).choice(entrants)
    return {"success": True, "message": f"The winner is {winner}!", "entrants": len(entrants)}
