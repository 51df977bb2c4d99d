package cli

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTapPrinter(t *testing.T) {
	stream := []string{
		`{"type":"notice","message":"tapping service default/api: 1 proxy serving it, 2 may call it"}`,
		`{"type":"event","time":"2026-11-26T06:00:00Z","dataplane":"default/api-1","direction":"inbound","source":{"identity":"spiffe://d.trellis.local/default/web","service":"default/web","address":"127.0.0.1:5000"},"destination":{"identity":"","service":"default/api","address":"127.0.0.1:9081","cluster":"inbound:9081"},"route":"","requestId":"r","method":"GET","authority":"api","path":"/x?y=1","status":200,"durationMs":1.2345,"bytesIn":0,"bytesOut":12,"responseFlags":"-","reason":"","tls":true,"requestHeaders":{"authorization":"REDACTED","accept":"*/*"},"responseHeaders":{"content-type":"text/plain"}}`,
		`{"type":"event","time":"2026-11-26T06:00:00Z","dataplane":"default/web-1","direction":"outbound","source":{"identity":"","service":"default/web","address":"127.0.0.1:4000"},"destination":{"identity":"","service":"","address":"","cluster":"default/api:80"},"route":"r","requestId":"r","method":"POST","authority":"api","path":"/g","status":503,"grpcStatus":14,"durationMs":2,"bytesIn":5,"bytesOut":0,"responseFlags":"UH","reason":"no_healthy_upstream","tls":false,"requestBody":"hello","requestBodyTruncated":true,"responseBody":"AAAAAANhYmM=","responseBodyEncoding":"base64"}`,
	}
	for _, tc := range []struct {
		name           string
		json, headers  bool
		wantOut, wantE string
	}{
		{name: "text", wantOut: `req id=1 dp=default/api-1 inbound src=default/web (spiffe://d.trellis.local/default/web) dst=default/api@127.0.0.1:9081 tls=true :method=GET :authority=api :path=/x?y=1
rsp id=1 :status=200 latency=1.234ms bytesIn=0 bytesOut=12 flags=-
req id=2 dp=default/web-1 outbound src=default/web dst=default/api:80 tls=false :method=POST :authority=api :path=/g
rsp id=2 :status=503 latency=2.000ms bytesIn=5 bytesOut=0 flags=UH grpc-status=14 reason=no_healthy_upstream
  > body: "hello" (truncated)
  < body (base64): AAAAAANhYmM=
`, wantE: "# tapping service default/api: 1 proxy serving it, 2 may call it\n"},
		{name: "text with headers", headers: true, wantOut: `req id=1 dp=default/api-1 inbound src=default/web (spiffe://d.trellis.local/default/web) dst=default/api@127.0.0.1:9081 tls=true :method=GET :authority=api :path=/x?y=1
  > accept: */*
  > authorization: REDACTED
rsp id=1 :status=200 latency=1.234ms bytesIn=0 bytesOut=12 flags=-
  < content-type: text/plain
req id=2 dp=default/web-1 outbound src=default/web dst=default/api:80 tls=false :method=POST :authority=api :path=/g
rsp id=2 :status=503 latency=2.000ms bytesIn=5 bytesOut=0 flags=UH grpc-status=14 reason=no_healthy_upstream
  > body: "hello" (truncated)
  < body (base64): AAAAAANhYmM=
`, wantE: "# tapping service default/api: 1 proxy serving it, 2 may call it\n"},
		{name: "json passes lines through", json: true, wantOut: stream[0] + "\n" + stream[1] + "\n" + stream[2] + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			p := &tapPrinter{out: &out, errOut: &errOut, json: tc.json, headers: tc.headers}
			events := 0
			for _, l := range stream {
				ev, err := p.line([]byte(l))
				if err != nil {
					t.Fatal(err)
				}
				if ev {
					events++
				}
			}
			if events != 2 {
				t.Errorf("%d events, want 2", events)
			}
			if d := cmp.Diff(tc.wantOut, out.String()); d != "" {
				t.Errorf("stdout (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantE, errOut.String()); d != "" {
				t.Errorf("stderr (-want +got):\n%s", d)
			}
		})
	}
	if _, err := (&tapPrinter{}).line([]byte("{not json")); err == nil {
		t.Error("a malformed line was accepted")
	}
}
