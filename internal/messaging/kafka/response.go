package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicAuthorizationFailed is Kafka's TOPIC_AUTHORIZATION_FAILED error
// code.
const TopicAuthorizationFailed int16 = 29

// HostPort is an address advertised to clients.
type HostPort struct {
	Host string
	Port int32
}

// Rewrite says how a proxy changes responses; a nil or zero Rewrite
// changes nothing. It is immutable once in use.
type Rewrite struct {
	// Brokers maps a broker id to the address clients must reach it at
	// (Envoy's id_based_broker_address_rewrite_spec). Metadata,
	// FindCoordinator and DescribeCluster responses, and the leader
	// endpoints of Produce and Fetch responses, are rewritten; brokers
	// without an entry keep their address.
	Brokers map[int32]HostPort
	// Force re-encodes every inspected response even when nothing changed
	// (Envoy's force_response_rewrite).
	Force bool
	// MaxVersions caps the versions that ApiVersions responses advertise,
	// by API key.
	MaxVersions map[int16]int16
}

// Pending is what a proxy remembers of a request until its response.
type Pending struct {
	Key, Version int16
	Flexible     bool
	// AllTopics is a Metadata request for every topic.
	AllTopics bool
	// Describe, when set, is asked about each topic of a Metadata
	// response: a topic it refuses is removed from an all-topics answer
	// and answered with TOPIC_AUTHORIZATION_FAILED otherwise.
	Describe func(topic string) bool
	// Denied are topics removed from a Produce or Fetch request; the
	// response gets them back with TOPIC_AUTHORIZATION_FAILED.
	Denied []DeniedTopic
}

// DeniedTopic is a topic and the partitions a request named for it.
type DeniedTopic struct {
	Topic      string
	ID         [16]byte // the topic id of requests that name topics by id (v13+)
	Partitions []int32
}

// Response is what a proxy learned from a response.
type Response struct {
	// Errors are the non-zero error codes in the response: one per failed
	// request, topic or partition.
	Errors []int16
	// Topics are, for Fetch, the records and bytes returned per topic.
	Topics []TopicData
}

