package translator

import (
	"cmp"
	"slices"
	"strconv"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellis-mesh/trellis/api/v1alpha1"
)

// The HTTP bridge (docs/bridge.md). A Dataplane with spec.bridge gets a
// listener on 127.0.0.1:<spec.bridge.port> whose connection manager runs
// the trellis bridge HTTP filter: it answers every request itself
// (publishing), and its configuration carries the mesh's Brokers and the
// Subscriptions targeting a Service that selects the Dataplane, with the
// application URL to deliver to. The router after it is never reached
// (the HCM requires one last); its route configuration answers 404.
const (
	bridgeFilterName = "trellis.filters.http.bridge"
	bridgeTypeURL    = "type.googleapis.com/trellis.filters.http.bridge.v1.Bridge"
)

// bridgeObjects are one mesh's Brokers and Subscriptions.
type bridgeObjects struct {
	brokers       []*v1alpha1.Broker
	subscriptions []*v1alpha1.Subscription
}

func (bo *bridgeObjects) add(o v1alpha1.Object) {
	switch o := o.(type) {
	case *v1alpha1.Broker:
		bo.brokers = append(bo.brokers, o)
	case *v1alpha1.Subscription:
		bo.subscriptions = append(bo.subscriptions, o)
	}
}

// bridge adds the bridge listener on port.
func (b *builder) bridge(port int32) {
	b.res.bridge = true
	dp := b.p.Dataplane
	ns := v1alpha1.NamespaceOf(dp)
	bo := &b.m.bridge

	// Brokers by name; of two with one name, the Dataplane's namespace's.
	brokers := map[string]*v1alpha1.Broker{}
	for _, br := range bo.brokers {
		prev := brokers[br.Name]
		if prev == nil || (v1alpha1.NamespaceOf(br) == ns && v1alpha1.NamespaceOf(prev) != ns) ||
			(v1alpha1.NamespaceOf(prev) != ns && v1alpha1.NamespaceOf(br) < v1alpha1.NamespaceOf(prev)) {
			brokers[br.Name] = br
		}
	}
	var brokerVals []*structpb.Value
	for _, name := range sortedKeys(brokers) {
		brokerVals = append(brokerVals, brokerValue(brokers[name]))
	}

	var subVals []*structpb.Value
	subs := slices.Clone(bo.subscriptions)
	slices.SortFunc(subs, func(x, y *v1alpha1.Subscription) int { return compareKeys(keyOf(x), keyOf(y)) })
	for _, s := range subs {
		sns := v1alpha1.NamespaceOf(s)
		target := ServiceKey{sns, s.Spec.TargetRef.Name}
		b.res.Services[target] = true
		svc := b.m.services[target]
		if svc == nil || !v1alpha1.Selects(svc.spec.Selector, dp.Labels) {
			continue
		}
		var broker *v1alpha1.Broker
		for _, br := range bo.brokers {
			if br.Name == s.Spec.BrokerRef.Name && v1alpha1.NamespaceOf(br) == sns {
				broker = br
			}
		}
		in, ok := bridgeInbound(dp, s.Spec.Port)
		if broker == nil || !ok || brokers[broker.Name] != broker {
			// Unresolved (status says so) or shadowed by a broker of the
			// same name in the Dataplane's namespace.
			continue
		}
		subVals = append(subVals, subscriptionValue(s, in))
	}

	source := "spiffe://" + b.trustDomain() + "/" + b.p.Mesh + "/" + v1alpha1.IdentityService(dp)
	ts := &xdstypev3.TypedStruct{TypeUrl: bridgeTypeURL, Value: &structpb.Struct{Fields: map[string]*structpb.Value{
		"source":        structpb.NewStringValue(source),
		"brokers":       structpb.NewListValue(&structpb.ListValue{Values: brokerVals}),
		"subscriptions": structpb.NewListValue(&structpb.ListValue{Values: subVals}),
	}}}
	name := "bridge:" + localhost + ":" + strconv.Itoa(int(port))
	h := b.hcm("bridge", []*hcmv3.HttpFilter{{Name: bridgeFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(ts)}}})
	h.Tracing = nil
	h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
		Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: "bridge", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Name:   "publish",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
		}}}},
	}}
	b.res.Listeners = append(b.res.Listeners, listener(name, localhost, port, &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}}))
}

