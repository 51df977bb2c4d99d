package kafka

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SplitProduce removes from req the topics allow refuses and returns them
// (their names copied: they outlive the frame req was read from).
func SplitProduce(req *kmsg.ProduceRequest, allow func(topic string) bool) []DeniedTopic {
	var denied []DeniedTopic
	kept := req.Topics[:0]
	for _, t := range req.Topics {
		if allow(t.Topic) {
			kept = append(kept, t)
			continue
		}
		d := DeniedTopic{Topic: strings.Clone(t.Topic), ID: t.TopicID} // t.Topic aliases the frame
		for _, p := range t.Partitions {
			d.Partitions = append(d.Partitions, p.Partition)
		}
		denied = append(denied, d)
	}
	req.Topics = kept
	return denied
}

// SplitFetch removes from req the topics allow refuses and returns them.
func SplitFetch(req *kmsg.FetchRequest, allow func(topic string) bool) []DeniedTopic {
	var denied []DeniedTopic
	kept := req.Topics[:0]
	for _, t := range req.Topics {
		if allow(t.Topic) {
			kept = append(kept, t)
			continue
		}
		d := DeniedTopic{Topic: strings.Clone(t.Topic), ID: t.TopicID} // t.Topic aliases the frame
		for _, p := range t.Partitions {
			d.Partitions = append(d.Partitions, p.Partition)
		}
		denied = append(denied, d)
	}
	req.Topics = kept
	return denied
}

// DeniedProduceResponse is the answer to a Produce request whose topics
// were all refused: every partition fails with TOPIC_AUTHORIZATION_FAILED.
func DeniedProduceResponse(version int16, denied []DeniedTopic) *kmsg.ProduceResponse {
	r := kmsg.NewPtrProduceResponse()
	r.Version = version
	for _, d := range denied {
		t := kmsg.NewProduceResponseTopic()
		t.Topic, t.TopicID = d.Topic, d.ID
		for _, p := range d.Partitions {
			pt := kmsg.NewProduceResponseTopicPartition()
			pt.Partition, pt.ErrorCode, pt.BaseOffset = p, TopicAuthorizationFailed, -1
			t.Partitions = append(t.Partitions, pt)
		}
		r.Topics = append(r.Topics, t)
	}
	return r
}

// DeniedFetchResponse is the answer to a Fetch request whose topics were
// all refused. An incremental fetch (session epoch > 0) keeps its session
// id so the client's session stays valid from its point of view.
func DeniedFetchResponse(req *kmsg.FetchRequest, denied []DeniedTopic) *kmsg.FetchResponse {
	r := kmsg.NewPtrFetchResponse()
	r.Version = req.Version
	if req.SessionEpoch > 0 {
		r.SessionID = req.SessionID
	}
	for _, d := range denied {
		t := kmsg.NewFetchResponseTopic()
		t.Topic, t.TopicID = d.Topic, d.ID
		for _, p := range d.Partitions {
			pt := kmsg.NewFetchResponseTopicPartition()
			pt.Partition, pt.ErrorCode = p, TopicAuthorizationFailed
			pt.HighWatermark, pt.LastStableOffset, pt.LogStartOffset = -1, -1, -1
			t.Partitions = append(t.Partitions, pt)
		}
		r.Topics = append(r.Topics, t)
	}
	return r
}
