package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// seedRequests are well-formed request frames of the kinds inspected.
func seedRequests() [][]byte {
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "a"
	ft.Partitions = append(ft.Partitions, kmsg.NewFetchRequestTopicPartition())
	fetch.Topics = append(fetch.Topics, ft)
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("a")
	meta.Topics = append(meta.Topics, mt)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKeys = 4, []string{"g"}
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	return [][]byte{
		requestFrame(produceRequest(3, map[string][][]byte{"a": {batch(2, 3)}}), 1, "c"),
		requestFrame(produceRequest(9, map[string][][]byte{"a": {batch(2, 3)}, "b": {nil}}), 2, ""),
		requestFrame(fetch, 3, "c"),
		requestFrame(meta, 4, "c"),
		requestFrame(fc, 5, "c"),
		requestFrame(av, 6, "c"),
	}
}

// FuzzReadFrame: framing never panics, never returns more than the limit,
// and a returned frame is exactly what its prefix announces.
func FuzzReadFrame(f *testing.F) {
	for _, s := range seedRequests() {
		f.Add(s)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var buf []byte
		for {
			frame, err := ReadFrame(r, &buf, 1<<16)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			size, _ := FrameSize(frame)
			if size != len(frame)-4 || size > 1<<16 {
				t.Fatalf("frame of %d bytes announces %d", len(frame), size)
			}
		}
	})
}

// FuzzParseRequest: request inspection never panics, and an inspected
// request re-encodes (the proxy does so when it removes refused topics).
func FuzzParseRequest(f *testing.F) {
	for _, s := range seedRequests() {
		f.Add(s[4:])
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
		r, err := ParseRequest(frame)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if r.Msg != nil {
			out := AppendRequest(nil, frame, r.Header, r.Msg)
			if _, err := ParseRequest(out); err != nil {
				t.Fatalf("re-encoded request does not parse: %v", err)
			}
		}
	})
}

// FuzzParseResponse: response inspection and rewriting never panic,
// whatever the body and the request it answers.
func FuzzParseResponse(f *testing.F) {
	meta := kmsg.NewPtrMetadataResponse()
	meta.Version = 12
	b := kmsg.NewMetadataResponseBroker()
	b.Host, b.Port = "h", 1
	meta.Brokers = append(meta.Brokers, b)
	f.Add(int16(3), int16(12), true, AppendResponse(nil, 1, meta)[4:])
	prod := kmsg.NewPtrProduceResponse()
	prod.Version = 9
	f.Add(int16(0), int16(9), true, AppendResponse(nil, 1, prod)[4:])
	av := kmsg.NewPtrApiVersionsResponse()
	av.Version = 3
	f.Add(int16(18), int16(3), true, AppendResponse(nil, 1, av)[4:])
	fetch := kmsg.NewPtrFetchResponse()
	fetch.Version = 12
	ft := kmsg.NewFetchResponseTopic()
	ft.Topic = "a"
	fp := kmsg.NewFetchResponseTopicPartition()
	fp.RecordBatches = batch(3, 2)
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	f.Add(int16(1), int16(12), true, AppendResponse(nil, 1, fetch)[4:])
	rw := &Rewrite{Brokers: map[int32]HostPort{0: {"proxy", 9}}, MaxVersions: map[int16]int16{0: 12}}
	f.Fuzz(func(t *testing.T, key, version int16, flexible bool, msg []byte) {
		frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
		p := &Pending{Key: key % 80, Version: version % 20, Flexible: flexible,
			Describe: func(t string) bool { return t != "a" }, Denied: []DeniedTopic{{Topic: "d", Partitions: []int32{0}}}}
		_, out, err := ParseResponse(frame, p, rw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if size, ok := FrameSize(out); !ok || size != len(out)-4 {
			t.Fatalf("response frame of %d bytes announces %d", len(out), size)
		}
	})
}
