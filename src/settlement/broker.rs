//! RabbitMQ: topology, outbox relay, consumer (being written).
