"""Resilience: backoff maths, the retry loop, the clock seam, and the policy pipeline."""
