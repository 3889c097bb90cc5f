"""The brokers behind the EventBus: one subpackage per transport, the same file roles in each.

``memory/``, ``redis/``, ``nats/`` and ``rabbitmq/`` each hold a transport (``transport.py``)
and its subscription (``subscription.py``), and where the broker has them, its URL options
(``url.py``), its names on the server (``names.py``), its dead letters (``dead_letters.py``)
and the state the transport and its subscriptions share (``state.py``).

The import rule: a transport's package imports the interface (``quantum_core.bus.transport``,
``quantum_core.bus.abilities``, ``quantum_core.bus.registry``), the shared helpers
(``quantum_core._backoff``, ``_batching``, ``_checks``, ``_redaction``, ``_redis``,
``_url_options``, ``errors``, ``logs``, ``tracing``) and its
own modules, never another transport's package; the bus core imports none of them (its
registry names them as strings and imports one on first use). Nothing here is imported by
``import quantum_core`` except memory and Redis (whose library is a core dependency).
"""
