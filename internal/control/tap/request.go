package tap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/trellis-mesh/trellis/internal/telemetry/tap"
)

// Limits of Request.MaxRPS.
const (
	DefaultMaxRPS = 100
	MaxMaxRPS     = 1000
)

// Errors of Hub.Tap: ErrInvalid for a bad request (400, the message
// names the parameter), ErrNotFound for a target that does not exist
// (404).
var (
	ErrInvalid  = errors.New("invalid tap request")
	ErrNotFound = errors.New("not found")
)

// Target kinds.
const (
	KindService   = "service"
	KindDataplane = "dataplane"
)

// Target is what a tap watches: a Service or a Dataplane.
type Target struct {
	Kind            string // KindService or KindDataplane
	Namespace, Name string
}

// String renders t as ParseTarget reads it (kind/namespace/name).
func (t Target) String() string { return t.Kind + "/" + t.Namespace + "/" + t.Name }

// ParseTarget reads "service/NS/NAME", "service/NAME", "NAME",
// "dataplane/NS/NAME" or "dataplane/NAME"; the namespace defaults to
// "default".
func ParseTarget(s string) (Target, error) {
	parts := strings.Split(s, "/")
	t := Target{Kind: KindService, Namespace: "default"}
	switch {
	case len(parts) == 1:
		t.Name = parts[0]
	case len(parts) <= 3 && (parts[0] == KindService || parts[0] == KindDataplane || parts[0] == "svc" || parts[0] == "dp"):
		t.Kind = map[string]string{"svc": KindService, "dp": KindDataplane}[parts[0]]
		if t.Kind == "" {
			t.Kind = parts[0]
		}
		if len(parts) == 3 {
			t.Namespace, t.Name = parts[1], parts[2]
		} else {
			t.Name = parts[1]
		}
	default:
		return Target{}, fmt.Errorf("%w: target: %q: want service/NS/NAME, service/NAME, NAME, dataplane/NS/NAME or dataplane/NAME", ErrInvalid, s)
	}
	if t.Name == "" || t.Namespace == "" {
		return Target{}, fmt.Errorf("%w: target: %q: empty namespace or name", ErrInvalid, s)
	}
	return t, nil
}

// Request is one API client's tap.
type Request struct {
	Target Target
	// PathPrefix, Method and Authority filter the requests (docs/tap.md).
	PathPrefix, Method, Authority string
	// MaxRPS caps the merged events per second; zero means
	// DefaultMaxRPS, at most MaxMaxRPS.
	MaxRPS int
	// Headers captures request and response headers (redacted).
	// Capture is for administrators: every API token is the admin token
	// today.
	Headers bool
	// Body captures the first Body bytes (1..MaxBody) of request and
	// response bodies, shown as sent (not redacted); 0 captures none.
	// Like Headers, for administrators.
	Body int
}

// MaxBody is the most bytes of each body a tap may capture.
const MaxBody = tap.MaxBody

// Validate checks r and applies the defaults.
func (r *Request) Validate() error {
	if r.MaxRPS == 0 {
		r.MaxRPS = DefaultMaxRPS
	}
	if r.MaxRPS < 1 || r.MaxRPS > MaxMaxRPS {
		return fmt.Errorf("%w: maxRps: %d: must be 1..%d", ErrInvalid, r.MaxRPS, MaxMaxRPS)
	}
	if r.Body < 0 || r.Body > MaxBody {
		return fmt.Errorf("%w: body: %d: must be 0 (off) or 1..%d bytes", ErrInvalid, r.Body, MaxBody)
	}
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		return fmt.Errorf("%w: path: %q: must start with /", ErrInvalid, r.PathPrefix)
	}
	if strings.ContainsAny(r.Method, " \t/") {
		return fmt.Errorf("%w: method: %q: not an HTTP method", ErrInvalid, r.Method)
	}
	return nil
}

// Line is one line of a tap's stream: an event or a notice.
type Line struct {
	// Event is set for a line of type "event" (Event.Type is "event").
	Event *tap.Event
	// Notice is the message of a line of type "notice".
	Notice string
}

// noticeJSON is the JSON of a notice line.
type noticeJSON struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// JSON returns the object of the line as docs/tap.md shows it.
func (l Line) JSON() any {
	if l.Event != nil {
		return l.Event
	}
	return noticeJSON{Type: "notice", Message: l.Notice}
}
