"""Schemathesis against the app's OpenAPI schema, in process: no generated case gets a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from descend.web import Limits, create_app

# A short time limit keeps generated runs (up to 8 runs x 5000 steps) quick; running
# out of time is a 422, so it is part of what the check covers.
app = create_app(Limits(time_limit_s=0.5))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
