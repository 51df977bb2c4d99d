package telemetry

import (
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The messaging metrics the topic kind reads (docs/metrics.md, "Topics").
const (
	famBridgePublished = "trellis_bridge_published_total"
	famBridgeDelivered = "trellis_bridge_delivered_total"
	famBridgeRetries   = "trellis_bridge_retries_total"
	famBridgeLag       = "trellis_bridge_lag"
	famKafkaRecords    = "trellis_kafka_topic_records_total"
	famKafkaDenied     = "trellis_kafka_denied_total"
	famNATSMessages    = "trellis_nats_messages_total"
	famNATSDenied      = "trellis_nats_denied_total"
	outboundPrefix     = "outbound:"
)

// Sample keys of families with a third label that matters (a direction,
// a reason): sampleKey holds two label values, so the third picks one of
// these constant family keys instead of a concatenation per sample.
const (
	keyKafkaProduced     = famKafkaRecords + "|produced"
	keyKafkaFetched      = famKafkaRecords + "|fetched"
	keyNATSPublish       = famNATSMessages + "|publish"
	keyNATSDeliver       = famNATSMessages + "|deliver"
	keyKafkaDeniedKey    = famKafkaDenied + "|api_key"
	keyKafkaDeniedTopic  = famKafkaDenied + "|topic"
	keyNATSDeniedPublish = famNATSDenied + "|publish"
	keyNATSDeniedSub     = famNATSDenied + "|subscribe"
)

// Where a topic row's numbers come from: the HTTP bridge (broker: the
// Broker resource's name) or a protocol filter (broker: the Service port,
// <namespace>/<name>:<port>).
const (
	ViaBridge = "bridge"
	ViaKafka  = "kafka"
	ViaNATS   = "nats"
)

// The counters of a topic series, indexes into topicCounts.
const (
	tPublished    = iota // bridge: publishes the broker acknowledged
	tDelivered           // bridge: deliveries the application accepted (2xx)
	tRetried             // bridge: delivery attempts after the first
	tDeadLettered        // bridge: messages sent to the dead-letter topic
	tDenied              // filters: operations refused by policy
	tProduced            // filters: records/messages produced, caller side
	tConsumed            // filters: records fetched/messages delivered, caller side
	nTopic
)

type topicCounts [nTopic]uint64

// topicKey identifies a topic series: one topic (or subject) of one
// broker in one mesh.
type topicKey struct {
	mesh, broker, topic string
	via                 string
}

// lagSource is one subscription's lag as one proxy reports it.
type lagSource struct{ node, sub string }

// topicSeries is one topic's rolling window and the latest lag of each
// subscription reading it, per proxy.
type topicSeries struct {
	first   int64
	buckets []topicBucket
	lag     map[lagSource]gaugeSample
}

type topicBucket struct {
	idx int64
	c   topicCounts
}

// topicNode is a proxy's per-push scratch space for topics, made on the
// first messaging metric it pushes (a proxy without any costs nothing).
type topicNode struct {
	deltas map[topicKey]*topicCounts
	lag    map[lagKey]int64
	free   []*topicCounts
	// subs maps a bridge subscription to its broker and topic, learned
	// from trellis_bridge_delivered_total: the retry and lag metrics are
	// labelled with the subscription only.
	subs map[string]subRef
	// later holds the families that need subs, read after the others.
	later []*dto.MetricFamily
}

type subRef struct{ broker, topic string }

type lagKey struct {
	k   topicKey
	sub string
}

func (e *extractor) topicNode() *topicNode {
	if e.ns.topics == nil {
		e.ns.topics = &topicNode{deltas: map[topicKey]*topicCounts{}, lag: map[lagKey]int64{}, subs: map[string]subRef{}}
	}
	return e.ns.topics
}

// topicFamily reads a messaging family (and ignores any other).
func (e *extractor) topicFamily(f *dto.MetricFamily) {
	switch name := f.GetName(); name {
	case famBridgePublished, famBridgeDelivered, famKafkaRecords, famKafkaDenied, famNATSMessages, famNATSDenied:
		for _, m := range f.GetMetric() {
			e.topicMetric(name, m)
		}
	case famBridgeRetries, famBridgeLag:
		tn := e.topicNode()
		tn.later = append(tn.later, f)
	}
}

func (e *extractor) topicMetric(fam string, m *dto.Metric) {
	v := m.GetCounter().GetValue()
	switch fam {
	case famBridgePublished:
		if label(m, "result") != "ok" {
			return
		}
		broker, topic := label(m, "broker"), label(m, "topic")
		e.topicAdd(sampleKey{fam, broker, topic}, v, topicKey{e.p.Mesh, broker, topic, ViaBridge}, tPublished)
	case famBridgeDelivered:
		sub, broker, topic, result := label(m, "subscription"), label(m, "broker"), label(m, "topic"), label(m, "result")
		if tn := e.topicNode(); tn.subs[sub] != (subRef{broker, topic}) {
			tn.subs[sub] = subRef{broker, topic}
		}
		i := tDelivered
		switch result {
		case "ok":
		case "dead_lettered":
			i = tDeadLettered
		default:
			return // a failed attempt (retries count those) or a drop
		}
		e.topicAdd(sampleKey{fam, sub, result}, v, topicKey{e.p.Mesh, broker, topic, ViaBridge}, i)
	case famKafkaRecords, famNATSMessages:
		// Only the caller's side (the client's sidecar, outbound) counts:
		// the broker's side sees the same records again.
		prefix := label(m, "stat_prefix")
		broker, ok := strings.CutPrefix(prefix, outboundPrefix)
		if !ok {
			return
		}
		key, i, via, topic := "", tProduced, ViaKafka, ""
		if fam == famKafkaRecords {
			topic = label(m, "topic")
			switch label(m, "direction") {
			case "produced":
				key = keyKafkaProduced
			case "fetched":
				key, i = keyKafkaFetched, tConsumed
			}
		} else {
			via, topic = ViaNATS, label(m, "subject")
			switch label(m, "direction") {
			case "publish":
				key = keyNATSPublish
			case "deliver":
				key, i = keyNATSDeliver, tConsumed
			}
		}
		if key != "" {
			e.topicAdd(sampleKey{key, prefix, topic}, v, topicKey{e.p.Mesh, broker, topic, via}, i)
		}
	case famKafkaDenied, famNATSDenied:
		// Refusals count on whichever side refused (the broker's inbound,
		// where the mesh puts the policy): nothing is refused twice.
		prefix := label(m, "stat_prefix")
		broker, ok := strings.CutPrefix(prefix, outboundPrefix)
		if !ok {
			broker, ok = strings.CutPrefix(prefix, inboundPrefix)
		}
		if !ok {
			return
		}
		var key, b, topic, via string
		if fam == famKafkaDenied {
			// Kafka denials carry no topic: they count under topic "".
			b, via = label(m, "api"), ViaKafka
			switch label(m, "reason") {
			case "api_key":
				key = keyKafkaDeniedKey
			case "topic":
				key = keyKafkaDeniedTopic
			}
		} else {
			topic, via = label(m, "subject"), ViaNATS
			b = topic
			switch label(m, "operation") {
			case "publish":
				key = keyNATSDeniedPublish
			case "subscribe":
				key = keyNATSDeniedSub
			}
		}
		if key != "" {
			e.topicAdd(sampleKey{key, prefix, b}, v, topicKey{e.p.Mesh, broker, topic, via}, tDenied)
		}
	}
}

// topicAdd counts a cumulative counter's increase in counter i of k.
func (e *extractor) topicAdd(sk sampleKey, v float64, k topicKey, i int) {
	if n := e.counter(sk, v); n > 0 {
		e.topicDelta(k)[i] += n
	}
}

func (e *extractor) topicDelta(k topicKey) *topicCounts {
	tn := e.topicNode()
	d := tn.deltas[k]
	if d == nil {
		if n := len(tn.free); n > 0 {
			d, tn.free = tn.free[n-1], tn.free[:n-1]
		} else {
			d = new(topicCounts)
		}
		tn.deltas[k] = d
	}
	return d
}

// topicsLater reads the families labelled by subscription only, once
// the push's deliveries have said which broker and topic each reads.
func (e *extractor) topicsLater() {
	tn := e.ns.topics
	if tn == nil {
		return
	}
	for _, f := range tn.later {
		fam := f.GetName()
		for _, m := range f.GetMetric() {
			sub := label(m, "subscription")
			ref, ok := tn.subs[sub]
			k := topicKey{e.p.Mesh, ref.broker, ref.topic, ViaBridge}
			if fam == famBridgeRetries {
				// Before its first delivery attempt a subscription has no
				// retries: one that is unknown has none to lose.
				n := e.counter(sampleKey{fam, sub, ""}, m.GetCounter().GetValue())
				if ok && n > 0 {
					e.topicDelta(k)[tRetried] += n
				}
			} else if ok && e.p.Dataplane != "" {
				tn.lag[lagKey{k, sub}] = int64(m.GetGauge().GetValue())
			}
		}
	}
	clear(tn.later)
	tn.later = tn.later[:0]
}

// feedTopicsLocked adds a push's topic deltas and lags to the series.
func (a *Aggregator) feedTopicsLocked(nodeID string, tn *topicNode, idx int64, now time.Time) {
	if tn == nil {
		return
	}
	for k, d := range tn.deltas {
		if s := a.topicSeriesLocked(k, idx); s != nil {
			s.add(idx, d)
		}
		*d = topicCounts{}
		tn.free = append(tn.free, d)
	}
	clear(tn.deltas)
	for lk, v := range tn.lag {
		if s := a.topicSeriesLocked(lk.k, idx); s != nil {
			if s.lag == nil {
				s.lag = map[lagSource]gaugeSample{}
			}
			s.lag[lagSource{nodeID, lk.sub}] = gaugeSample{v, now}
		}
	}
	clear(tn.lag)
}

// topicSeriesLocked returns the series of k, creating it unless the cap
// on series (shared with the other kinds) is reached.
func (a *Aggregator) topicSeriesLocked(k topicKey, idx int64) *topicSeries {
	if s := a.topics[k]; s != nil {
		return s
	}
	if len(a.series)+len(a.topics) >= a.o.MaxSeries {
		a.dropped++
		return nil
	}
	s := &topicSeries{first: idx, buckets: make([]topicBucket, a.n)}
	a.topics[k] = s
	return s
}

func (s *topicSeries) add(idx int64, d *topicCounts) {
	b := &s.buckets[int(idx%int64(len(s.buckets)))]
	if b.idx != idx {
		*b = topicBucket{idx: idx}
	}
	for i, n := range d {
		b.c[i] += n
	}
}

// window adds up the n complete intervals before cur, and says over how
// many of them the series existed.
func (s *topicSeries) window(cur, n int64) (c topicCounts, intervals int64) {
	from := max(cur-min(n, int64(len(s.buckets))), s.first)
	if from >= cur {
		return c, 0
	}
	for idx := from; idx < cur; idx++ {
		if b := &s.buckets[int(idx%int64(len(s.buckets)))]; b.idx == idx {
			for i, v := range b.c {
				c[i] += v
			}
		}
	}
	return c, cur - from
}

func (s *topicSeries) lastActive() int64 {
	last := int64(-1)
	for i := range s.buckets {
		if b := &s.buckets[i]; b.idx > last && b.c != (topicCounts{}) {
			last = b.idx
		}
	}
	return last
}

// sweepTopicsLocked drops stale lags, and topics without data for the
// retention period and without a fresh lag.
func (a *Aggregator) sweepTopicsLocked(now time.Time, oldest int64) {
	for k, s := range a.topics {
		for src, g := range s.lag {
			if now.Sub(g.at) > a.o.StaleAfter {
				delete(s.lag, src)
			}
		}
		if len(s.lag) == 0 && s.lastActive() < oldest && s.first < oldest {
			delete(a.topics, k)
		}
	}
}

// forgetTopicsLocked drops the lags a proxy reported.
func (a *Aggregator) forgetTopicsLocked(nodeID string) {
	for _, s := range a.topics {
		for src := range s.lag {
			if src.node == nodeID {
				delete(s.lag, src)
			}
		}
	}
}
