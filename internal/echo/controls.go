package echo

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Control names, as query parameters. The header form is "x-echo-" plus the
// name; in both forms '-' and '_' are interchangeable and case is ignored,
// so x-echo-fail-status and fail_status name the same control.
const (
	ctlStatus     = "status"
	ctlSize       = "size"
	ctlDelay      = "delay"
	ctlFail       = "fail"
	ctlFailStatus = "fail_status"
	ctlReset      = "reset"
	ctlEchoBody   = "echo_body"
	ctlHeader     = "header"
	ctlTrailer    = "trailer"
	ctlChunks     = "chunks"
	ctlChunkDelay = "chunk_delay"
)

var controlNames = [...]string{
	ctlStatus, ctlSize, ctlDelay, ctlFail, ctlFailStatus, ctlReset,
	ctlEchoBody, ctlHeader, ctlTrailer, ctlChunks, ctlChunkDelay,
}

// controlHeaderPrefix starts the header form of every control.
const controlHeaderPrefix = "X-Echo-"

// maxChunks bounds the chunks control.
const maxChunks = 1 << 20

// controls is what one request asks of the response. The zero value is not
// ready: parse sets the defaults.
type controls struct {
	status     int
	size       int64 // -1: not set, answer with JSON
	delay      time.Duration
	fail       float64
	failStatus int
	reset      float64
	echoBody   bool
	chunks     int
	chunkDelay time.Duration
	headers    []field
	trailers   []field
}

// field is one header or trailer field to add to the response.
type field struct{ name, value string }

// controlError reports an invalid control value. Its message names the
// control, so a 400 tells the client what to fix.
type controlError struct {
	name, value, want string
}

func (e *controlError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.name, e.value, e.want)
}

// parse reads the controls of r from its x-echo-* headers and its query
// parameters; a query parameter wins over the header of the same control,
// and repeatable controls (header, trailer) collect both.
func (c *controls) parse(r *http.Request) error {
	*c = controls{status: http.StatusOK, size: -1, failStatus: http.StatusServiceUnavailable}
	for k, vs := range r.Header {
		if len(k) <= len(controlHeaderPrefix) || !strings.EqualFold(k[:len(controlHeaderPrefix)], controlHeaderPrefix) {
			continue
		}
		name, ok := lookupControl(k[len(controlHeaderPrefix):])
		if !ok {
			continue
		}
		for _, v := range vs {
			if err := c.set(name, v); err != nil {
				return err
			}
		}
	}
	// Walk the raw query instead of r.URL.Query(): it allocates no map, and
	// QueryUnescape returns its input unchanged when nothing is escaped.
	for q := r.URL.RawQuery; q != ""; {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		name, ok := lookupControl(k)
		if !ok {
			continue
		}
		raw := v
		if v, err = url.QueryUnescape(v); err != nil {
			return &controlError{name, raw, "bad percent-encoding"}
		}
		if err := c.set(name, v); err != nil {
			return err
		}
	}
	return nil
}

// set parses one control value into c.
func (c *controls) set(name, v string) error {
	var err error
	switch name {
	case ctlStatus:
		c.status, err = parseStatus(name, v)
	case ctlFailStatus:
		c.failStatus, err = parseStatus(name, v)
	case ctlSize:
		if c.size, err = parseSize(v); err != nil {
			err = &controlError{name, v, err.Error()}
		}
	case ctlDelay:
		c.delay, err = parseDelay(name, v)
	case ctlChunkDelay:
		c.chunkDelay, err = parseDelay(name, v)
	case ctlFail:
		c.fail, err = parseProbability(name, v)
	case ctlReset:
		c.reset, err = parseProbability(name, v)
	case ctlEchoBody:
		if c.echoBody, err = strconv.ParseBool(v); err != nil {
			err = &controlError{name, v, "want 1, 0, true or false"}
		}
	case ctlChunks:
		if c.chunks, err = strconv.Atoi(v); err != nil || c.chunks < 0 || c.chunks > maxChunks {
			err = &controlError{name, v, fmt.Sprintf("want an integer in 0..%d", maxChunks)}
		}
	case ctlHeader, ctlTrailer:
		f, ok := parseField(v)
		if !ok {
			return &controlError{name, v, "want name:value with a valid header name and value"}
		}
		if name == ctlHeader {
			c.headers = append(c.headers, f)
			break
		}
		// Framing and routing fields are forbidden in trailers (RFC 9110 §6.5.1).
		if !httpguts.ValidTrailerHeader(f.name) {
			return &controlError{name, v, "field not allowed in trailers"}
		}
		c.trailers = append(c.trailers, f)
	}
	return err
}

// lookupControl returns the canonical control name that s spells, ignoring
// case and treating '-' and '_' alike.
func lookupControl(s string) (string, bool) {
	for _, name := range controlNames {
		if len(s) == len(name) && sameControlName(s, name) {
			return name, true
		}
	}
	return "", false
}

func sameControlName(s, name string) bool {
	for i := 0; i < len(s); i++ {
		a, b := s[i], name[i]
		if a == '-' {
			a = '_'
		}
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

func parseStatus(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 200 || n > 599 {
		// 1xx codes are informational, not final, and cannot end a response.
		return 0, &controlError{name, v, "want an HTTP status code in 200..599"}
	}
	return n, nil
}

func parseDelay(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &controlError{name, v, "want a non-negative Go duration such as 250ms or 2s"}
	}
	return d, nil
}

func parseProbability(name, v string) (float64, error) {
	p, err := strconv.ParseFloat(v, 64)
	if err != nil || !(p >= 0 && p <= 1) { // also rejects NaN
		return 0, &controlError{name, v, "want a probability in 0..1"}
	}
	return p, nil
}

// parseField splits "name:value" and checks both halves are valid on the
// wire (RFC 9110 §5.1, §5.5), so a client cannot inject other fields.
func parseField(v string) (field, bool) {
	name, value, ok := strings.Cut(v, ":")
	value = strings.TrimSpace(value)
	if !ok || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
		return field{}, false
	}
	return field{http.CanonicalHeaderKey(name), value}, true
}

// hit reports whether an event of probability p happens this time.
func hit(p float64) bool {
	return p >= 1 || (p > 0 && rand.Float64() < p)
}
