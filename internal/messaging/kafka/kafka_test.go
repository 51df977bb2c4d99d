package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestFrame encodes req with a request header as a client does.
func requestFrame(req kmsg.Request, corr int32, clientID string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// batch returns a record batch (magic 2) header claiming n records, with
// body bytes of payload after it.
func batch(n int32, body int) []byte {
	b := make([]byte, batchHeaderSize+body)
	binary.BigEndian.PutUint32(b[batchLengthOff:], uint32(len(b)-logOverhead))
	b[batchMagicOff] = 2
	binary.BigEndian.PutUint32(b[batchCountOff:], uint32(n))
	return b
}

func produceRequest(version int16, topics map[string][][]byte) *kmsg.ProduceRequest {
	r := kmsg.NewPtrProduceRequest()
	r.Version, r.Acks = version, -1
	for _, name := range []string{"a", "b", "c", "secret"} {
		parts, ok := topics[name]
		if !ok {
			continue
		}
		t := kmsg.NewProduceRequestTopic()
		t.Topic = name
		for i, recs := range parts {
			p := kmsg.NewProduceRequestTopicPartition()
			p.Partition, p.Records = int32(i), recs
			t.Partitions = append(t.Partitions, p)
		}
		r.Topics = append(r.Topics, t)
	}
	return r
}

func TestReadFrame(t *testing.T) {
	frame := requestFrame(kmsg.NewPtrApiVersionsRequest(), 7, "c")
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{name: "ok", in: frame, max: 1 << 20},
		{name: "too large", in: frame, max: 8, want: ErrFrameTooLarge},
		{name: "negative", in: []byte{0xff, 0xff, 0xff, 0xfe}, max: 1 << 20, want: ErrMalformed},
		{name: "tiny", in: []byte{0, 0, 0, 2, 1, 2}, max: 1 << 20, want: ErrMalformed},
		{name: "truncated", in: frame[:len(frame)-1], max: 1 << 20, want: io.ErrUnexpectedEOF},
		{name: "empty", in: nil, max: 1 << 20, want: io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf []byte
			got, err := ReadFrame(bytes.NewReader(tc.in), &buf, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && !bytes.Equal(got, frame) {
				t.Fatal("frame differs")
			}
		})
	}
}

func TestParseRequestHeader(t *testing.T) {
	for _, v := range []int16{0, 2, 3, 4} { // v3+ is flexible (header v2)
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "x", "1"
		frame := requestFrame(req, 42, "client-1")
		h, err := ParseRequestHeader(frame)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if h.Key != 18 || h.Version != v || h.Correlation != 42 || string(h.ClientID) != "client-1" || h.Flexible != (v >= 3) || !h.Known {
			t.Errorf("v%d: header %+v", v, h)
		}
		back := kmsg.NewPtrApiVersionsRequest()
		back.Version = v
		if err := back.ReadFrom(frame[4+h.Len:]); err != nil {
			t.Errorf("v%d: body after the header does not decode: %v", v, err)
		}
	}
	unknown := append(binary.BigEndian.AppendUint32(nil, 10), 0x7f, 0x00, 0, 1, 0, 0, 0, 5, 0xff, 0xff)
	if h, err := ParseRequestHeader(unknown); err != nil || h.Known || h.ClientID != nil || h.Correlation != 5 {
		t.Errorf("unknown key: %+v, %v", h, err)
	}
}

func TestCountRecords(t *testing.T) {
	legacy := make([]byte, 2*(logOverhead+20))
	for i := 0; i < 2; i++ {
		off := i * (logOverhead + 20)
		binary.BigEndian.PutUint32(legacy[off+batchLengthOff:], 20)
		legacy[off+batchMagicOff] = 1
	}
	tests := []struct {
		name string
		in   []byte
		want int64
	}{
		{name: "empty", in: nil, want: 0},
		{name: "one batch", in: batch(5, 10), want: 5},
		{name: "two batches", in: append(batch(5, 0), batch(7, 3)...), want: 12},
		{name: "truncated second", in: append(batch(5, 0), batch(7, 30)[:40]...), want: 5},
		{name: "legacy messages", in: legacy, want: 2},
		{name: "short batch", in: batch(5, 0)[:30], want: 0},
	}
	for _, tc := range tests {
		if got := CountRecords(tc.in); got != tc.want {
			t.Errorf("%s: %d records, want %d", tc.name, got, tc.want)
		}
	}
}

