"""A weekly report (``!report``) that takes longer than its 1-second timeout."""

import time


def handler(event, context):
    print(f"building the report, {context.get_remaining_time_in_millis()} ms left")
    time.sleep(30)
    return {"success": True, "message": "report ready"}
