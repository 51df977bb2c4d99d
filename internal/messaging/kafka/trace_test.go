package kafka

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"regexp"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// realBatch encodes recs as one uncompressed record batch (magic 2) with a
// correct length and CRC-32C, as a producer does.
func realBatch(attrs int16, recs ...kmsg.Record) []byte {
	var body []byte
	for i := range recs {
		r := recs[i]
		r.OffsetDelta = int32(i)
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		body = r.AppendTo(body)
	}
	b := kmsg.RecordBatch{Magic: 2, Attributes: attrs, LastOffsetDelta: int32(len(recs) - 1),
		FirstTimestamp: 1700000000000, MaxTimestamp: 1700000000000, ProducerID: 7, ProducerEpoch: 1, FirstSequence: 40,
		NumRecords: int32(len(recs)), Records: body, Length: int32(49 + len(body))}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[batchCRCOff:], crc32.Checksum(out[batchAttrsOff:], castagnoli))
	return out
}

func rec(key, value string, hdrs ...string) kmsg.Record {
	r := kmsg.Record{Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		r.Headers = append(r.Headers, kmsg.Header{Key: hdrs[i], Value: []byte(hdrs[i+1])})
	}
	return r
}

// readBatches parses a records field with kmsg, checking each batch's CRC
// and that its records fill it exactly.
func readBatches(b []byte) ([]kmsg.RecordBatch, [][]kmsg.Record, error) {
	var bs []kmsg.RecordBatch
	var rs [][]kmsg.Record
	for len(b) > 0 {
		size, ok := batchSize(b)
		if !ok {
			return nil, nil, fmt.Errorf("truncated batch of %d bytes", len(b))
		}
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(b[:size]); err != nil {
			return nil, nil, fmt.Errorf("batch: %v", err)
		}
		if got := crc32.Checksum(b[batchAttrsOff:size], castagnoli); int32(got) != batch.CRC {
			return nil, nil, fmt.Errorf("crc %08x, batch says %08x", got, uint32(batch.CRC))
		}
		b = b[size:]
		bs = append(bs, batch)
		var recs []kmsg.Record
		if batch.Attributes&attrCompression != 0 {
			rs = append(rs, nil)
			continue
		}
		in := batch.Records
		for range batch.NumRecords {
			l, n := binary.Varint(in)
			if n <= 0 || int(l) > len(in)-n {
				return nil, nil, fmt.Errorf("record length %d of %d bytes", l, len(in))
			}
			var r kmsg.Record
			if err := r.ReadFrom(in[:n+int(l)]); err != nil {
				return nil, nil, fmt.Errorf("record: %v", err)
			}
			recs = append(recs, r)
			in = in[n+int(l):]
		}
		if len(in) != 0 {
			return nil, nil, fmt.Errorf("%d bytes after the records", len(in))
		}
		rs = append(rs, recs)
	}
	return bs, rs, nil
}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func header(r kmsg.Record, key string) (string, int) {
	v, n := "", 0
	for _, h := range r.Headers {
		if h.Key == key {
			v, n = string(h.Value), n+1
		}
	}
	return v, n
}

