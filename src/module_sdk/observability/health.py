"""The always-on health window (latency percentiles, last error, throttles).

It lives with the adapters (:mod:`module_sdk.adapters.health`), which carry it; this name
stays for code that imports it from here.
"""

from module_sdk.adapters.health import DEFAULT_MAX_AGE, DEFAULT_WINDOW, HealthWindow, percentile

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_WINDOW", "HealthWindow", "percentile"]
