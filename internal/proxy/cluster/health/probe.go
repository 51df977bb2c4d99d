package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// userAgent is the User-Agent of HTTP and gRPC checks. It is Envoy's, so
// upstreams that recognise Envoy's health checks (and its health check
// filter) recognise Trellis' too.
const userAgent = "Envoy/HC"

// check runs one check of s's host. The caller bounds ctx by the timeout and
// turns deadline errors into failTimeout.
func (c *Checker) check(ctx context.Context, s *session, cfg *Config) (result, error) {
	switch cfg.Protocol {
	case HTTP:
		return c.checkHTTP(ctx, s, &cfg.HTTP)
	case TCP:
		return c.checkTCP(ctx, s, &cfg.TCP)
	case GRPC:
		return c.checkGRPC(ctx, s, &cfg.GRPC)
	}
	return success, nil
}

func (c *Checker) checkHTTP(ctx context.Context, s *session, h *HTTPCheck) (result, error) {
	cc, err := c.clientConn(ctx, s, h.Codec == HTTP2, h.UseALPN)
	if err != nil {
		return failNetwork, err
	}
	host := h.Host
	if host == "" {
		host = c.authority(s)
	}
	target, err := url.ParseRequestURI(h.Path) // validated by ParseConfig
	if err != nil {
		return failActive, fmt.Errorf("path: %w", err)
	}
	req := &http.Request{
		Method:     h.Method,
		URL:        &url.URL{Scheme: s.scheme, Host: host, Path: target.Path, RawPath: target.RawPath, RawQuery: target.RawQuery},
		Host:       host,
		Header:     http.Header{"User-Agent": {userAgent}},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}
	req = req.WithContext(ctx)
	// Envoy's header parser removes, then adds.
	for _, k := range h.RemoveHeaders {
		req.Header.Del(k)
	}
	applyHeaders(req.Header, h.AddHeaders)
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // removed: net/http must not add its own
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return failNetwork, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	if err != nil {
		return failNetwork, err
	}
	code := resp.StatusCode
	switch {
	case inRanges(h.Expected, code):
		return success, nil
	case inRanges(h.Retriable, code):
		return failRetriable, fmt.Errorf("status %d", code)
	}
	return failActive, fmt.Errorf("status %d", code)
}

func inRanges(rs []StatusRange, code int) bool {
	for _, r := range rs {
		if code >= r.Start && code < r.End {
			return true
		}
	}
	return false
}

// applyHeaders adds header options with their append actions.
func applyHeaders(hdr http.Header, opts []HeaderOption) {
	for _, o := range opts {
		if o.Value == "" && !o.KeepEmpty {
			continue
		}
		_, exists := hdr[http.CanonicalHeaderKey(o.Key)]
		switch o.Action {
		case AppendIfExistsOrAdd:
			hdr.Add(o.Key, o.Value)
		case AddIfAbsent:
			if !exists {
				hdr.Set(o.Key, o.Value)
			}
		case OverwriteIfExistsOrAdd:
			hdr.Set(o.Key, o.Value)
		case OverwriteIfExists:
			if exists {
				hdr.Set(o.Key, o.Value)
			}
		}
	}
}

// authority is the default Host / :authority: the cluster name, as in Envoy,
// or the host address for an unnamed cluster.
func (c *Checker) authority(s *session) string {
	if c.opts.Cluster != "" {
		return c.opts.Cluster
	}
	return s.host.Address
}

