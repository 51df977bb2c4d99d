package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
)

// RawEventType is the CloudEvents type of a message the application
// published as a plain body, and of one read from a broker without
// CloudEvents headers.
const RawEventType = "dev.trellis.bridge.raw"

// PartitionKeyHeader sets (over the CloudEvent's partitionkey extension)
// the Kafka record key of a published message.
const PartitionKeyHeader = "X-Trellis-Partition-Key"

// Extensions the bridge adds to a dead-lettered message.
const (
	ExtDeadLetterReason = "deadletterreason" // why: the last attempt's outcome
	ExtDeliveryAttempts = "deliveryattempts" // how many POSTs were made
	ExtDeadLetterSource = "deadlettersource" // the subscription's topic
)

// AttemptHeader carries the 1-based attempt number on each delivery POST.
const AttemptHeader = "Trellis-Delivery-Attempt"

// Message is one CloudEvent as the bridge carries it: its context
// attributes and extensions by lower-case name in their canonical string
// form ("specversion", "id", "source", "type" are always set;
// "datacontenttype" is the content type), the data, and the Kafka key.
type Message struct {
	Attrs map[string]string
	Data  []byte
	Key   []byte
}

// errBadEvent marks a request body that is not a valid CloudEvent.
var errBadEvent = errors.New("bad CloudEvent")

// readEvent reads a publish request: a CloudEvent in binary or structured
// content mode, or else a raw body wrapped in a new event of type
// RawEventType from source.
func readEvent(ctx context.Context, r *http.Request, body []byte, source string) (*Message, error) {
	req := r.Clone(ctx)
	req.Body = http.NoBody
	m := cehttp.NewMessage(req.Header, nopBody(body))
	var msg *Message
	if m.ReadEncoding() == binding.EncodingUnknown {
		msg = &Message{Attrs: map[string]string{
			"specversion": event.CloudEventsVersionV1, "id": newID(), "source": source,
			"type": RawEventType, "time": time.Now().UTC().Format(time.RFC3339Nano),
		}, Data: body}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			msg.Attrs["datacontenttype"] = ct
		}
	} else {
		ev, err := binding.ToEvent(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadEvent, err)
		}
		if err := ev.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", errBadEvent, err)
		}
		msg = fromEvent(ev)
	}
	if k := r.Header.Get(PartitionKeyHeader); k != "" {
		msg.Attrs["partitionkey"] = k
	}
	if k, ok := msg.Attrs["partitionkey"]; ok {
		msg.Key = []byte(k)
	}
	return msg, nil
}

// fromEvent flattens an event into a Message.
func fromEvent(ev *event.Event) *Message {
	a := map[string]string{
		"specversion": ev.SpecVersion(), "id": ev.ID(), "source": ev.Source(), "type": ev.Type(),
	}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set("subject", ev.Subject())
	set("datacontenttype", ev.DataContentType())
	set("dataschema", ev.DataSchema())
	if t := ev.Time(); !t.IsZero() {
		a["time"] = t.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range ev.Extensions() {
		if s, err := types.Format(v); err == nil {
			a[k] = s
		}
	}
	return &Message{Attrs: a, Data: ev.Data()}
}

// toAttrs reads CloudEvents attributes from broker headers: each header
// whose name starts with prefix (ignoring case). ok is false when no
// specversion is among them (a message not published as a CloudEvent).
func toAttrs(prefix string, headers func(yield func(k, v string) bool)) (map[string]string, bool) {
	var a map[string]string
	for k, v := range headers {
		if len(k) > len(prefix) && strings.EqualFold(k[:len(prefix)], prefix) {
			if a == nil {
				a = map[string]string{}
			}
			a[strings.ToLower(k[len(prefix):])] = v
		}
	}
	_, ok := a["specversion"]
	return a, ok && a["id"] != "" && a["source"] != "" && a["type"] != ""
}

// rawMessage wraps a broker message without CloudEvents headers.
func rawMessage(id, source, contentType string, data, key []byte) *Message {
	a := map[string]string{"specversion": event.CloudEventsVersionV1, "id": id, "source": source, "type": RawEventType}
	if contentType != "" {
		a["datacontenttype"] = contentType
	}
	return &Message{Attrs: a, Data: data, Key: key}
}

// sortedAttrs returns the attribute names in order, datacontenttype
// excluded (it travels as the content type).
func (m *Message) sortedAttrs() []string {
	ks := make([]string, 0, len(m.Attrs))
	for k := range m.Attrs {
		if k != "datacontenttype" {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// httpRequest builds the delivery POST in CloudEvents binary content
// mode: one Ce-<name> header per attribute (values percent-encoded as the
// HTTP binding requires), the data as the body.
func (m *Message) httpRequest(ctx context.Context, url string, attempt int) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Data))
	if err != nil {
		return nil, err
	}
	for _, k := range m.sortedAttrs() {
		req.Header["Ce-"+k] = []string{pctEncode(m.Attrs[k])}
	}
	if ct := m.Attrs["datacontenttype"]; ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set(AttemptHeader, fmt.Sprint(attempt))
	return req, nil
}

// pctEncode encodes what the CloudEvents HTTP binding (3.1.3.2) requires:
// space, double quote, percent and bytes outside printable ASCII.
func pctEncode(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// withDeadLetter returns a copy of m marked as dead-lettered.
func (m *Message) withDeadLetter(reason, topic string, attempts int) *Message {
	a := make(map[string]string, len(m.Attrs)+3)
	for k, v := range m.Attrs {
		a[k] = v
	}
	a[ExtDeadLetterReason] = reason
	a[ExtDeliveryAttempts] = fmt.Sprint(attempts)
	a[ExtDeadLetterSource] = topic
	return &Message{Attrs: a, Data: m.Data, Key: m.Key}
}

func nopBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// newID returns a random UUID (version 4) string.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
