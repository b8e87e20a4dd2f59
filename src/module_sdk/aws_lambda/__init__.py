"""The AWS Lambda layer: naming, payload, response parsing, error classification, invoker.

Pure modules (``naming``, ``payload``, ``response``, ``classify``) know nothing of I/O;
``invoker`` and ``clients`` are the only code that touches aiobotocore.
"""