func TestParseProduce(t *testing.T) {
	req := produceRequest(9, map[string][][]byte{"a": {batch(3, 5), batch(2, 0)}, "b": {append(batch(1, 0), batch(4, 0)...)}})
	r, err := ParseRequest(requestFrame(req, 1, "p"))
	if err != nil {
		t.Fatal(err)
	}
	want := []TopicData{
		{Topic: "a", Partitions: 2, Records: 5, Bytes: int64(2*batchHeaderSize + 5)},
		{Topic: "b", Partitions: 1, Records: 5, Bytes: int64(2 * batchHeaderSize)},
	}
	if d := cmp.Diff(want, r.Topics); d != "" {
		t.Error(d)
	}
	if r.NoResponse {
		t.Error("acks=-1 request marked NoResponse")
	}
	// A body that does not decode is malformed.
	bad := requestFrame(req, 1, "p")
	if _, err := ParseRequest(bad[:len(bad)-3]); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated produce: %v", err)
	}
}

func TestMetadataRewrite(t *testing.T) {
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = 12
	for id, port := range []int32{9092, 9093} {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = int32(id), "kafka-internal", port
		resp.Brokers = append(resp.Brokers, b)
	}
	for _, name := range []string{"orders", "secret"} {
		tp := kmsg.NewMetadataResponseTopic()
		tp.Topic = kmsg.StringPtr(name)
		tp.Partitions = append(tp.Partitions, kmsg.NewMetadataResponseTopicPartition())
		resp.Topics = append(resp.Topics, tp)
	}
	frame := AppendResponse(nil, 9, resp)
	rw := &Rewrite{Brokers: map[int32]HostPort{0: {"127.0.0.1", 19092}}}
	describe := func(t string) bool { return !strings.HasPrefix(t, "secret") }
	for _, all := range []bool{false, true} {
		p := &Pending{Key: 3, Version: 12, Flexible: true, AllTopics: all, Describe: describe}
		info, out, err := ParseResponse(frame, p, rw)
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := Correlation(out); c != 9 {
			t.Errorf("correlation %d", c)
		}
		got := kmsg.NewPtrMetadataResponse()
		got.Version = 12
		if err := got.ReadFrom(out[4+5:]); err != nil { // correlation id + empty tags
			t.Fatal(err)
		}
		if b := got.Brokers[0]; b.Host != "127.0.0.1" || b.Port != 19092 {
			t.Errorf("broker 0 at %s:%d, want the rewrite", b.Host, b.Port)
		}
		if b := got.Brokers[1]; b.Host != "kafka-internal" || b.Port != 9093 {
			t.Errorf("broker 1 without a rule was changed to %s:%d", b.Host, b.Port)
		}
		if all {
			if len(got.Topics) != 1 || *got.Topics[0].Topic != "orders" {
				t.Errorf("all-topics answer lists %d topics, want orders only", len(got.Topics))
			}
			continue
		}
		if len(got.Topics) != 2 || got.Topics[1].ErrorCode != TopicAuthorizationFailed || got.Topics[1].Partitions != nil {
			t.Errorf("secret not refused: %+v", got.Topics)
		}
		if d := cmp.Diff([]int16{TopicAuthorizationFailed}, info.Errors); d != "" {
			t.Error(d)
		}
	}
	// Without a change and without force, the frame passes as it is.
	_, out, _ := ParseResponse(frame, &Pending{Key: 3, Version: 12, Flexible: true}, &Rewrite{})
	if &out[0] != &frame[0] {
		t.Error("an unchanged response was re-encoded")
	}
	_, out, _ = ParseResponse(frame, &Pending{Key: 3, Version: 12, Flexible: true}, &Rewrite{Force: true})
	if &out[0] == &frame[0] || !bytes.Equal(out, frame) {
		t.Error("force_response_rewrite: want a re-encoded, equal response")
	}
}

