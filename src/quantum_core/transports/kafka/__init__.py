"""The Kafka transport (``kafka://``); aiokafka, the ``kafka`` extra, loads on first use."""

from .transport import KafkaTransport

__all__ = ["KafkaTransport"]
