"""Loyalty points (``!points``): its database is down, so it raises (a function error)."""

import logging

logger = logging.getLogger()


def _load_points(user_id):
    raise ConnectionError("points database at db.internal:5432 is unavailable")


def handler(event, context):
    user_id = (event.get("user") or {}).get("id")
    logger.warning("looking up points for %s", user_id)
    points = _load_points(user_id)
    return {"success": True, "message": f"You have {points} points"}
