"""Greets chat users and thanks them for follows and subscriptions (``!hello``)."""

import logging
import os

logger = logging.getLogger()
logger.setLevel("INFO")


def handler(event, context):
    trigger = event.get("trigger") or {}
    user = event.get("user") or {}
    community = event.get("community") or {}
    name = user.get("username") or user.get("id") or "friend"
    place = community.get("name") or "the community"
    greeting = os.environ.get("GREETING", "Hello")

    if trigger.get("type") == "event":
        event_type = trigger.get("event_type")
        data = trigger.get("event_data") or {}
        if event_type == "follow":
            message = f"Thanks for the follow, {name}! {greeting} to {place}."
        elif event_type == "subscription":
            months = data.get("months", 1)
            message = f"{name} just subscribed for {months} month(s). Thank you!"
        else:
            message = f"{greeting}, {name}!"
        logger.info("event %s for %s", event_type, name)
    else:
        message = f"{greeting}, {name}! Welcome to {place}."
        logger.info("greeted %s", name)

    return {
        "success": True,
        "message": message,
        "response_type": "text",
        "targets": [user.get("platform") or "chat"],
    }
