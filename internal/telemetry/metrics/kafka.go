package metrics

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxKafkaTopics caps the topics with their own series per Kafka
// stat_prefix; traffic to further topics is counted under KafkaOtherTopic.
// The cap holds for the proxy's lifetime (across configuration reloads).
const MaxKafkaTopics = 100

// KafkaOtherTopic is the topic label of traffic past MaxKafkaTopics.
const KafkaOtherTopic = "_other"

// kafkaCollector holds the Kafka vectors and, per stat_prefix, the topics
// that have series. It is registered in the Registry's Prometheus registry
// on first use and found there again later (no package state).
type kafkaCollector struct {
	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
	errors    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	bytes     *prometheus.CounterVec
	records   *prometheus.CounterVec
	denied    *prometheus.CounterVec
	audited   *prometheus.CounterVec
	protocol  *prometheus.CounterVec
	injected  *prometheus.CounterVec
	skipped   *prometheus.CounterVec

	mu     sync.Mutex
	topics map[string]map[string]*KafkaTopic // stat_prefix → topic → handles
}

func (c *kafkaCollector) vecs() []prometheus.Collector {
	return []prometheus.Collector{c.requests, c.responses, c.errors, c.duration, c.bytes, c.records, c.denied, c.audited, c.protocol, c.injected, c.skipped}
}