func TestFindCoordinatorRewrite(t *testing.T) {
	rw := &Rewrite{Brokers: map[int32]HostPort{2: {"proxy", 1}}}
	for _, v := range []int16{3, 4} {
		resp := kmsg.NewPtrFindCoordinatorResponse()
		resp.Version = v
		resp.NodeID, resp.Host, resp.Port = 2, "broker", 9092
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Host, c.Port = "g", 2, "broker", 9092
		resp.Coordinators = append(resp.Coordinators, c)
		_, out, err := ParseResponse(AppendResponse(nil, 1, resp), &Pending{Key: 10, Version: v, Flexible: true}, rw)
		if err != nil {
			t.Fatal(err)
		}
		got := kmsg.NewPtrFindCoordinatorResponse()
		got.Version = v
		if err := got.ReadFrom(out[9:]); err != nil {
			t.Fatal(err)
		}
		host, port := got.Host, got.Port
		if v >= 4 {
			host, port = got.Coordinators[0].Host, got.Coordinators[0].Port
		}
		if host != "proxy" || port != 1 {
			t.Errorf("v%d: coordinator at %s:%d", v, host, port)
		}
	}
}

func TestApiVersionsCap(t *testing.T) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	for _, k := range []int16{0, 1, 3} {
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MaxVersion = k, 13
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	_, out, err := ParseResponse(AppendResponse(nil, 1, resp), &Pending{Key: 18, Version: 3, Flexible: true},
		&Rewrite{MaxVersions: map[int16]int16{0: 12, 1: 12}})
	if err != nil {
		t.Fatal(err)
	}
	got := kmsg.NewPtrApiVersionsResponse()
	got.Version = 3
	if err := got.ReadFrom(out[8:]); err != nil { // ApiVersions: header v0 always
		t.Fatal(err)
	}
	var maxes []int16
	for _, k := range got.ApiKeys {
		maxes = append(maxes, k.MaxVersion)
	}
	if d := cmp.Diff([]int16{12, 12, 13}, maxes); d != "" {
		t.Error(d)
	}
}

