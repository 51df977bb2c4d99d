// Package accesslog writes the proxy's access log: one JSON object per line
// for each HTTP request or TCP connection, with Envoy's response flags.
//
// Sinks (files, stdout, stderr) are owned by a Sinks value that outlives
// configuration snapshots, so a reload does not reopen files. Writing an
// entry is one write call under a mutex; formatting uses a pooled buffer.
package accesslog

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Flags are Envoy's response flags (access log %RESPONSE_FLAGS%).
type Flags uint32

// The response flags Trellis sets, named as Envoy names them.
const (
	NoRoute                         Flags = 1 << iota // NR
	NoHealthyUpstream                                 // UH
	UpstreamConnectionFailure                         // UF
	UpstreamRetryLimitExceeded                        // URX
	UpstreamRequestTimeout                            // UT
	UpstreamOverflow                                  // UO
	UpstreamConnectionTermination                     // UC
	DownstreamConnectionTermination                   // DC
	LocalReset                                        // LR
	NoClusterFound                                    // NC
	DownstreamProtocolError                           // DPE
	StreamIdleTimeout                                 // SI
	UpstreamProtocolError                             // UPE
	DurationTimeout                                   // DT
	DelayInjected                                     // DI
	FaultInjected                                     // FI
	RateLimited                                       // RL
)

var flagNames = []string{"NR", "UH", "UF", "URX", "UT", "UO", "UC", "DC", "LR", "NC", "DPE", "SI", "UPE", "DT", "DI", "FI", "RL"}

// String renders f as Envoy does: short names joined by ",", or "-".
func (f Flags) String() string {
	if f == 0 {
		return "-"
	}
	return string(f.append(nil))
}

func (f Flags) append(b []byte) []byte {
	first := true
	for i, n := range flagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		b = append(b, n...)
		first = false
	}
	return b
}

// Entry is one access-log record. Zero fields are written as null or 0.
type Entry struct {
	Start               time.Time
	Kind                string // "http" or "tcp"
	Listener            string
	Method              string
	Authority           string
	Path                string
	Protocol            string
	Status              int
	Flags               Flags
	Reason              string
	Duration            time.Duration
	UpstreamHost        string
	UpstreamCluster     string
	UpstreamServiceTime time.Duration
	Retries             int
	Route               string
	BytesReceived       int64
	BytesSent           int64
	RequestID           string
	DownstreamRemote    string
	UserAgent           string
	ForwardedFor        string
}

// Logger writes entries to one sink.
type Logger struct{ sink *sink }

type sink struct {
	mu  sync.Mutex
	w   io.Writer
	f   *os.File // nil for stdout/stderr
	ref int
}

// Sinks opens and shares sinks by path; it lives as long as the proxy.
type Sinks struct {
	mu    sync.Mutex
	paths map[string]*sink
}

// NewSinks returns an empty set of sinks.
func NewSinks() *Sinks { return &Sinks{paths: map[string]*sink{}} }

// Open returns a logger for path ("/dev/stdout" and "/dev/stderr" are the
// process streams). Files are opened for append and created if missing.
func (s *Sinks) Open(path string) (*Logger, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sk, ok := s.paths[path]; ok {
		sk.ref++
		return &Logger{sink: sk}, nil
	}
	sk := &sink{ref: 1}
	switch path {
	case "/dev/stdout":
		sk.w = os.Stdout
	case "/dev/stderr":
		sk.w = os.Stderr
	default:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		sk.w, sk.f = f, f
	}
	s.paths[path] = sk
	return &Logger{sink: sk}, nil
}

// Close closes every file sink.
func (s *Sinks) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for p, sk := range s.paths {
		if sk.f != nil {
			if err := sk.f.Close(); err != nil && first == nil {
				first = err
			}
		}
		delete(s.paths, p)
	}
	return first
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Log writes e as one JSON line. Write errors are dropped: the access log
// must never fail a request.
func (l *Logger) Log(e *Entry) {
	bp := bufPool.Get().(*[]byte)
	b := e.AppendJSON((*bp)[:0])
	b = append(b, '\n')
	l.sink.mu.Lock()
	_, _ = l.sink.w.Write(b)
	l.sink.mu.Unlock()
	*bp = b
	bufPool.Put(bp)
}

// AppendJSON appends e as a JSON object to b.
func (e *Entry) AppendJSON(b []byte) []byte {
	b = append(b, `{"start_time":"`...)
	b = e.Start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, '"')
	str := func(k, v string) {
		b = append(b, ',', '"')
		b = append(b, k...)
		b = append(b, `":`...)
		if v == "" {
			b = append(b, "null"...)
			return
		}
		b = appendString(b, v)
	}
	num := func(k string, v int64) {
		b = append(b, ',', '"')
		b = append(b, k...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, v, 10)
	}
	str("kind", e.Kind)
	str("listener", e.Listener)
	str("method", e.Method)
	str("authority", e.Authority)
	str("path", e.Path)
	str("protocol", e.Protocol)
	num("response_code", int64(e.Status))
	b = append(b, `,"response_flags":"`...)
	if e.Flags == 0 {
		b = append(b, '-')
	} else {
		b = e.Flags.append(b)
	}
	b = append(b, '"')
	str("reason", e.Reason)
	num("duration_ms", e.Duration.Milliseconds())
	str("upstream_host", e.UpstreamHost)
	str("upstream_cluster", e.UpstreamCluster)
	num("upstream_service_time_ms", e.UpstreamServiceTime.Milliseconds())
	num("retries", int64(e.Retries))
	str("route_name", e.Route)
	num("bytes_received", e.BytesReceived)
	num("bytes_sent", e.BytesSent)
	str("request_id", e.RequestID)
	str("downstream_remote_address", e.DownstreamRemote)
	str("user_agent", e.UserAgent)
	str("x_forwarded_for", e.ForwardedFor)
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
