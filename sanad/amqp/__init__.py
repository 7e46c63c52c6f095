"""RabbitMQ topology, confirmed publishing and consuming, shared by intake and the workers."""
