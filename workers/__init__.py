"""The RabbitMQ workers of Sanad Mesh."""