func TestInjectRecords(t *testing.T) {
	in := realBatch(0,
		rec("", "no headers"),
		rec("k", "others", "a", "1", "b", ""),
		rec("k2", "traced", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
		kmsg.Record{}, // null key and value
	)
	orig := bytes.Clone(in)
	var st TraceStats
	tr := &Tracer{Sampling: 100}
	out, ok := tr.AppendRecords([]byte("prefix"), in, &st)
	if !ok || !bytes.HasPrefix(out, []byte("prefix")) {
		t.Fatalf("AppendRecords = %q, %v", out, ok)
	}
	if !bytes.Equal(in, orig) {
		t.Fatal("the input changed")
	}
	if st.Injected != 3 || st.Skipped[SkipPresent] != 1 {
		t.Fatalf("stats %+v, want 3 injected, 1 present", st)
	}
	bs, rs, err := readBatches(out[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	_, want, _ := readBatches(orig)
	if b := bs[0]; b.NumRecords != 4 || b.ProducerID != 7 || b.ProducerEpoch != 1 || b.FirstSequence != 40 || b.LastOffsetDelta != 3 {
		t.Fatalf("batch header changed: %+v", b)
	}
	ids := map[string]bool{}
	for i, r := range rs[0] {
		w := want[0][i]
		if !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) || !bytes.Equal(r.Value, w.Value) || (r.Value == nil) != (w.Value == nil) || r.OffsetDelta != w.OffsetDelta {
			t.Errorf("record %d: key %q value %q, want %q %q", i, r.Key, r.Value, w.Key, w.Value)
		}
		tp, n := header(r, TraceHeader)
		if n != 1 || !traceparentRE.MatchString(tp) || tp[53:] != "01" {
			t.Errorf("record %d: %d traceparent headers, %q", i, n, tp)
		}
		if i == 2 && tp != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
			t.Errorf("record 2: existing traceparent replaced by %q", tp)
		}
		ids[tp[3:35]] = true
		for _, h := range w.Headers {
			if v, n := header(r, h.Key); n != 1 || v != string(h.Value) {
				t.Errorf("record %d: header %s = %q (%d), want %q", i, h.Key, v, n, h.Value)
			}
		}
		if len(r.Headers) != len(w.Headers)+1 && i != 2 {
			t.Errorf("record %d: %d headers, want %d", i, len(r.Headers), len(w.Headers)+1)
		}
	}
	if len(ids) != 4 {
		t.Errorf("trace ids not distinct: %v", ids)
	}
}

func TestInjectRecordsUnchanged(t *testing.T) {
	traced := realBatch(0, rec("", "v", "TraceParent", "x"))
	compressed := realBatch(2, rec("", "v")) // snappy flag; records left as they are
	control := realBatch(attrControl, rec("", "v"))
	legacy := bytes.Clone(realBatch(0, rec("", "v")))
	legacy[batchMagicOff] = 1
	truncated := realBatch(0, rec("", "v"))
	truncated = truncated[:len(truncated)-1]
	binary.BigEndian.PutUint32(truncated[batchLengthOff:], uint32(len(truncated)-logOverhead))
	badCRC := realBatch(0, rec("", "v"))
	badCRC[batchCRCOff] ^= 1
	for _, tc := range []struct {
		name   string
		in     []byte
		reason SkipReason
	}{
		{"present", traced, SkipPresent},
		{"compressed", compressed, SkipCompressed},
		{"control", control, SkipControl},
		{"legacy", legacy, SkipLegacy},
		{"malformed", truncated, SkipMalformed},
		{"bad crc", badCRC, SkipMalformed},
		{"malformed second batch", append(realBatch(0, rec("", "v")), 0, 0, 0), SkipMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st TraceStats
			out, ok := (&Tracer{}).AppendRecords([]byte("x"), tc.in, &st)
			if ok || string(out) != "x" {
				t.Fatalf("AppendRecords = %q, %v; want the input back unchanged", out, ok)
			}
			if st.Injected != 0 || st.Skipped[tc.reason] != 1 {
				t.Fatalf("stats %+v, want one record skipped for %s", st, tc.reason)
			}
		})
	}
}

func TestInjectProduce(t *testing.T) {
	tr := &Tracer{Sampling: 0}
	for _, v := range []int16{3, 7, 9, 12} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			plain := realBatch(0, rec("k", "v1"), rec("", "v2", "h", "x"))
			zipped := realBatch(1, rec("", "v"))
			m := produceRequest(v, map[string][][]byte{"a": {plain, zipped}, "b": {nil, plain}})
			frame := requestFrame(m, 9, "c")
			req, err := ParseRequest(frame)
			if err != nil {
				t.Fatal(err)
			}
			var st TraceStats
			pm := req.Msg.(*kmsg.ProduceRequest)
			if !tr.InjectProduce(pm, req.Version, &st) {
				t.Fatal("InjectProduce changed nothing")
			}
			if st.Injected != 4 || st.Skipped[SkipCompressed] != 1 {
				t.Fatalf("stats %+v", st)
			}
			out := AppendRequest(nil, frame, req.Header, pm)
			back, err := ParseRequest(out)
			if err != nil {
				t.Fatal(err)
			}
			if back.Correlation != 9 || string(back.ClientID) != "c" {
				t.Fatalf("header changed: %+v", back.Header)
			}
			n := 0
			for _, tp := range back.Msg.(*kmsg.ProduceRequest).Topics {
				for _, p := range tp.Partitions {
					_, rs, err := readBatches(p.Records)
					if err != nil {
						t.Fatalf("%s/%d: %v", tp.Topic, p.Partition, err)
					}
					for _, recs := range rs {
						for _, r := range recs {
							if v, c := header(r, TraceHeader); c != 1 || !traceparentRE.MatchString(v) || v[53:] != "00" {
								t.Errorf("%s/%d: traceparent %q (%d), want one, unsampled", tp.Topic, p.Partition, v, c)
							}
							n++
						}
					}
				}
			}
			if n != 4 {
				t.Fatalf("%d records read back, want 4", n)
			}
		})
	}
	t.Run("claimed count", func(t *testing.T) {
		// A header claiming 2^31-1 records must not size the buffer.
		b := realBatch(0, rec("", "v"))
		binary.BigEndian.PutUint32(b[batchCountOff:], 1<<31-1)
		m := produceRequest(9, map[string][][]byte{"a": {b}})
		var st TraceStats
		if tr.InjectProduce(m, 9, &st) || st.Skipped[SkipMalformed] != int64(len(b)/minRecordLen) {
			t.Fatalf("stats %+v", st)
		}
		if allocs := testing.AllocsPerRun(10, func() { tr.InjectProduce(m, 9, &st) }); allocs > 1 {
			t.Fatalf("%v allocations", allocs)
		}
	})
	t.Run("v2", func(t *testing.T) {
		m := produceRequest(2, map[string][][]byte{"a": {realBatch(0, rec("", "v"))}})
		var st TraceStats
		if tr.InjectProduce(m, 2, &st) || st.Skipped[SkipVersion] != 1 {
			t.Fatalf("v2: stats %+v", st)
		}
	})
}

