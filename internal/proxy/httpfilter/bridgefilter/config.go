package bridgefilter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellis-mesh/trellis/internal/bridge"
)

// TypeURL is the type_url, inside an xds.type.v3.TypedStruct, that selects
// this filter.
const TypeURL = "type.googleapis.com/trellis.filters.http.bridge.v1.Bridge"

type wireBroker struct {
	Name         string   `json:"name"`
	Type         string   `json:"type"`
	Addresses    []string `json:"addresses"`
	JetStream    bool     `json:"jet_stream"`
	UsernameFile string   `json:"username_file"`
	PasswordFile string   `json:"password_file"`
	TLS          *struct {
		CAFile     string `json:"ca_file"`
		CertFile   string `json:"cert_file"`
		KeyFile    string `json:"key_file"`
		ServerName string `json:"server_name"`
	} `json:"tls"`
}

type wireSubscription struct {
	Name            string `json:"name"`
	Broker          string `json:"broker"`
	Topic           string `json:"topic"`
	ConsumerGroup   string `json:"consumer_group"`
	URL             string `json:"url"`
	Concurrency     int    `json:"concurrency"`
	MaxDeliveries   int    `json:"max_deliveries"`
	BackoffBase     string `json:"backoff_base"`
	BackoffMax      string `json:"backoff_max"`
	DeadLetter      string `json:"dead_letter"`
	DeliveryTimeout string `json:"delivery_timeout"`
}

// Parse validates a TypedStruct as the bridge configuration. Errors name
// the field below "value"; unknown fields are rejected.
func Parse(ts *xdstypev3.TypedStruct) (bridge.Config, error) {
	if ts.GetTypeUrl() != TypeURL {
		return bridge.Config{}, fmt.Errorf("type_url: %q is not %q", ts.GetTypeUrl(), TypeURL)
	}
	js, err := protojson.Marshal(ts.GetValue())
	if err != nil {
		return bridge.Config{}, fmt.Errorf("value: %w", err)
	}
	var w struct {
		Source        string             `json:"source"`
		Brokers       []wireBroker       `json:"brokers"`
		Subscriptions []wireSubscription `json:"subscriptions"`
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return bridge.Config{}, fmt.Errorf("value: %w", err)
	}
	cfg := bridge.Config{Source: w.Source}
	for _, b := range w.Brokers {
		bc := bridge.Broker{Name: b.Name, Type: bridge.BrokerType(b.Type), Addresses: b.Addresses, JetStream: b.JetStream,
			UsernameFile: b.UsernameFile, PasswordFile: b.PasswordFile}
		if b.TLS != nil {
			bc.TLS = &bridge.TLS{CAFile: b.TLS.CAFile, CertFile: b.TLS.CertFile, KeyFile: b.TLS.KeyFile, ServerName: b.TLS.ServerName}
		}
		cfg.Brokers = append(cfg.Brokers, bc)
	}
	var errs []error
	for i, s := range w.Subscriptions {
		dur := func(field, v string) time.Duration {
			if v == "" {
				return 0
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("value.subscriptions[%d].%s: %q is not a positive duration", i, field, v))
			}
			return d
		}
		cfg.Subscriptions = append(cfg.Subscriptions, bridge.Subscription{
			Name: s.Name, Broker: s.Broker, Topic: s.Topic, ConsumerGroup: s.ConsumerGroup, URL: s.URL,
			Concurrency: s.Concurrency, MaxDeliveries: s.MaxDeliveries, DeadLetter: s.DeadLetter,
			BackoffBase: dur("backoff_base", s.BackoffBase), BackoffMax: dur("backoff_max", s.BackoffMax),
			DeliveryTimeout: dur("delivery_timeout", s.DeliveryTimeout),
		})
	}
	if len(errs) > 0 {
		return bridge.Config{}, errs[0]
	}
	if err := cfg.Validate(); err != nil {
		return bridge.Config{}, fmt.Errorf("value.%w", err)
	}
	return cfg, nil
}