// ParseResponse inspects a response frame (size prefix included) to the
// request p describes and applies rw. It returns the frame to send: frame
// itself when nothing changed, else a new one. Responses to kinds the
// package does not inspect, and unknown versions, pass unchanged with an
// empty Response. A body that does not decode is ErrMalformed.
func ParseResponse(frame []byte, p *Pending, rw *Rewrite) (Response, []byte, error) {
	var out Response
	m := frame[4:]
	hl, err := responseHeaderLen(p.Key, p.Flexible, m)
	if err != nil {
		return out, nil, err
	}
	corr, _ := Correlation(frame)
	if rw == nil {
		rw = &Rewrite{}
	}
	body := m[hl:]
	var msg kmsg.Response
	changed := false
	switch p.Key {
	case produceKey:
		r := &kmsg.ProduceResponse{Version: p.Version}
		if err := r.UnsafeReadFrom(body); err != nil {
			return out, nil, fmt.Errorf("%w: Produce v%d response: %v", ErrMalformed, p.Version, err)
		}
		for i := range r.Topics {
			for _, pt := range r.Topics[i].Partitions {
				out.Errors = appendErr(out.Errors, pt.ErrorCode)
			}
		}
		for i := range r.Brokers {
			changed = rw.broker(r.Brokers[i].NodeID, &r.Brokers[i].Host, &r.Brokers[i].Port) || changed
		}
		for _, d := range p.Denied {
			t := kmsg.NewProduceResponseTopic()
			t.Topic, t.TopicID = d.Topic, d.ID
			for _, part := range d.Partitions {
				pt := kmsg.NewProduceResponseTopicPartition()
				pt.Partition, pt.ErrorCode, pt.BaseOffset = part, TopicAuthorizationFailed, -1
				t.Partitions = append(t.Partitions, pt)
				out.Errors = append(out.Errors, TopicAuthorizationFailed)
			}
			r.Topics = append(r.Topics, t)
			changed = true
		}
		msg = r
	case fetchKey:
		r := &kmsg.FetchResponse{Version: p.Version}
		if err := r.UnsafeReadFrom(body); err != nil {
			return out, nil, fmt.Errorf("%w: Fetch v%d response: %v", ErrMalformed, p.Version, err)
		}
		out.Errors = appendErr(out.Errors, r.ErrorCode)
		out.Topics = make([]TopicData, len(r.Topics))
		for i := range r.Topics {
			t := &r.Topics[i]
			d := TopicData{Topic: t.Topic, Partitions: len(t.Partitions)}
			for j := range t.Partitions {
				pt := &t.Partitions[j]
				out.Errors = appendErr(out.Errors, pt.ErrorCode)
				d.Bytes += int64(len(pt.RecordBatches))
				d.Records += CountRecords(pt.RecordBatches)
			}
			out.Topics[i] = d
		}
		for i := range r.Brokers {
			changed = rw.broker(r.Brokers[i].NodeID, &r.Brokers[i].Host, &r.Brokers[i].Port) || changed
		}
		for _, d := range p.Denied {
			t := kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = d.Topic, d.ID
			for _, part := range d.Partitions {
				pt := kmsg.NewFetchResponseTopicPartition()
				pt.Partition, pt.ErrorCode = part, TopicAuthorizationFailed
				pt.HighWatermark, pt.LastStableOffset, pt.LogStartOffset = -1, -1, -1
				t.Partitions = append(t.Partitions, pt)
				out.Errors = append(out.Errors, TopicAuthorizationFailed)
			}
			r.Topics = append(r.Topics, t)
			changed = true
		}
		msg = r
	case metadataKey:
		r := &kmsg.MetadataResponse{Version: p.Version}
		if err := r.UnsafeReadFrom(body); err != nil {
			return out, nil, fmt.Errorf("%w: Metadata v%d response: %v", ErrMalformed, p.Version, err)
		}
		out.Errors = appendErr(out.Errors, r.ErrorCode)
		for i := range r.Brokers {
			changed = rw.broker(r.Brokers[i].NodeID, &r.Brokers[i].Host, &r.Brokers[i].Port) || changed
		}
		if p.Describe != nil {
			changed = describeFilter(r, p) || changed
		}
		for _, t := range r.Topics {
			out.Errors = appendErr(out.Errors, t.ErrorCode)
		}
		msg = r
	case findCoordinatorKey:
		r := &kmsg.FindCoordinatorResponse{Version: p.Version}
		if err := r.UnsafeReadFrom(body); err != nil {
			return out, nil, fmt.Errorf("%w: FindCoordinator v%d response: %v", ErrMalformed, p.Version, err)
		}
		out.Errors = appendErr(out.Errors, r.ErrorCode)
		if r.ErrorCode == 0 && p.Version < 4 {
			changed = rw.broker(r.NodeID, &r.Host, &r.Port) || changed
		}
		for i := range r.Coordinators {
			c := &r.Coordinators[i]
			out.Errors = appendErr(out.Errors, c.ErrorCode)
			if c.ErrorCode == 0 {
				changed = rw.broker(c.NodeID, &c.Host, &c.Port) || changed
			}
		}
		msg = r
	case describeClusterKey:
		r := &kmsg.DescribeClusterResponse{Version: p.Version}
		if err := r.UnsafeReadFrom(body); err != nil {
			return out, nil, fmt.Errorf("%w: DescribeCluster v%d response: %v", ErrMalformed, p.Version, err)
		}
		out.Errors = appendErr(out.Errors, r.ErrorCode)
		for i := range r.Brokers {
			changed = rw.broker(r.Brokers[i].NodeID, &r.Brokers[i].Host, &r.Brokers[i].Port) || changed
		}
		msg = r
	case apiVersionsKey:
		r := &kmsg.ApiVersionsResponse{Version: p.Version}
		if err := r.UnsafeReadFrom(body); err != nil {
			// A broker that does not know the requested version answers
			// UNSUPPORTED_VERSION at v0; pass that through.
			r = &kmsg.ApiVersionsResponse{Version: 0}
			if err := r.UnsafeReadFrom(body); err != nil {
				return out, nil, fmt.Errorf("%w: ApiVersions v%d response: %v", ErrMalformed, p.Version, err)
			}
			out.Errors = appendErr(out.Errors, r.ErrorCode)
			return out, frame, nil
		}
		out.Errors = appendErr(out.Errors, r.ErrorCode)
		for i := range r.ApiKeys {
			k := &r.ApiKeys[i]
			if max, ok := rw.MaxVersions[k.ApiKey]; ok && k.MaxVersion > max {
				k.MaxVersion = max
				changed = true
			}
		}
		msg = r
	default:
		return out, frame, nil
	}
	if !changed && !rw.Force {
		return out, frame, nil
	}
	return out, AppendResponse(nil, corr, msg), nil
}

// describeFilter applies p.Describe to a Metadata response.
func describeFilter(r *kmsg.MetadataResponse, p *Pending) bool {
	changed := false
	kept := r.Topics[:0]
	for _, t := range r.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if p.Describe(name) {
			kept = append(kept, t)
			continue
		}
		changed = true
		if p.AllTopics {
			continue // Kafka leaves unauthorized topics out of an all-topics answer
		}
		t.ErrorCode, t.Partitions, t.TopicID, t.IsInternal = TopicAuthorizationFailed, nil, [16]byte{}, false
		kept = append(kept, t)
	}
	r.Topics = kept
	return changed
}

// broker rewrites the address of broker id; it reports a change.
func (rw *Rewrite) broker(id int32, host *string, port *int32) bool {
	hp, ok := rw.Brokers[id]
	if !ok || (hp.Host == *host && hp.Port == *port) {
		return false
	}
	*host, *port = hp.Host, hp.Port
	return true
}

func appendErr(errs []int16, code int16) []int16 {
	if code != 0 {
		errs = append(errs, code)
	}
	return errs
}