// FuzzInjectRecords: the rewrite never panics, and either leaves a
// partition's records unchanged or produces batches kmsg reads back with
// valid CRCs, the same records in the same batches, and a traceparent on
// every record of an uncompressed batch.
func FuzzInjectRecords(f *testing.F) {
	f.Add(realBatch(0, rec("k", "v", "a", "b"), rec("", "")))
	f.Add(append(realBatch(0, rec("", "v", "traceparent", "x")), realBatch(0, rec("k", ""))...))
	f.Add(realBatch(1, rec("k", "v")))
	f.Add(realBatch(attrControl, rec("k", "v")))
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		var st TraceStats
		out, ok := (&Tracer{Sampling: 50}).AppendRecords(nil, in, &st)
		if !bytes.Equal(in, orig) {
			t.Fatal("the input changed")
		}
		if !ok {
			if len(out) != 0 {
				t.Fatalf("unchanged, yet %d bytes appended", len(out))
			}
			return
		}
		// Batch by batch: unchanged, or rewritten into a valid batch
		// with the same records, each with a traceparent.
		for b, o := orig, out; len(b) > 0; {
			size, _ := batchSize(b)
			osize, ok := batchSize(o)
			if !ok {
				t.Fatalf("output truncated: %d bytes left", len(o))
			}
			ib, ob := b[:size], o[:osize]
			b, o = b[size:], o[osize:]
			if bytes.Equal(ib, ob) {
				continue
			}
			bs, rs, err := readBatches(ob)
			if err != nil {
				t.Fatalf("rewritten batch does not parse: %v", err)
			}
			_, irs, err := readBatches(ib)
			if err != nil {
				t.Fatalf("a batch that does not parse was rewritten: %v", err)
			}
			if bs[0].Magic != 2 || bs[0].Attributes&(attrCompression|attrControl) != 0 || len(rs[0]) != len(irs[0]) {
				t.Fatalf("batch rewritten: magic %d attributes %#x, %d records of %d", bs[0].Magic, bs[0].Attributes, len(rs[0]), len(irs[0]))
			}
			for j, r := range rs[0] {
				if _, c := headerFold(r); c == 0 {
					t.Fatalf("record %d has no traceparent", j)
				}
				if ir := irs[0][j]; !bytes.Equal(r.Key, ir.Key) || !bytes.Equal(r.Value, ir.Value) {
					t.Fatalf("record %d: key or value changed", j)
				}
			}
		}
	})
}

// FuzzInjectProduce: injection into any Produce request the proxy parses
// never panics, and the request it re-encodes parses again.
func FuzzInjectProduce(f *testing.F) {
	for _, s := range seedRequests()[:2] {
		f.Add(s[4:])
	}
	f.Add(requestFrame(produceRequest(9, map[string][][]byte{"a": {realBatch(0, rec("k", "v"), rec("", "w", "h", "x"))}, "b": {realBatch(1, rec("", ""))}}), 1, "c")[4:])
	tr := &Tracer{Sampling: 100}
	f.Fuzz(func(t *testing.T, msg []byte) {
		frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
		r, err := ParseRequest(frame)
		if err != nil {
			return
		}
		m, ok := r.Msg.(*kmsg.ProduceRequest)
		if !ok {
			return
		}
		var st TraceStats
		if !tr.InjectProduce(m, r.Version, &st) {
			return
		}
		if st.Injected == 0 {
			t.Fatal("changed, yet nothing injected")
		}
		if _, err := ParseRequest(AppendRequest(nil, frame, r.Header, m)); err != nil {
			t.Fatalf("re-encoded request does not parse: %v", err)
		}
	})
}

// headerFold finds a traceparent header whatever its case.
func headerFold(r kmsg.Record) (string, int) {
	for _, h := range r.Headers {
		if bytes.EqualFold([]byte(h.Key), traceKey) {
			return string(h.Value), 1
		}
	}
	return "", 0
}

func BenchmarkInjectRecords(b *testing.B) {
	recs := make([]kmsg.Record, 100)
	for i := range recs {
		recs[i] = rec(fmt.Sprint("key-", i), string(bytes.Repeat([]byte("v"), 200)), "content-type", "application/json")
	}
	in := realBatch(0, recs...)
	tr := &Tracer{Sampling: 1}
	dst := make([]byte, 0, 2*len(in))
	var st TraceStats
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		if dst, ok = tr.AppendRecords(dst[:0], in, &st); !ok {
			b.Fatal("not rewritten")
		}
	}
}
