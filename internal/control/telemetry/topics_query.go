package telemetry

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// KindTopicName is the name of the topic kind in the API
// (GET /api/v1/stats?kind=topic). Topics are not a Kind: their rows carry
// messaging numbers, not golden metrics (TopicRow).
const KindTopicName = "topic"

// TopicQuery selects messaging metrics per broker and topic.
type TopicQuery struct {
	// Mesh restricts the answer to one mesh; "" means every mesh.
	Mesh string
	// Name selects one topic or NATS subject (exactly); "" lists them all.
	Name string
	// Broker selects one broker: a Broker's name (the bridge), or a
	// Service port "namespace/name:port" (the protocol filters), where
	// "name:port", "namespace/name" and "name" match too. "" lists all.
	Broker string
	// Window is as Query.Window.
	Window time.Duration
}

// TopicCounts are what a topic saw over the window (Published, Delivered,
// Retried and DeadLettered from the HTTP bridge; Denied, Produced and
// Consumed from the Kafka and NATS filters).
type TopicCounts struct {
	// Published counts the messages the application published through
	// the bridge that the broker acknowledged.
	Published uint64 `json:"published"`
	// Delivered counts the deliveries the application accepted (2xx).
	Delivered uint64 `json:"delivered"`
	// Retried counts delivery attempts after the first.
	Retried uint64 `json:"retried"`
	// DeadLettered counts messages sent to the dead-letter topic.
	DeadLettered uint64 `json:"deadLettered"`
	// Denied counts operations the filters' policy refused (Kafka
	// requests or parts of one, NATS PUB/SUB).
	Denied uint64 `json:"denied"`
	// Produced counts Kafka records produced and NATS messages published,
	// by the callers' sidecars (outbound).
	Produced uint64 `json:"produced"`
	// Consumed counts Kafka records fetched and NATS messages delivered to
	// subscribers, by the consumers' sidecars (outbound).
	Consumed uint64 `json:"consumed"`
}

// TopicRates are TopicCounts per second.
type TopicRates struct {
	Published    float64 `json:"published"`
	Delivered    float64 `json:"delivered"`
	Retried      float64 `json:"retried"`
	DeadLettered float64 `json:"deadLettered"`
	Denied       float64 `json:"denied"`
	Produced     float64 `json:"produced"`
	Consumed     float64 `json:"consumed"`
}

// TopicRow is the messaging metrics of one topic of one broker.
type TopicRow struct {
	Kind string `json:"kind"`
	Mesh string `json:"mesh"`
	// Broker is the Broker's name (Via bridge) or the Service port,
	// namespace/name:port (Via kafka or nats).
	Broker string `json:"broker"`
	// Topic is the Kafka topic or NATS subject; a NATS delivery counts
	// under the subscription's subject (a pattern such as orders.*). ""
	// holds Kafka denials, which name no topic.
	Topic string `json:"topic"`
	// Via is bridge, kafka or nats.
	Via       string      `json:"via"`
	Counts    TopicCounts `json:"counts"`
	PerSecond TopicRates  `json:"perSecond"`
	// Lag is the messages waiting for the topic's bridge subscriptions as
	// the broker reports it, at the proxies' last pushes: the largest
	// report of each subscription (its proxies share one consumer), summed
	// over subscriptions. Null when no subscription reports a lag.
	Lag *int64 `json:"lag,omitempty"`
}

// TopicResult is the answer to a topic query.
type TopicResult struct {
	Window string     `json:"window"`
	Rows   []TopicRow `json:"rows"`
}

// Topics answers a topic query: every topic with data within the
// retention (or a fresh lag), sorted by mesh, broker and topic.
func (a *Aggregator) Topics(q TopicQuery) (TopicResult, error) {
	w, n, err := a.window(q.Window)
	if err != nil {
		return TopicResult{}, err
	}
	now := a.o.Now()
	cur := a.interval(now)
	secs := a.o.Resolution.Seconds()
	out := TopicResult{Window: w.String(), Rows: []TopicRow{}}
	a.mu.Lock()
	for k, s := range a.topics {
		if (q.Mesh != "" && k.mesh != q.Mesh) || (q.Name != "" && k.topic != q.Name) || !matchBroker(k.broker, q.Broker) {
			continue
		}
		c, intervals := s.window(cur, n)
		row := TopicRow{Kind: KindTopicName, Mesh: k.mesh, Broker: k.broker, Topic: k.topic, Via: k.via, Counts: TopicCounts{
			Published: c[tPublished], Delivered: c[tDelivered], Retried: c[tRetried], DeadLettered: c[tDeadLettered],
			Denied: c[tDenied], Produced: c[tProduced], Consumed: c[tConsumed],
		}}
		if intervals > 0 {
			d := float64(intervals) * secs
			r := func(i int) float64 { return float64(c[i]) / d }
			row.PerSecond = TopicRates{Published: r(tPublished), Delivered: r(tDelivered), Retried: r(tRetried),
				DeadLettered: r(tDeadLettered), Denied: r(tDenied), Produced: r(tProduced), Consumed: r(tConsumed)}
		}
		row.Lag = s.latestLag(now, a.o.StaleAfter)
		out.Rows = append(out.Rows, row)
	}
	a.mu.Unlock()
	slices.SortFunc(out.Rows, func(x, y TopicRow) int {
		return cmp.Or(cmp.Compare(x.Mesh, y.Mesh), cmp.Compare(x.Broker, y.Broker), cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Via, y.Via))
	})
	return out, nil
}

// latestLag sums, over the subscriptions, the largest fresh lag any proxy
// reported for each: the proxies of one subscription share its consumer
// (group, durable, queue), so each reports the same backlog.
func (s *topicSeries) latestLag(now time.Time, stale time.Duration) *int64 {
	if len(s.lag) == 0 {
		return nil
	}
	per := map[string]int64{}
	for src, g := range s.lag {
		if now.Sub(g.at) > stale {
			continue
		}
		if v, ok := per[src.sub]; !ok || g.v > v {
			per[src.sub] = g.v
		}
	}
	if len(per) == 0 {
		return nil
	}
	var sum int64
	for _, v := range per {
		sum += v
	}
	return &sum
}

// matchBroker tells whether broker b is selected by q: equal, by the
// name without its namespace, or without its port.
func matchBroker(b, q string) bool {
	if matches(b, q) {
		return true
	}
	if i := strings.LastIndexByte(b, ':'); i > 0 && strings.Contains(b, "/") {
		return matches(b[:i], q)
	}
	return false
}