// Describe implements prometheus.Collector.
func (c *kafkaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.vecs() {
		v.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (c *kafkaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range c.vecs() {
		v.Collect(ch)
	}
}

func newKafkaCollector() *kafkaCollector {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	return &kafkaCollector{
		requests:  cv("trellis_kafka_requests_total", "Kafka requests seen by the kafka_broker filter, by API.", "stat_prefix", "api"),
		responses: cv("trellis_kafka_responses_total", "Kafka responses (from the broker or answered by the proxy), by API.", "stat_prefix", "api"),
		errors:    cv("trellis_kafka_response_errors_total", "Error codes in Kafka responses (one per failed request, topic or partition), by API and error name.", "stat_prefix", "api", "error"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "trellis_kafka_request_duration_seconds", Help: "Time from a Kafka request to its response, by API.", Buckets: LatencyBuckets,
		}, []string{"stat_prefix", "api"}),
		bytes:    cv("trellis_kafka_topic_bytes_total", "Record bytes produced to or fetched from a topic (direction produced|fetched).", "stat_prefix", "topic", "direction"),
		records:  cv("trellis_kafka_topic_records_total", "Records produced to or fetched from a topic, from record batch headers (direction produced|fetched).", "stat_prefix", "topic", "direction"),
		denied:   cv("trellis_kafka_denied_total", "Kafka requests refused: reason api_key (connection closed) or topic (answered TOPIC_AUTHORIZATION_FAILED), by API.", "stat_prefix", "reason", "api"),
		audited:  cv("trellis_kafka_audited_total", "Kafka requests (or parts of one) an AUDIT rule of the topic policy matched: reported, not refused, by API.", "stat_prefix", "api"),
		protocol: cv("trellis_kafka_protocol_errors_total", "Kafka connections closed or responses passed unparsed for a protocol error (frame_too_large, malformed, unexpected_response).", "stat_prefix", "reason"),
		injected: cv("trellis_kafka_trace_injected_total", "Produced records the kafka_trace filter gave a new W3C traceparent header.", "stat_prefix"),
		skipped:  cv("trellis_kafka_trace_skipped_total", "Produced records the kafka_trace filter left without a new traceparent, by reason (present, compressed, control, legacy_format, version, malformed).", "stat_prefix", "reason"),
		topics:   map[string]map[string]*KafkaTopic{},
	}
}

// Kafka are the handles of one kafka_broker filter (by stat_prefix).
// Envoy's counterparts are kafka.<stat_prefix>.request.<api>_request,
// .response.<api>_response, .request.unknown, .request.failure and
// <api>_request_duration.
type Kafka struct {
	statPrefix string
	c          *kafkaCollector
	apis       [128]atomic.Pointer[kafkaAPI]
	other      *kafkaAPI // keys kmsg does not know
	protocol   map[string]prometheus.Counter
	injected   prometheus.Counter
}

type kafkaAPI struct {
	name      string
	requests  prometheus.Counter
	responses prometheus.Counter
	duration  prometheus.Observer
	deniedKey prometheus.Counter
	deniedTop prometheus.Counter
	audited   prometheus.Counter
	mu        sync.Mutex
	errors    map[int16]prometheus.Counter
}

// KafkaTopic are the handles of one topic.
type KafkaTopic struct {
	producedBytes, producedRecords prometheus.Counter
	fetchedBytes, fetchedRecords   prometheus.Counter
}

// Kafka protocol error reasons.
const (
	KafkaFrameTooLarge      = "frame_too_large"
	KafkaMalformed          = "malformed"
	KafkaUnexpectedResponse = "unexpected_response"
)

// Kafka returns the handles of a kafka_broker filter's stat_prefix. Call it
// when a configuration is built, not per request.
func (r *Registry) Kafka(statPrefix string) *Kafka {
	c := registerOnce[*kafkaCollector](r.Prom, newKafkaCollector())
	k := &Kafka{statPrefix: statPrefix, c: c, protocol: map[string]prometheus.Counter{}}
	for _, reason := range []string{KafkaFrameTooLarge, KafkaMalformed, KafkaUnexpectedResponse} {
		k.protocol[reason] = c.protocol.WithLabelValues(statPrefix, reason)
	}
	k.other = k.newAPI("Unknown")
	k.injected = c.injected.WithLabelValues(statPrefix)
	return k
}

func (k *Kafka) newAPI(name string) *kafkaAPI {
	return &kafkaAPI{
		name:      name,
		requests:  k.c.requests.WithLabelValues(k.statPrefix, name),
		responses: k.c.responses.WithLabelValues(k.statPrefix, name),
		duration:  k.c.duration.WithLabelValues(k.statPrefix, name),
		deniedKey: k.c.denied.WithLabelValues(k.statPrefix, "api_key", name),
		deniedTop: k.c.denied.WithLabelValues(k.statPrefix, "topic", name),
		audited:   k.c.audited.WithLabelValues(k.statPrefix, name),
		errors:    map[int16]prometheus.Counter{},
	}
}

func (k *Kafka) api(key int16) *kafkaAPI {
	if key < 0 || int(key) >= len(k.apis) || kmsg.RequestForKey(key) == nil {
		return k.other
	}
	if a := k.apis[key].Load(); a != nil {
		return a
	}
	a := k.newAPI(kmsg.NameForKey(key))
	if !k.apis[key].CompareAndSwap(nil, a) {
		return k.apis[key].Load()
	}
	return a
}

// Request counts a request of API key.
func (k *Kafka) Request(key int16) { k.api(key).requests.Inc() }

// Response counts a response of API key that took d.
func (k *Kafka) Response(key int16, d time.Duration) {
	a := k.api(key)
	a.responses.Inc()
	a.duration.Observe(d.Seconds())
}

// Error counts one error code in a response of API key.
func (k *Kafka) Error(key, code int16) {
	a := k.api(key)
	a.mu.Lock()
	c, ok := a.errors[code]
	if !ok {
		name := "UNKNOWN_" + strconv.Itoa(int(code))
		if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok && e.Code == code {
			name = e.Message
		}
		c = k.c.errors.WithLabelValues(k.statPrefix, a.name, name)
		a.errors[code] = c
	}
	a.mu.Unlock()
	c.Inc()
}

// DeniedAPIKey counts a request refused for its API key.
func (k *Kafka) DeniedAPIKey(key int16) { k.api(key).deniedKey.Inc() }

// DeniedTopic counts a request (or part of one) refused by the topic
// policy.
func (k *Kafka) DeniedTopic(key int16) { k.api(key).deniedTop.Inc() }

// AuditedTopic counts a request (or part of one) an AUDIT rule of the
// topic policy matched.
func (k *Kafka) AuditedTopic(key int16) { k.api(key).audited.Inc() }

// ProtocolError counts a protocol error; reason is one of KafkaFrameTooLarge,
// KafkaMalformed, KafkaUnexpectedResponse.
func (k *Kafka) ProtocolError(reason string) {
	if c, ok := k.protocol[reason]; ok {
		c.Inc()
	}
}

// TraceInjected counts n records given a traceparent header.
func (k *Kafka) TraceInjected(n int64) { k.injected.Add(float64(n)) }

// TraceSkipped counts n records left without a new traceparent for reason
// (a kafka.SkipReason's name).
func (k *Kafka) TraceSkipped(reason string, n int64) {
	k.c.skipped.WithLabelValues(k.statPrefix, reason).Add(float64(n))
}

// Topic returns the handles of a topic, or of KafkaOtherTopic once the
// stat_prefix has MaxKafkaTopics topics. It takes a lock: resolve once per
// request, not per record. name may alias a reused buffer: it is copied
// when kept.
func (k *Kafka) Topic(name string) *KafkaTopic {
	c := k.c
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.topics[k.statPrefix]
	if set == nil {
		set = map[string]*KafkaTopic{}
		c.topics[k.statPrefix] = set
	}
	if t, ok := set[name]; ok {
		return t
	}
	name = strings.Clone(name) // it may alias a buffer the caller reuses
	label := name
	if len(set) >= MaxKafkaTopics {
		label = KafkaOtherTopic
		if t, ok := set[label]; ok {
			return t
		}
	}
	t := &KafkaTopic{
		producedBytes:   c.bytes.WithLabelValues(k.statPrefix, label, "produced"),
		producedRecords: c.records.WithLabelValues(k.statPrefix, label, "produced"),
		fetchedBytes:    c.bytes.WithLabelValues(k.statPrefix, label, "fetched"),
		fetchedRecords:  c.records.WithLabelValues(k.statPrefix, label, "fetched"),
	}
	set[label] = t
	return t
}

// Produced counts records and bytes produced to the topic.
func (t *KafkaTopic) Produced(records, bytes int64) {
	t.producedRecords.Add(float64(records))
	t.producedBytes.Add(float64(bytes))
}

// Fetched counts records and bytes fetched from the topic.
func (t *KafkaTopic) Fetched(records, bytes int64) {
	t.fetchedRecords.Add(float64(records))
	t.fetchedBytes.Add(float64(bytes))
}