func TestDeniedTopicsSplice(t *testing.T) {
	req := produceRequest(9, map[string][][]byte{"a": {batch(1, 0)}, "secret": {batch(1, 0), batch(1, 0)}})
	denied := SplitProduce(req, func(t string) bool { return t != "secret" })
	if len(req.Topics) != 1 || req.Topics[0].Topic != "a" {
		t.Fatalf("kept %v", req.Topics)
	}
	if d := cmp.Diff([]DeniedTopic{{Topic: "secret", Partitions: []int32{0, 1}}}, denied); d != "" {
		t.Fatal(d)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	rt := kmsg.NewProduceResponseTopic()
	rt.Topic = "a"
	rt.Partitions = append(rt.Partitions, kmsg.NewProduceResponseTopicPartition())
	resp.Topics = append(resp.Topics, rt)
	info, out, err := ParseResponse(AppendResponse(nil, 4, resp), &Pending{Key: 0, Version: 9, Flexible: true, Denied: denied}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := kmsg.NewPtrProduceResponse()
	got.Version = 9
	if err := got.ReadFrom(out[9:]); err != nil {
		t.Fatal(err)
	}
	if len(got.Topics) != 2 || got.Topics[1].Topic != "secret" || got.Topics[1].Partitions[1].ErrorCode != TopicAuthorizationFailed {
		t.Errorf("spliced response %+v", got.Topics)
	}
	if len(info.Errors) != 2 {
		t.Errorf("errors %v, want two TOPIC_AUTHORIZATION_FAILED", info.Errors)
	}
}

func TestPolicy(t *testing.T) {
	p, err := NewPolicy(PolicySpec{DefaultAction: "DENY", Rules: []RuleSpec{
		{Action: "DENY", Operations: []string{"produce"}, Topics: []string{"orders.audit"}, Principals: []string{"*"}},
		{Action: "ALLOW", Operations: []string{"produce"}, Topics: []string{"orders*"}, Principals: []string{"spiffe://mesh/ns/shop/sa/*"}},
		{Action: "ALLOW", Operations: []string{"consume"}, Topics: []string{"*"}, Principals: []string{"10.0.0.0/8", "192.168.1.7"}},
		{Action: "DENY", Operations: []string{"describe"}, Topics: []string{"hidden"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	shop := Principal{Addr: netip.MustParseAddr("127.0.0.1"), SPIFFEID: "spiffe://mesh/ns/shop/sa/web"}
	lan := Principal{Addr: netip.MustParseAddr("10.1.2.3")}
	host := Principal{Addr: netip.MustParseAddr("::ffff:192.168.1.7")}
	tests := []struct {
		op    Operation
		topic string
		pr    Principal
		want  bool
	}{
		{Produce, "orders.new", shop, true},
		{Produce, "orders.audit", shop, false}, // first match wins
		{Produce, "orders.new", lan, false},    // default
		{Consume, "anything", lan, true},
		{Consume, "anything", host, true}, // v4-mapped source
		{Consume, "anything", shop, false},
		{Describe, "orders.new", shop, true}, // produce implies describe
		{Describe, "x", lan, true},           // consume implies describe
		{Describe, "hidden", lan, false},     // unless denied explicitly
		{Describe, "x", Principal{}, false},
		{Produce, "", shop, false}, // topic id only
	}
	for _, tc := range tests {
		if got := p.Allowed(tc.op, tc.topic, tc.pr); got != tc.want {
			t.Errorf("%v %q by %+v = %v, want %v", tc.op, tc.topic, tc.pr, got, tc.want)
		}
	}
}

func TestPolicyErrors(t *testing.T) {
	_, err := NewPolicy(PolicySpec{DefaultAction: "MAYBE", Rules: []RuleSpec{
		{Action: "", Operations: []string{"write"}, Topics: []string{""}, Principals: []string{"10.0.0.0/33"}},
		{Action: "ALLOW"},
	}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"default_action: \"MAYBE\"", "rules[0].action: required", "rules[0].operations[0]: \"write\"",
		"rules[0].topics[0]: empty", "rules[0].principals[0]", "rules[1].operations: at least one", "rules[1].topics: at least one",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestDeniedTopicsOutliveFrame: the names SplitProduce returns are kept
// until the response, while the frame's buffer is reused for the next
// request.
func TestDeniedTopicsOutliveFrame(t *testing.T) {
	frame := requestFrame(produceRequest(9, map[string][][]byte{"a": {batch(1, 0)}, "secret": {batch(1, 0)}}), 1, "c")
	r, err := ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	denied := SplitProduce(r.Msg.(*kmsg.ProduceRequest), func(t string) bool { return t == "a" })
	for i := range frame {
		frame[i] = 'x'
	}
	if len(denied) != 1 || denied[0].Topic != "secret" {
		t.Fatalf("denied %+v after the buffer was reused", denied)
	}
}

// TestDeniedByTopicID: a Produce v13 names topics by id only; refused, its
// answer carries the id back so the client can match it.
func TestDeniedByTopicID(t *testing.T) {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks = 13, -1
	rt := kmsg.NewProduceRequestTopic()
	rt.TopicID = [16]byte{1, 2, 3}
	rt.Partitions = append(rt.Partitions, kmsg.NewProduceRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	r, err := ParseRequest(requestFrame(req, 3, "c"))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := NewPolicy(PolicySpec{DefaultAction: "ALLOW"})
	if err != nil {
		t.Fatal(err)
	}
	denied := SplitProduce(r.Msg.(*kmsg.ProduceRequest), func(topic string) bool { return pol.Allowed(Produce, topic, Principal{}) })
	out := AppendResponse(nil, 3, DeniedProduceResponse(13, denied))
	got := kmsg.NewPtrProduceResponse()
	got.Version = 13
	if err := got.ReadFrom(out[9:]); err != nil {
		t.Fatal(err)
	}
	if len(got.Topics) != 1 || got.Topics[0].TopicID != rt.TopicID || got.Topics[0].Partitions[0].ErrorCode != TopicAuthorizationFailed {
		t.Errorf("answer %+v", got.Topics)
	}
}
