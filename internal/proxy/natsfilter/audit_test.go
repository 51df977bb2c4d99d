package natsfilter

import (
	"io"
	"testing"
)

// TestAuditReportsWithoutRefusing: an AUDIT rule counts the operations it
// matches (a subscription overlapping its subject too) and refuses
// nothing; the DENY rule still decides, and the audit does not shadow it.
func TestAuditReportsWithoutRefusing(t *testing.T) {
	client, w, reg := newConn(t, map[string]any{"stat_prefix": "t", "policies": []any{
		map[string]any{"action": "AUDIT", "operations": []any{"publish", "subscribe"}, "subjects": []any{"orders.eu"}},
		map[string]any{"action": "DENY", "operations": []any{"publish"}, "subjects": []any{"secret"}},
		map[string]any{"action": "AUDIT", "operations": []any{"publish"}, "subjects": []any{"secret"}, "principals": []any{"10.0.0.0/8"}},
	}})
	if _, err := w.Write([]byte("INFO {}\r\n")); err != nil {
		t.Fatal(err)
	}
	readN(t, client, len("INFO {}\r\n"))
	io.WriteString(client, "PUB orders.eu 1\r\nx\r\nSUB orders.> 1\r\nPUB orders.us 1\r\ny\r\nPUB secret 1\r\nz\r\nPING\r\n")
	want := "PUB orders.eu 1\r\nx\r\nSUB orders.> 1\r\nPUB orders.us 1\r\ny\r\nPING\r\n"
	if got := readN(t, w, len(want)); got != want {
		t.Fatalf("forwarded %q, want %q", got, want)
	}
	for _, c := range []struct {
		name, op, subject string
		want              float64
	}{
		{"trellis_nats_audited_total", "publish", "orders.eu", 1},
		{"trellis_nats_audited_total", "subscribe", "orders.>", 1},
		{"trellis_nats_audited_total", "publish", "orders.us", -1},
		{"trellis_nats_audited_total", "publish", "secret", -1}, // the source is 127.0.0.1, not in 10.0.0.0/8
		{"trellis_nats_denied_total", "publish", "secret", 1},
	} {
		if got := counter(t, reg, c.name, "stat_prefix", "t", "operation", c.op, "subject", c.subject); got != c.want {
			t.Errorf("%s{%s,%s} = %v, want %v", c.name, c.op, c.subject, got, c.want)
		}
	}
}

// TestAuditParse: AUDIT rules are kept apart from the deciding ones, and
// AUDIT is no default action.
func TestAuditParse(t *testing.T) {
	cfg, err := Parse(typed(t, map[string]any{"stat_prefix": "x", "policies": []any{
		map[string]any{"action": "AUDIT", "operations": []any{"publish"}, "subjects": []any{"a"}},
		map[string]any{"action": "ALLOW", "operations": []any{"publish"}, "subjects": []any{"b"}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Audit) != 1 || len(cfg.Policies) != 1 || cfg.Audit[0].Action != Audit || cfg.Policies[0].Action != Allow {
		t.Fatalf("audit %v, policies %v", cfg.Audit, cfg.Policies)
	}
	if _, err := Parse(typed(t, map[string]any{"stat_prefix": "x", "default_action": "AUDIT"})); err == nil {
		t.Fatal("default_action AUDIT accepted")
	}
}
