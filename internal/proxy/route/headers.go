package route

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Mutations are the header additions and removals of one level (route,
// virtual host or route configuration).
type Mutations struct {
	RequestAdd     []HeaderAdd
	RequestRemove  []string
	ResponseAdd    []HeaderAdd
	ResponseRemove []string
}

// Empty reports whether m changes nothing.
func (m *Mutations) Empty() bool {
	return len(m.RequestAdd)+len(m.RequestRemove)+len(m.ResponseAdd)+len(m.ResponseRemove) == 0
}

// HeaderAdd is one compiled HeaderValueOption.
type HeaderAdd struct {
	Key       string // canonical
	Value     Format
	Action    corev3.HeaderValueOption_HeaderAppendAction
	KeepEmpty bool
}

// Vars are the request properties header values may refer to with Envoy's
// command operators (%DOWNSTREAM_REMOTE_ADDRESS% and friends).
type Vars struct {
	Request        *http.Request
	RemoteAddr     string // downstream peer "ip:port"
	LocalAddr      string // downstream local "ip:port"
	UpstreamAddr   string // chosen upstream host, responses only
	ResponseHeader http.Header
}

// Format is a header value template: literal text and command operators.
type Format struct {
	literal string // set when the value has no operators
	parts   []formatPart
}

type formatPart struct {
	lit string
	op  string // operator name, "" for a literal part
	arg string // REQ(arg) / RESP(arg)
}

var hostname, _ = os.Hostname()

// Supported command operators (a subset of Envoy's access-log operators).
var operators = map[string]bool{
	"DOWNSTREAM_REMOTE_ADDRESS": true, "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": true,
	"DOWNSTREAM_LOCAL_ADDRESS": true, "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": true,
	"UPSTREAM_REMOTE_ADDRESS": true, "PROTOCOL": true, "HOSTNAME": true, "REQ": true,
}

// ParseFormat compiles an Envoy header value with %OPERATOR% substitutions;
// "%%" is a literal percent sign.
func ParseFormat(s string) (Format, error) {
	if !strings.Contains(s, "%") {
		return Format{literal: s}, nil
	}
	var f Format
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '%')
		if end < 0 {
			return Format{}, fmt.Errorf("unterminated operator in %q", s)
		}
		tok := s[i+1 : i+1+end]
		i += end + 1
		name, arg := tok, ""
		if open := strings.IndexByte(tok, '('); open >= 0 && strings.HasSuffix(tok, ")") {
			name, arg = tok[:open], tok[open+1:len(tok)-1]
		}
		if !operators[name] {
			return Format{}, fmt.Errorf("operator %%%s%% not supported", tok)
		}
		if name == "REQ" && arg == "" {
			return Format{}, errors.New("operator %REQ()% needs a header name")
		}
		if lit.Len() > 0 {
			f.parts = append(f.parts, formatPart{lit: lit.String()})
			lit.Reset()
		}
		f.parts = append(f.parts, formatPart{op: name, arg: http.CanonicalHeaderKey(arg)})
	}
	if lit.Len() > 0 {
		f.parts = append(f.parts, formatPart{lit: lit.String()})
	}
	return f, nil
}

// Eval renders f for one request.
func (f *Format) Eval(v *Vars) string {
	if f.parts == nil {
		return f.literal
	}
	var b strings.Builder
	for _, p := range f.parts {
		switch p.op {
		case "":
			b.WriteString(p.lit)
		case "DOWNSTREAM_REMOTE_ADDRESS":
			b.WriteString(v.RemoteAddr)
		case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
			b.WriteString(hostOnly(v.RemoteAddr))
		case "DOWNSTREAM_LOCAL_ADDRESS":
			b.WriteString(v.LocalAddr)
		case "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":
			b.WriteString(hostOnly(v.LocalAddr))
		case "UPSTREAM_REMOTE_ADDRESS":
			b.WriteString(v.UpstreamAddr)
		case "PROTOCOL":
			if v.Request != nil {
				b.WriteString(v.Request.Proto)
			}
		case "HOSTNAME":
			b.WriteString(hostname)
		case "REQ":
			if v.Request != nil {
				b.WriteString(v.Request.Header.Get(p.arg))
			}
		}
	}
	return b.String()
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func compileMutations(reqAdd []*corev3.HeaderValueOption, reqRemove []string,
	respAdd []*corev3.HeaderValueOption, respRemove []string) (Mutations, error) {
	var m Mutations
	var errs []error
	var err error
	if m.RequestAdd, err = compileAdds("request_headers_to_add", reqAdd); err != nil {
		errs = append(errs, err)
	}
	if m.ResponseAdd, err = compileAdds("response_headers_to_add", respAdd); err != nil {
		errs = append(errs, err)
	}
	for _, k := range reqRemove {
		m.RequestRemove = append(m.RequestRemove, http.CanonicalHeaderKey(k))
	}
	for _, k := range respRemove {
		m.ResponseRemove = append(m.ResponseRemove, http.CanonicalHeaderKey(k))
	}
	return m, errors.Join(errs...)
}

// CompileHeaderAdd compiles one HeaderValueOption; errors name fields
// below it.
func CompileHeaderAdd(o *corev3.HeaderValueOption) (HeaderAdd, error) {
	value := o.GetHeader().GetValue()
	if raw := o.GetHeader().GetRawValue(); len(raw) > 0 {
		value = string(raw) // Envoy: raw_value, when set, is the value
	}
	f, err := ParseFormat(value)
	if err != nil {
		return HeaderAdd{}, fmt.Errorf("header.value: %w", err)
	}
	key := o.GetHeader().GetKey()
	if strings.HasPrefix(key, ":") || strings.EqualFold(key, "host") {
		return HeaderAdd{}, fmt.Errorf("header.key: %q cannot be modified", key)
	}
	action := o.GetAppendAction()
	//lint:ignore SA1019 Envoy still honours this deprecated field; so does Trellis.
	if appendOpt := o.GetAppend(); appendOpt != nil {
		if appendOpt.GetValue() {
			action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		} else {
			action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		}
	}
	return HeaderAdd{Key: http.CanonicalHeaderKey(key), Value: f, Action: action, KeepEmpty: o.GetKeepEmptyValue()}, nil
}

func compileAdds(field string, opts []*corev3.HeaderValueOption) ([]HeaderAdd, error) {
	var out []HeaderAdd
	for i, o := range opts {
		a, err := CompileHeaderAdd(o)
		if err != nil {
			return nil, fmt.Errorf("%s[%d].%w", field, i, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ApplyRequest applies the request mutations of m to h.
func (m *Mutations) ApplyRequest(h http.Header, v *Vars) {
	apply(h, m.RequestAdd, m.RequestRemove, v)
}

// ApplyResponse applies the response mutations of m to h.
func (m *Mutations) ApplyResponse(h http.Header, v *Vars) {
	apply(h, m.ResponseAdd, m.ResponseRemove, v)
}

func apply(h http.Header, adds []HeaderAdd, removes []string, v *Vars) {
	for _, k := range removes {
		delete(h, k)
	}
	for i := range adds {
		adds[i].Apply(h, v)
	}
}

// Apply applies one header addition to h.
func (a *HeaderAdd) Apply(h http.Header, v *Vars) {
	val := a.Value.Eval(v)
	if val == "" && !a.KeepEmpty {
		return
	}
	_, exists := h[a.Key]
	switch a.Action {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		h[a.Key] = append(h[a.Key], val)
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if !exists {
			h[a.Key] = []string{val}
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		h[a.Key] = []string{val}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if exists {
			h[a.Key] = []string{val}
		}
	}
}