func (b *builder) trustDomain() string {
	if b.m.sec != nil && b.m.sec.trustDomain != "" {
		return b.m.sec.trustDomain
	}
	return v1alpha1.TrustDomainOf(b.p.Mesh, nil)
}

// bridgeInbound finds the inbound delivering to: the one serving port
// (a Service port), or with port 0 the only inbound.
func bridgeInbound(dp *v1alpha1.Dataplane, port int32) (v1alpha1.Inbound, bool) {
	if port == 0 {
		if len(dp.Spec.Inbound) == 1 {
			return dp.Spec.Inbound[0], true
		}
		return v1alpha1.Inbound{}, false
	}
	for _, in := range dp.Spec.Inbound {
		if servicePortOf(in) == port {
			return in, true
		}
	}
	return v1alpha1.Inbound{}, false
}

func brokerValue(br *v1alpha1.Broker) *structpb.Value {
	var addrs []*structpb.Value
	for _, a := range br.Spec.Addresses {
		addrs = append(addrs, structpb.NewStringValue(a))
	}
	f := map[string]*structpb.Value{
		"name":      structpb.NewStringValue(br.Name),
		"type":      structpb.NewStringValue(string(br.Spec.Type)),
		"addresses": structpb.NewListValue(&structpb.ListValue{Values: addrs}),
	}
	if br.Spec.NATS != nil && br.Spec.NATS.JetStream {
		f["jet_stream"] = structpb.NewBoolValue(true)
	}
	if c := br.Spec.Credentials; c != nil {
		f["username_file"] = structpb.NewStringValue(c.UsernameFile)
		f["password_file"] = structpb.NewStringValue(c.PasswordFile)
	}
	if t := br.Spec.TLS; t != nil {
		tf := map[string]*structpb.Value{}
		for k, v := range map[string]string{"ca_file": t.CAFile, "cert_file": t.CertFile, "key_file": t.KeyFile, "server_name": t.ServerName} {
			if v != "" {
				tf[k] = structpb.NewStringValue(v)
			}
		}
		f["tls"] = structpb.NewStructValue(&structpb.Struct{Fields: tf})
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: f})
}

func subscriptionValue(s *v1alpha1.Subscription, in v1alpha1.Inbound) *structpb.Value {
	sp := &s.Spec
	addr := cmp.Or(in.AppAddress, v1alpha1.DefaultAppAddress)
	f := map[string]*structpb.Value{
		"name":           structpb.NewStringValue(v1alpha1.NamespaceOf(s) + "/" + s.Name),
		"broker":         structpb.NewStringValue(sp.BrokerRef.Name),
		"topic":          structpb.NewStringValue(sp.Topic),
		"consumer_group": structpb.NewStringValue(cmp.Or(sp.ConsumerGroup, s.Name)),
		"url":            structpb.NewStringValue("http://" + addr + ":" + strconv.Itoa(int(in.AppPort)) + cmp.Or(sp.Path, "/")),
	}
	num := func(k string, v int32) {
		if v != 0 {
			f[k] = structpb.NewNumberValue(float64(v))
		}
	}
	num("concurrency", sp.Concurrency)
	if r := sp.Retry; r != nil {
		num("max_deliveries", r.MaxDeliveries)
		if bo := r.Backoff; bo != nil {
			if bo.Base != nil {
				f["backoff_base"] = structpb.NewStringValue(bo.Base.Duration.String())
			}
			if bo.Max != nil {
				f["backoff_max"] = structpb.NewStringValue(bo.Max.Duration.String())
			}
		}
	}
	if sp.DeadLetter != nil {
		f["dead_letter"] = structpb.NewStringValue(sp.DeadLetter.Topic)
	}
	if sp.DeliveryTimeout != nil {
		f["delivery_timeout"] = structpb.NewStringValue(sp.DeliveryTimeout.Duration.String())
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: f})
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