// clientConn returns s's HTTP connection, dialling a new one when there is
// none or the previous one is no longer usable.
func (c *Checker) clientConn(ctx context.Context, s *session, h2, alpn bool) (*http.ClientConn, error) {
	if s.cc != nil && s.cc.Err() == nil && s.cc.Available() > 0 {
		return s.cc, nil
	}
	s.closeConn()
	conn, err := c.opts.Dial(ctx, s.host.Address)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	var protos http.Protocols
	_, isTLS := conn.(*tls.Conn)
	switch {
	case isTLS && alpn:
		// net/http picks HTTP/2 when ALPN says h2, HTTP/1.1 otherwise.
		scheme = "https"
		protos.SetHTTP1(true)
		protos.SetHTTP2(true)
	case isTLS && h2:
		scheme = "https"
		protos.SetHTTP2(true)
	case isTLS:
		scheme = "https"
		protos.SetHTTP1(true)
	case h2:
		protos.SetUnencryptedHTTP2(true) // prior knowledge, as Envoy's HTTP2 codec
	default:
		protos.SetHTTP1(true)
	}
	// The Transport only wraps the connection dialled above: the cluster's
	// dialer has done TCP and TLS already.
	once := func(context.Context, string, string) (net.Conn, error) {
		if conn == nil {
			return nil, errors.New("health: connection already used")
		}
		nc := conn
		conn = nil
		return nc, nil
	}
	t := &http.Transport{DialContext: once, DialTLSContext: once, Protocols: &protos, DisableCompression: true}
	cc, err := t.NewClientConn(ctx, scheme, s.host.Address)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	s.cc, s.scheme = cc, scheme
	return cc, nil
}

// checkGRPC calls grpc.health.v1.Health/Check over HTTP/2. A connection or
// stream failure is a network failure; any answer other than grpc-status 0
// with status SERVING fails the host at once, as in Envoy.
func (c *Checker) checkGRPC(ctx context.Context, s *session, g *GRPCCheck) (result, error) {
	cc, err := c.clientConn(ctx, s, true, false)
	if err != nil {
		return failNetwork, err
	}
	msg, _ := proto.Marshal(&healthpb.HealthCheckRequest{Service: g.ServiceName})
	body := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:5], uint32(len(msg)))
	copy(body[5:], msg)
	authority := g.Authority
	if authority == "" {
		authority = c.authority(s)
	}
	req := &http.Request{
		Method: http.MethodPost,
		URL:    &url.URL{Scheme: s.scheme, Host: authority, Path: "/grpc.health.v1.Health/Check"},
		Host:   authority,
		Header: http.Header{
			"Content-Type": {"application/grpc"},
			"Te":           {"trailers"},
			"User-Agent":   {userAgent},
		},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
	}
	applyHeaders(req.Header, g.Metadata)
	resp, err := cc.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return failNetwork, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	if err != nil {
		return failNetwork, err
	}
	if resp.StatusCode != http.StatusOK {
		return failActive, fmt.Errorf("http status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return failActive, fmt.Errorf("content-type %q is not gRPC", ct)
	}
	status, message := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if status == "" { // trailers-only response
		status, message = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if status != "0" {
		return failActive, fmt.Errorf("grpc-status %q: %s", status, message)
	}
	if len(data) < 5 || data[0] != 0 || int(binary.BigEndian.Uint32(data[1:5])) != len(data)-5 {
		return failActive, errors.New("malformed gRPC response")
	}
	var out healthpb.HealthCheckResponse
	if err := proto.Unmarshal(data[5:], &out); err != nil {
		return failActive, fmt.Errorf("malformed health response: %w", err)
	}
	if out.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return failActive, fmt.Errorf("status %s", out.GetStatus())
	}
	return success, nil
}

// checkTCP connects, writes Send and reads until every Receive block was
// found in order. Data that does not match yet keeps the check waiting, so
// a wrong answer fails by timeout, as in Envoy.
func (c *Checker) checkTCP(ctx context.Context, s *session, t *TCPCheck) (result, error) {
	if s.conn == nil {
		conn, err := c.opts.Dial(ctx, s.host.Address)
		if err != nil {
			return failNetwork, err
		}
		s.conn = conn
	}
	conn := s.conn
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if stop() {
			conn.SetDeadline(time.Time{})
		}
	}()
	if len(t.Send) > 0 {
		if _, err := conn.Write(t.Send); err != nil {
			return failNetwork, err
		}
	}
	if len(t.Receive) == 0 {
		return success, nil
	}
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxResponse {
				return failNetwork, fmt.Errorf("no match in the first %d bytes", maxResponse)
			}
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if matchPayloads(buf, t.Receive) {
			return success, nil
		}
		if err != nil {
			return failNetwork, err
		}
	}
}

// matchPayloads reports whether every block is found in data, in order.
func matchPayloads(data []byte, blocks [][]byte) bool {
	for _, b := range blocks {
		i := bytes.Index(data, b)
		if i < 0 {
			return false
		}
		data = data[i+len(b):]
	}
	return true
}
