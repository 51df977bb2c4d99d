package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const kafkaDescribePolicy = `      - name: trellis.filters.network.kafka_policy
        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/trellis.filters.network.kafka.v1.TopicPolicy
          value:
            default_action: ALLOW
            rules:
            - {action: DENY, operations: [describe], topics: ["hidden*"]}`

// TestKafkaDescribeRefused: a Metadata request naming a topic the
// principal may not describe is answered TOPIC_AUTHORIZATION_FAILED for
// it and counted as a refusal (trellis_kafka_denied_total{api=Metadata,
// reason=topic}): that is how a producer without describe learns it may
// not write. An all-topics request just leaves the topic out, as Kafka
// does, and counts nothing.
func TestKafkaDescribeRefused(t *testing.T) {
	c, _ := kafkaCluster(t, 1, "orders", "hidden-a")
	p, listen := startKafkaProxy(t, c, kafkaConfig{Rewrite: true, Extra: kafkaDescribePolicy})
	cl := kafkaClient(t, listen[0])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	denied := map[string]string{"reason": "topic", "api": "Metadata"}

	named := kmsg.NewPtrMetadataRequest()
	for _, topic := range []string{"orders", "hidden-a"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		named.Topics = append(named.Topics, rt)
	}
	resp, err := named.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int16{}
	for _, rt := range resp.Topics {
		codes[*rt.Topic] = rt.ErrorCode
	}
	if codes["orders"] != 0 || codes["hidden-a"] != kerr.TopicAuthorizationFailed.Code || len(codes) != 2 {
		t.Errorf("metadata error codes %v, want orders 0 and hidden-a %d", codes, kerr.TopicAuthorizationFailed.Code)
	}
	if got := kafkaMetric(t, p.Metrics().Prom, "trellis_kafka_denied_total", denied); got != 1 {
		t.Errorf("trellis_kafka_denied_total{api=Metadata,reason=topic} = %v after the named request, want 1", got)
	}

	all, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl) // nil Topics: every topic
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range all.Topics {
		if *rt.Topic == "hidden-a" {
			t.Error("an all-topics answer names hidden-a")
		}
	}
	if got := kafkaMetric(t, p.Metrics().Prom, "trellis_kafka_denied_total", denied); got != 1 {
		t.Errorf("trellis_kafka_denied_total{api=Metadata,reason=topic} = %v after the all-topics request, want still 1", got)
	}
}
