package metrics

import (
	"errors"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Directions of trellis_nats_messages_total and trellis_nats_bytes_total.
const (
	NATSPublish = "publish" // client → server: PUB, HPUB
	NATSDeliver = "deliver" // server → client: MSG, HMSG
)

// NATSMaxSubjects bounds the distinct subject label values per stat_prefix
// and direction (and for denials). Messages on further subjects are counted
// under NATSOtherSubject, so a client publishing to random subjects cannot
// grow the proxy's memory or the scrape without bound.
const NATSMaxSubjects = 1000

// NATSOtherSubject is the subject label of messages beyond NATSMaxSubjects.
const NATSOtherSubject = "_other"

// NATS are the handles of one NATS network filter, by stat_prefix. Subject
// handles are created on first use and kept for the life of the Registry,
// across configuration snapshots. A nil *NATS counts nothing.
type NATS struct {
	c      *natsCollector
	prefix string
	st     *natsPrefix
}

// NATSSubject counts the messages and bytes of one subject label in one
// direction. A nil *NATSSubject counts nothing.
type NATSSubject struct {
	msgs, bytes prometheus.Counter
}

// Add counts one message of size bytes (headers and payload).
func (s *NATSSubject) Add(size int) {
	if s != nil {
		s.msgs.Inc()
		s.bytes.Add(float64(size))
	}
}

// natsCollector owns the NATS vectors and the per-prefix subject tables. It
// is registered once per Registry; later lookups find it through the
// registry's AlreadyRegisteredError, so the state lives in the Registry
// without a field there or any package state.
type natsCollector struct {
	messages, bytes, denied, audited, errors *prometheus.CounterVec

	mu       sync.Mutex
	prefixes map[string]*natsPrefix
}

type natsPrefix struct {
	mu      sync.RWMutex
	subject [2]map[string]*NATSSubject // by direction index: publish, deliver
	denied  map[[2]string]prometheus.Counter
	audited map[[2]string]prometheus.Counter
	errs    map[string]prometheus.Counter
}

func (c *natsCollector) Describe(ch chan<- *prometheus.Desc) {
	c.messages.Describe(ch)
	c.bytes.Describe(ch)
	c.denied.Describe(ch)
	c.audited.Describe(ch)
	c.errors.Describe(ch)
}

func (c *natsCollector) Collect(ch chan<- prometheus.Metric) {
	c.messages.Collect(ch)
	c.bytes.Collect(ch)
	c.denied.Collect(ch)
	c.audited.Collect(ch)
	c.errors.Collect(ch)
}

// NATS returns the handles of the NATS filter with statPrefix. The metrics
// are registered on first use, so a proxy without a NATS filter exports
// none.
func (r *Registry) NATS(statPrefix string) *NATS {
	if r == nil {
		return nil
	}
	labels := []string{"stat_prefix", "direction", "subject"}
	c := &natsCollector{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_nats_messages_total",
			Help: "NATS messages through the nats filter: publish (PUB/HPUB, by subject) and deliver (MSG/HMSG, by the subscription's subject pattern)."}, labels),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_nats_bytes_total",
			Help: "NATS message bytes (headers and payload, not protocol framing) through the nats filter."}, labels),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_nats_denied_total",
			Help: "PUB/HPUB and SUB operations refused by the nats filter's policy."}, []string{"stat_prefix", "operation", "subject"}),
		audited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_nats_audited_total",
			Help: "PUB/HPUB and SUB operations an AUDIT rule of the nats filter's policy matched: reported, not refused."}, []string{"stat_prefix", "operation", "subject"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_nats_protocol_errors_total",
			Help: "NATS connections closed by the nats filter for a protocol error, by reason."}, []string{"stat_prefix", "reason"}),
		prefixes: map[string]*natsPrefix{},
	}
	if err := r.Prom.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			panic(err) // a different metric with one of these names: a programmer error
		}
		c = are.ExistingCollector.(*natsCollector)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.prefixes[statPrefix]
	if st == nil {
		st = &natsPrefix{
			subject: [2]map[string]*NATSSubject{{}, {}},
			denied:  map[[2]string]prometheus.Counter{},
			audited: map[[2]string]prometheus.Counter{},
			errs:    map[string]prometheus.Counter{},
		}
		c.prefixes[statPrefix] = st
	}
	return &NATS{c: c, prefix: statPrefix, st: st}
}

// Subject returns the handles of subject in direction (NATSPublish or
// NATSDeliver). Looking up a known subject does not allocate.
func (n *NATS) Subject(direction string, subject []byte) *NATSSubject {
	if n == nil {
		return nil
	}
	d := 0
	if direction == NATSDeliver {
		d = 1
	}
	n.st.mu.RLock()
	s := n.st.subject[d][string(subject)]
	n.st.mu.RUnlock()
	if s != nil {
		return s
	}
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	m := n.st.subject[d]
	key := string(subject)
	if s := m[key]; s != nil {
		return s
	}
	label := validLabel(key)
	if len(m) >= NATSMaxSubjects {
		label = NATSOtherSubject
		if s := m[label]; s != nil {
			return s
		}
		key = label
	}
	s = &NATSSubject{
		msgs:  n.c.messages.WithLabelValues(n.prefix, direction, label),
		bytes: n.c.bytes.WithLabelValues(n.prefix, direction, label),
	}
	m[key] = s
	return s
}

// Denied counts an operation ("publish" or "subscribe") on subject refused
// by policy.
func (n *NATS) Denied(operation string, subject []byte) {
	if n == nil {
		return
	}
	n.count(n.c.denied, n.st.denied, operation, subject)
}

// Audited counts an operation ("publish" or "subscribe") on subject that
// an AUDIT rule of the policy matched.
func (n *NATS) Audited(operation string, subject []byte) {
	if n == nil {
		return
	}
	n.count(n.c.audited, n.st.audited, operation, subject)
}

// count increments the series of vec for operation and subject, kept in m
// (at most NATSMaxSubjects subjects, then NATSOtherSubject).
func (n *NATS) count(vec *prometheus.CounterVec, m map[[2]string]prometheus.Counter, operation string, subject []byte) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	k := [2]string{operation, string(subject)}
	c := m[k]
	if c == nil {
		if len(m) >= NATSMaxSubjects {
			k[1] = NATSOtherSubject
			c = m[k]
		}
		if c == nil {
			c = vec.WithLabelValues(n.prefix, operation, validLabel(k[1]))
			m[k] = c
		}
	}
	c.Inc()
}

// ProtocolError counts a connection closed for a protocol error; reason is
// from a small fixed set (see nats.ProtocolError).
func (n *NATS) ProtocolError(reason string) {
	if n == nil {
		return
	}
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	c := n.st.errs[reason]
	if c == nil {
		c = n.c.errors.WithLabelValues(n.prefix, reason)
		n.st.errs[reason] = c
	}
	c.Inc()
}

// validLabel makes s a valid label value: subjects are client bytes, and the
// Prometheus client panics on invalid UTF-8.
func validLabel(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
