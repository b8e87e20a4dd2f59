"""Weather (``!weather London``) answering API-Gateway style: ``{"statusCode", "body"}``.

Many existing WaddleBot functions sit behind API Gateway; the SDK unwraps this shape.
The forecasts are canned so the example never needs the network.
"""

import json

FORECASTS = {
    "london": ("London", 12, "light rain"),
    "tokyo": ("Tokyo", 18, "clear sky"),
    "toronto": ("Toronto", -3, "snow showers"),
}


def handler(event, context):
    city = ((event.get("trigger") or {}).get("context_text") or "").strip()
    found = FORECASTS.get(city.lower())
    if found is None:
        body = {"success": False, "error": f"no forecast for {city or '(no city)'}"}
        return {"statusCode": 404, "headers": {}, "body": json.dumps(body)}
    name, celsius, sky = found
    body = {
        "success": True,
        "message": f"{name}: {celsius} C, {sky}",
        "response_type": "text",
        "temperature_c": celsius,
    }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }
