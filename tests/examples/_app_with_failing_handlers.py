"""The example service, plus two handlers of ``test.order``: one fails once, one always.

Run by test_app_metrics.py (``PYTHONPATH`` is the repository) to scrape ``/metrics`` after
a retry and a dead letter; everything else is ``python -m examples.trading.app``.
"""

from examples.trading import app

attempts = {"flaky": 0}
register_domains = app.register_event_handlers


async def flaky(payload):
    attempts["flaky"] += 1
    if attempts["flaky"] == 1:
        raise ConnectionError("the exchange hiccuped")


async def broken(payload):
    raise ValueError("never works")


async def with_test_handlers(bus):
    await register_domains(bus)
    bus.subscribe("test.order", flaky, name="flaky", retry_backoff=0.01)
    bus.subscribe("test.order", broken, name="broken", max_attempts=2, retry_backoff=0.01)


app.register_event_handlers = with_test_handlers
app.main()
