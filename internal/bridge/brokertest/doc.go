// Package brokertest starts real message brokers for tests: an embedded
// nats-server with JetStream (file store), a kfake Kafka cluster (the
// franz-go project's in-process cluster speaking the real wire protocol;
// no Kafka server can be installed here) and a RabbitMQ node run from the
// Debian rabbitmq-server package as a child process. Each keeps its
// ports and data across Restart, and each is stopped in t.Cleanup.
package brokertest
