// Package headermutation is Envoy's header mutation HTTP filter
// (envoy.extensions.filters.http.header_mutation.v3.HeaderMutation): it
// removes and adds request headers before routing on, and response headers
// before they are sent, in the order configured, with values that may use
// request properties (%DOWNSTREAM_REMOTE_ADDRESS% and the others the route
// package supports). A route can replace the mutations with a
// HeaderMutationPerRoute.
package headermutation

import (
	"errors"
	"fmt"
	"net"
	"net/http"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	hmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellis-mesh/trellis/internal/proxy/httpfilter"
	"github.com/trellis-mesh/trellis/internal/proxy/matcher"
	"github.com/trellis-mesh/trellis/internal/proxy/route"
)

// Builder builds header mutation filters.
type Builder struct{}

var _ httpfilter.Builder = Builder{}

// TypeURL implements httpfilter.Builder.
func (Builder) TypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
}

// OverrideTypeURL is the type of the per-route configuration.
func (Builder) OverrideTypeURL() string {
	return "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute"
}

// Build implements httpfilter.Builder.
func (Builder) Build(name string, a *anypb.Any) (httpfilter.Filter, error) {
	pb := &hmv3.HeaderMutation{}
	if err := a.UnmarshalTo(pb); err != nil {
		return nil, err
	}
	if pb.GetMostSpecificHeaderMutationsWins() {
		return nil, errors.New("most_specific_header_mutations_wins: not supported")
	}
	m, err := compile(pb.GetMutations())
	if err != nil {
		return nil, fmt.Errorf("mutations.%w", err)
	}
	return &filter{name: name, m: m}, nil
}

// ParseOverride implements httpfilter.Builder.
func (Builder) ParseOverride(a *anypb.Any) (any, error) {
	pb := &hmv3.HeaderMutationPerRoute{}
	if err := a.UnmarshalTo(pb); err != nil {
		return nil, err
	}
	m, err := compile(pb.GetMutations())
	if err != nil {
		return nil, fmt.Errorf("mutations.%w", err)
	}
	return m, nil
}

// op is one mutation: a removal, a removal by matcher, or an addition.
type op struct {
	remove      string
	removeMatch *matcher.String
	add         *route.HeaderAdd
}

type mutations struct{ request, response []op }

func compile(pb *hmv3.Mutations) (*mutations, error) {
	var errs []error
	if len(pb.GetQueryParameterMutations()) > 0 {
		errs = append(errs, errors.New("query_parameter_mutations: not supported"))
	}
	if len(pb.GetRequestTrailersMutations())+len(pb.GetResponseTrailersMutations()) > 0 {
		errs = append(errs, errors.New("request_trailers_mutations, response_trailers_mutations: not supported"))
	}
	req, err := ops("request_mutations", pb.GetRequestMutations())
	errs = append(errs, err)
	resp, err := ops("response_mutations", pb.GetResponseMutations())
	errs = append(errs, err)
	return &mutations{request: req, response: resp}, errors.Join(errs...)
}

func ops(field string, ms []*mutationv3.HeaderMutation) ([]op, error) {
	var out []op
	var errs []error
	for i, m := range ms {
		switch a := m.GetAction().(type) {
		case *mutationv3.HeaderMutation_Remove:
			out = append(out, op{remove: http.CanonicalHeaderKey(a.Remove)})
		case *mutationv3.HeaderMutation_Append:
			add, err := route.CompileHeaderAdd(a.Append)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d].append.%w", field, i, err))
				continue
			}
			out = append(out, op{add: &add})
		case *mutationv3.HeaderMutation_RemoveOnMatch_:
			sm, err := matcher.NewString(a.RemoveOnMatch.GetKeyMatcher())
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d].remove_on_match.key_matcher: %w", field, i, err))
				continue
			}
			out = append(out, op{removeMatch: &sm})
		default:
			errs = append(errs, fmt.Errorf("%s[%d]: one of remove, append, remove_on_match is required", field, i))
		}
	}
	return out, errors.Join(errs...)
}

func apply(h http.Header, ops []op, v *route.Vars) {
	for i := range ops {
		o := &ops[i]
		switch {
		case o.add != nil:
			o.add.Apply(h, v)
		case o.removeMatch != nil:
			for k := range h {
				if o.removeMatch.Match(k) || o.removeMatch.Match(http.CanonicalHeaderKey(k)) {
					delete(h, k)
				}
			}
		default:
			delete(h, o.remove)
		}
	}
}

type filter struct {
	name string
	m    *mutations
}

func (f *filter) Wrap(next httpfilter.Handler) httpfilter.Handler {
	return httpfilter.HandlerFunc(func(req *httpfilter.Request) error {
		m := f.m
		if o, ok := req.Override(f.name).(*mutations); ok {
			m = o
		}
		if len(m.request)+len(m.response) == 0 {
			return next.Serve(req)
		}
		v := &route.Vars{Request: req.R, RemoteAddr: req.R.RemoteAddr}
		if a, ok := req.R.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			v.LocalAddr = a.String()
		}
		apply(req.R.Header, m.request, v)
		if len(m.response) > 0 {
			prev := req.OnResponse
			req.OnResponse = func(h http.Header) {
				if prev != nil {
					prev(h)
				}
				apply(h, m.response, v)
			}
		}
		return next.Serve(req)
	})
}
