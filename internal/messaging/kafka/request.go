package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// API keys the package inspects.
const (
	produceKey         int16 = 0
	fetchKey           int16 = 1
	metadataKey        int16 = 3
	findCoordinatorKey int16 = 10
	apiVersionsKey     int16 = 18
	describeClusterKey int16 = 60
)

// TopicData is what one request or response carries for one topic.
type TopicData struct {
	Topic      string
	Partitions int
	// Records and Bytes are the records and the bytes of the records
	// fields (Produce requests, Fetch responses); zero elsewhere.
	Records int64
	Bytes   int64
}

// Request is an inspected request frame.
type Request struct {
	Header
	// Msg is the decoded body for Produce, Fetch, Metadata and
	// FindCoordinator (the kinds the proxy acts on); nil for others. Its
	// strings alias the frame.
	Msg kmsg.Request
	// Topics are the topics the request names: those produced to, fetched
	// from, or asked about (Metadata; nil with AllTopics).
	Topics []TopicData
	// AllTopics is a Metadata request for every topic.
	AllTopics bool
	// NoResponse is a Produce request with acks=0: the broker answers
	// nothing.
	NoResponse bool
}

// ParseRequest inspects a request frame (size prefix included). The body is
// decoded only for the kinds the proxy acts on, at versions kmsg knows; a
// body that does not decode is ErrMalformed.
func ParseRequest(frame []byte) (*Request, error) {
	h, err := ParseRequestHeader(frame)
	if err != nil {
		return nil, err
	}
	r := &Request{Header: h}
	if !h.Known {
		return r, nil
	}
	body := frame[4+h.Len:]
	switch h.Key {
	case produceKey:
		m := &kmsg.ProduceRequest{Version: h.Version}
		if err := m.UnsafeReadFrom(body); err != nil {
			return nil, fmt.Errorf("%w: Produce v%d: %v", ErrMalformed, h.Version, err)
		}
		r.Msg, r.NoResponse = m, m.Acks == 0
		r.Topics = make([]TopicData, len(m.Topics))
		for i := range m.Topics {
			t := &m.Topics[i]
			d := TopicData{Topic: t.Topic, Partitions: len(t.Partitions)}
			for j := range t.Partitions {
				rec := t.Partitions[j].Records
				d.Bytes += int64(len(rec))
				d.Records += CountRecords(rec)
			}
			r.Topics[i] = d
		}
	case fetchKey:
		m := &kmsg.FetchRequest{Version: h.Version}
		if err := m.UnsafeReadFrom(body); err != nil {
			return nil, fmt.Errorf("%w: Fetch v%d: %v", ErrMalformed, h.Version, err)
		}
		r.Msg = m
		r.Topics = make([]TopicData, len(m.Topics))
		for i := range m.Topics {
			r.Topics[i] = TopicData{Topic: m.Topics[i].Topic, Partitions: len(m.Topics[i].Partitions)}
		}
	case metadataKey:
		m := &kmsg.MetadataRequest{Version: h.Version}
		if err := m.UnsafeReadFrom(body); err != nil {
			return nil, fmt.Errorf("%w: Metadata v%d: %v", ErrMalformed, h.Version, err)
		}
		r.Msg = m
		// v0: an empty list means all topics; v1+: a null list does.
		r.AllTopics = m.Topics == nil || (h.Version == 0 && len(m.Topics) == 0)
		r.Topics = make([]TopicData, 0, len(m.Topics))
		for _, t := range m.Topics {
			if t.Topic != nil {
				r.Topics = append(r.Topics, TopicData{Topic: *t.Topic})
			}
		}
	case findCoordinatorKey:
		m := &kmsg.FindCoordinatorRequest{Version: h.Version}
		if err := m.UnsafeReadFrom(body); err != nil {
			return nil, fmt.Errorf("%w: FindCoordinator v%d: %v", ErrMalformed, h.Version, err)
		}
		r.Msg = m
	}
	return r, nil
}

// APIName returns Kafka's name of an API key ("Produce", "Fetch"), or
// "Unknown" for a key kmsg does not know.
func APIName(key int16) string {
	if kmsg.RequestForKey(key) == nil {
		return "Unknown"
	}
	return kmsg.NameForKey(key)
}
