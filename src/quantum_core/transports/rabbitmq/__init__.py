"""The RabbitMQ transport (``amqp://``, ``amqps://``); needs aio-pika, the ``rabbitmq`` extra."""

from .transport import RabbitMQTransport

__all__ = ["RabbitMQTransport"]
