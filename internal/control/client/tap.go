package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// TapQuery selects what GET /api/v1/tap streams (docs/tap.md). Empty
// fields are left out.
type TapQuery struct {
	// Target is service/NS/NAME, service/NAME, NAME, dataplane/NS/NAME or
	// dataplane/NAME. Required.
	Target                  string
	Path, Method, Authority string
	// MaxRPS caps the events a second; 0 is the server's default (100).
	MaxRPS int
	// Headers captures request and response headers (redacted).
	Headers bool
	// Body captures the first Body bytes (1..4096) of request and
	// response bodies; 0 captures none.
	Body int
}

// maxTapLine bounds one line of the stream (an event with headers).
const maxTapLine = 4 << 20

// Tap opens a tap and calls line with each line of the stream (one JSON
// object, without the newline) until ctx ends, the stream ends or line
// returns an error. It returns nil when ctx ends, an *APIError when the
// server refuses the tap.
func (c *Client) Tap(ctx context.Context, q TapQuery, line func([]byte) error) error {
	v := url.Values{"target": {q.Target}}
	for k, s := range map[string]string{"path": q.Path, "method": q.Method, "authority": q.Authority} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.MaxRPS != 0 {
		v.Set("maxRps", strconv.Itoa(q.MaxRPS))
	}
	if q.Headers {
		v.Set("headers", "true")
	}
	if q.Body != 0 {
		v.Set("body", strconv.Itoa(q.Body))
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/tap"
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.http
	hc.Timeout = 0 // a stream: it ends with ctx
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.connError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.ErrorResponse) != nil || e.ErrorResponse.Error == "" {
			e.ErrorResponse.Error = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
		}
		return e
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxTapLine)
	for sc.Scan() {
		if err := line(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tap stream from %s: %w", c.base.Host, err)
	}
	if ctx.Err() == nil {
		return fmt.Errorf("tap stream from %s ended", c.base.Host)
	}
	return nil
}
