package decode

import (
	"sort"

	"google.golang.org/protobuf/reflect/protoreflect"

	// The packages below register the Envoy types the proxy implements, so
	// that Any fields naming them decode. Only these are linked into the
	// proxy (see DESIGN.md on the sidecar's footprint).
	_ "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/network/kafka_broker/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// supported is the proxy's documented subset of Envoy's v3 API: for each
// message, the fields it implements with Envoy's semantics. A message absent
// from the table is not supported at all. docs/proxy-config.md is generated
// from this table (see TestDocsInSync).
var supported = map[protoreflect.FullName]fieldSet{
	// Bootstrap.
	"envoy.config.bootstrap.v3.Bootstrap":                 set("node", "admin", "static_resources", "stats_sinks", "stats_flush_interval"),
	"envoy.config.metrics.v3.StatsSink":                   set("name", "typed_config"),
	"envoy.config.metrics.v3.MetricsServiceConfig":        set("grpc_service", "transport_api_version"),
	"envoy.config.bootstrap.v3.Bootstrap.StaticResources": set("listeners", "clusters", "secrets"),
	"envoy.config.bootstrap.v3.Admin":                     set("address"),
	"envoy.config.core.v3.Node":                           set("id", "cluster", "metadata", "locality"),
	"envoy.config.core.v3.Locality":                       set("region", "zone", "sub_zone"),
	"envoy.config.core.v3.Address":                        set("socket_address"),
	"envoy.config.core.v3.SocketAddress":                  set("address", "port_value"),
	"envoy.config.core.v3.DataSource":                     set("filename", "inline_bytes", "inline_string", "environment_variable"),
	"envoy.config.core.v3.TransportSocket":                set("name", "typed_config"),

	// Listeners.
	"envoy.config.listener.v3.Listener":                                  set("name", "address", "filter_chains", "default_filter_chain", "listener_filters", "listener_filters_timeout", "stat_prefix"),
	"envoy.config.listener.v3.FilterChain":                               set("name", "filter_chain_match", "filters", "transport_socket"),
	"envoy.config.listener.v3.FilterChainMatch":                          set("destination_port", "server_names", "transport_protocol", "application_protocols"),
	"envoy.config.listener.v3.Filter":                                    set("name", "typed_config"),
	"envoy.config.listener.v3.ListenerFilter":                            set("name", "typed_config"),
	"envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector":    set(),
	"envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit": set("stat_prefix", "token_bucket"),
	"envoy.type.v3.TokenBucket":                                          set("max_tokens", "tokens_per_fill", "fill_interval"),
	"envoy.extensions.filters.listener.http_inspector.v3.HttpInspector":  set(),

	// Kafka (contrib). Trellis' kafka_policy is an xds.type.v3.TypedStruct.
	"envoy.extensions.filters.network.kafka_broker.v3.KafkaBroker": set("stat_prefix", "force_response_rewrite",
		"id_based_broker_address_rewrite_spec", "api_keys_allowed", "api_keys_denied"),
	"envoy.extensions.filters.network.kafka_broker.v3.IdBasedBrokerRewriteSpec": set("rules"),
	"envoy.extensions.filters.network.kafka_broker.v3.IdBasedBrokerRewriteRule": set("id", "host", "port"),

	// TLS.
	"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext": set("common_tls_context", "require_client_certificate"),
	"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":   set("common_tls_context", "sni", "max_session_keys"),
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext": set("tls_params", "tls_certificates",
		"tls_certificate_sds_secret_configs", "validation_context", "validation_context_sds_secret_config",
		"combined_validation_context", "alpn_protocols"),
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext": set(
		"default_validation_context", "validation_context_sds_secret_config"),
	"envoy.extensions.transport_sockets.tls.v3.TlsParameters": set("tls_minimum_protocol_version",
		"tls_maximum_protocol_version", "cipher_suites", "ecdh_curves"),
	"envoy.extensions.transport_sockets.tls.v3.TlsCertificate":  set("certificate_chain", "private_key"),
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig": set("name"),
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext": set("trusted_ca",
		"match_typed_subject_alt_names", "match_subject_alt_names"),
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher": set("san_type", "matcher"),
	"envoy.extensions.transport_sockets.tls.v3.Secret":                set("name", "tls_certificate", "validation_context"),

	// Matchers.
	"envoy.type.matcher.v3.StringMatcher":           set("exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"),
	"envoy.type.matcher.v3.RegexMatcher":            set("google_re2", "regex"),
	"envoy.type.matcher.v3.RegexMatcher.GoogleRE2":  set(),
	"envoy.type.matcher.v3.RegexMatchAndSubstitute": set("pattern", "substitution"),

	// HTTP connection manager.
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": set("codec_type",
		"stat_prefix", "route_config", "http_filters", "access_log", "use_remote_address", "xff_num_trusted_hops",
		"skip_xff_append", "generate_request_id", "preserve_external_request_id", "request_timeout",
		"request_headers_timeout", "stream_idle_timeout", "common_http_protocol_options", "http2_protocol_options",
		"server_name", "server_header_transformation", "via", "upgrade_configs", "strip_any_host_port",
		"strip_matching_host_port", "normalize_path", "merge_slashes", "path_with_escaped_slashes_action", "tracing"),
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing": set("provider",
		"client_sampling", "random_sampling", "overall_sampling", "custom_tags", "spawn_upstream_span", "max_path_tag_length"),
	"envoy.config.trace.v3.Tracing.Http":          set("name", "typed_config"),
	"envoy.config.trace.v3.OpenTelemetryConfig":   set("grpc_service", "service_name"),
	"envoy.config.core.v3.GrpcService":            set("envoy_grpc"),
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":  set("cluster_name"),
	"envoy.type.tracing.v3.CustomTag":             set("tag", "literal", "environment", "request_header"),
	"envoy.type.tracing.v3.CustomTag.Literal":     set("value"),
	"envoy.type.tracing.v3.CustomTag.Environment": set("name", "default_value"),
	"envoy.type.tracing.v3.CustomTag.Header":      set("name", "default_value"),
	"envoy.config.route.v3.Tracing":               set("client_sampling", "random_sampling", "overall_sampling", "custom_tags"),
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig": set("upgrade_type", "enabled"),
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":                          set("name", "typed_config"),
	"envoy.extensions.filters.http.router.v3.Router":                                                  set(),
	"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit": set("stat_prefix", "token_bucket",
		"filter_enabled", "filter_enforced", "response_headers_to_add", "status", "descriptors", "stage",
		"enable_x_ratelimit_headers", "vh_rate_limits", "always_consume_default_token_bucket", "rate_limits",
		"local_rate_limit_per_downstream_connection"),
	"envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor":           set("entries", "token_bucket"),
	"envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry":          set("key", "value"),
	"envoy.type.v3.HttpStatus":                                                set("code"),
	"envoy.extensions.filters.http.header_mutation.v3.HeaderMutation":         set("mutations"),
	"envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute": set("mutations"),
	"envoy.extensions.filters.http.header_mutation.v3.Mutations":              set("request_mutations", "response_mutations"),
	"envoy.config.common.mutation_rules.v3.HeaderMutation":                    set("remove", "append", "remove_on_match"),
	"envoy.config.common.mutation_rules.v3.HeaderMutation.RemoveOnMatch":      set("key_matcher"),
	"envoy.extensions.filters.http.cors.v3.Cors":                              set(),
	"envoy.extensions.filters.http.cors.v3.CorsPolicy": set("allow_origin_string_match", "allow_methods",
		"allow_headers", "expose_headers", "max_age", "allow_credentials", "filter_enabled"),
	"envoy.extensions.filters.http.fault.v3.HTTPFault":                set("delay", "abort", "headers", "max_active_faults"),
	"envoy.extensions.filters.http.fault.v3.FaultAbort":               set("http_status", "grpc_status", "header_abort", "percentage"),
	"envoy.extensions.filters.http.fault.v3.FaultAbort.HeaderAbort":   set(),
	"envoy.extensions.filters.common.fault.v3.FaultDelay":             set("fixed_delay", "header_delay", "percentage"),
	"envoy.extensions.filters.common.fault.v3.FaultDelay.HeaderDelay": set(),
	"envoy.config.core.v3.HttpProtocolOptions":                        set("idle_timeout"),
	"envoy.config.core.v3.Http1ProtocolOptions":                       set(),
	"envoy.config.core.v3.Http2ProtocolOptions": set("max_concurrent_streams", "initial_stream_window_size",
		"initial_connection_window_size"),

	// RBAC (HTTP and network filters, shared policies).
	"envoy.extensions.filters.http.rbac.v3.RBAC":         set("rules", "rules_stat_prefix", "shadow_rules", "shadow_rules_stat_prefix"),
	"envoy.extensions.filters.http.rbac.v3.RBACPerRoute": set("rbac"),
	"envoy.extensions.filters.network.rbac.v3.RBAC": set("rules", "shadow_rules", "shadow_rules_stat_prefix",
		"stat_prefix", "enforcement_type"),
	"envoy.config.rbac.v3.RBAC":   set("action", "policies"),
	"envoy.config.rbac.v3.Policy": set("permissions", "principals"),
	"envoy.config.rbac.v3.Permission": set("and_rules", "or_rules", "any", "header", "url_path", "destination_ip",
		"destination_port", "destination_port_range", "not_rule", "requested_server_name"),
	"envoy.config.rbac.v3.Permission.Set": set("rules"),
	"envoy.config.rbac.v3.Principal": set("and_ids", "or_ids", "any", "authenticated", "source_ip", "direct_remote_ip",
		"remote_ip", "header", "url_path", "not_id"),
	"envoy.config.rbac.v3.Principal.Set":           set("ids"),
	"envoy.config.rbac.v3.Principal.Authenticated": set("principal_name"),
	"envoy.type.matcher.v3.PathMatcher":            set("path"),
	"envoy.config.core.v3.CidrRange":               set("address_prefix", "prefix_len"),
	"envoy.type.v3.Int32Range":                     set("start", "end"),

	// Access logs.
	"envoy.config.accesslog.v3.AccessLog":                                                  set("name", "typed_config"),
	"envoy.extensions.access_loggers.file.v3.FileAccessLog":                                set("path"),
	"envoy.extensions.access_loggers.stream.v3.StdoutAccessLog":                            set(),
	"envoy.extensions.access_loggers.stream.v3.StderrAccessLog":                            set(),
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":                               set("stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "access_log"),
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster":               set("clusters"),
	"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight": set("name", "weight"),

	// Routes.
	"envoy.config.route.v3.RouteConfiguration": set("name", "virtual_hosts", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"),
	"envoy.config.route.v3.VirtualHost": set("name", "domains", "routes", "retry_policy", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove", "rate_limits"),
	"envoy.config.route.v3.RateLimit": set("stage", "actions"),
	"envoy.config.route.v3.RateLimit.Action": set("destination_cluster", "request_headers", "remote_address",
		"generic_key", "header_value_match", "masked_remote_address"),
	"envoy.config.route.v3.RateLimit.Action.DestinationCluster":  set(),
	"envoy.config.route.v3.RateLimit.Action.RequestHeaders":      set("header_name", "descriptor_key", "skip_if_absent"),
	"envoy.config.route.v3.RateLimit.Action.RemoteAddress":       set(),
	"envoy.config.route.v3.RateLimit.Action.MaskedRemoteAddress": set("v4_prefix_mask_len", "v6_prefix_mask_len"),
	"envoy.config.route.v3.RateLimit.Action.GenericKey":          set("descriptor_value", "descriptor_key"),
	"envoy.config.route.v3.RateLimit.Action.HeaderValueMatch":    set("descriptor_key", "descriptor_value", "expect_match", "headers"),
	"envoy.config.route.v3.Route": set("name", "match", "route", "redirect", "direct_response", "typed_per_filter_config", "tracing",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"),
	"envoy.config.route.v3.RouteMatch": set("prefix", "path", "safe_regex", "path_separated_prefix",
		"case_sensitive", "headers", "query_parameters", "grpc"),
	"envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions": set(),
	"envoy.config.route.v3.HeaderMatcher": set("name", "exact_match", "safe_regex_match", "present_match",
		"prefix_match", "suffix_match", "contains_match", "string_match", "invert_match"),
	"envoy.config.route.v3.QueryParameterMatcher": set("name", "string_match", "present_match"),
	"envoy.config.route.v3.RouteAction": set("cluster", "weighted_clusters", "cluster_header", "prefix_rewrite",
		"regex_rewrite", "host_rewrite_literal", "auto_host_rewrite", "timeout", "hash_policy", "upgrade_configs", "retry_policy", "idle_timeout", "max_stream_duration", "request_mirror_policies", "rate_limits"),
	"envoy.config.route.v3.RouteAction.RequestMirrorPolicy": set("cluster", "runtime_fraction", "disable_shadow_host_suffix_append"),
	"envoy.config.core.v3.RuntimeFractionalPercent":         set("default_value", "runtime_key"),
	"envoy.type.v3.FractionalPercent":                       set("numerator", "denominator"),
	"envoy.config.route.v3.RouteAction.MaxStreamDuration":   set("max_stream_duration", "grpc_timeout_header_max", "grpc_timeout_header_offset"),
	"envoy.config.route.v3.RetryPolicy": set("retry_on", "num_retries", "per_try_timeout",
		"retry_back_off", "retriable_status_codes", "retriable_headers", "retry_host_predicate",
		"host_selection_retry_max_attempts", "rate_limited_retry_back_off"),
	"envoy.config.route.v3.RetryPolicy.RetryBackOff":                       set("base_interval", "max_interval"),
	"envoy.config.route.v3.RetryPolicy.RetryHostPredicate":                 set("name", "typed_config"),
	"envoy.config.route.v3.RetryPolicy.RateLimitedRetryBackOff":            set("reset_headers", "max_interval"),
	"envoy.config.route.v3.RetryPolicy.ResetHeader":                        set("name", "format"),
	"envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate": set(),
	"envoy.config.route.v3.RouteAction.UpgradeConfig":                      set("upgrade_type", "enabled"),
	"envoy.config.route.v3.WeightedCluster":                                set("clusters", "total_weight"),
	"envoy.config.route.v3.WeightedCluster.ClusterWeight":                  set("name", "weight"),
	"envoy.config.route.v3.RouteAction.HashPolicy":                         set("header", "cookie", "connection_properties", "query_parameter", "terminal"),
	"envoy.config.route.v3.RouteAction.HashPolicy.Header":                  set("header_name"),
	"envoy.config.route.v3.RouteAction.HashPolicy.Cookie":                  set("name"),
	"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties":    set("source_ip"),
	"envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter":          set("name"),
	"envoy.config.route.v3.RedirectAction": set("https_redirect", "scheme_redirect", "host_redirect",
		"port_redirect", "path_redirect", "prefix_rewrite", "response_code", "strip_query"),
	"envoy.config.route.v3.DirectResponseAction": set("status", "body"),
	"envoy.config.core.v3.HeaderValueOption":     set("header", "append_action", "keep_empty_value", "append"),
	"envoy.config.core.v3.HeaderValue":           set("key", "value", "raw_value"),

	// Clusters.
	"envoy.config.cluster.v3.Cluster": set("name", "type", "connect_timeout", "lb_policy", "load_assignment",
		"transport_socket", "typed_extension_protocol_options", "per_connection_buffer_limit_bytes",
		"dns_refresh_rate", "dns_lookup_family", "ring_hash_lb_config", "maglev_lb_config", "least_request_lb_config",
		"common_lb_config", "circuit_breakers", "outlier_detection", "health_checks", "load_balancing_policy"),
	"envoy.config.cluster.v3.LoadBalancingPolicy":        set("policies"),
	"envoy.config.cluster.v3.LoadBalancingPolicy.Policy": set("typed_extension_config"),
	"envoy.config.core.v3.TypedExtensionConfig":          set("name", "typed_config"),
	"xds.type.v3.TypedStruct":                            set("type_url", "value"),
	"envoy.config.core.v3.HealthCheck": set("timeout", "interval", "initial_jitter", "interval_jitter",
		"interval_jitter_percent", "unhealthy_threshold", "healthy_threshold", "reuse_connection", "no_traffic_interval",
		"no_traffic_healthy_interval", "unhealthy_interval", "unhealthy_edge_interval", "healthy_edge_interval",
		"always_log_health_check_failures", "always_log_health_check_success", "http_health_check",
		"tcp_health_check", "grpc_health_check"),
	"envoy.config.core.v3.HealthCheck.HttpHealthCheck": set("host", "path", "method", "expected_statuses",
		"retriable_statuses", "request_headers_to_add", "request_headers_to_remove", "codec_client_type", "use_alpn_protocol"),
	"envoy.config.core.v3.HealthCheck.TcpHealthCheck":  set("send", "receive"),
	"envoy.config.core.v3.HealthCheck.GrpcHealthCheck": set("service_name", "authority", "initial_metadata"),
	"envoy.config.core.v3.HealthCheck.Payload":         set("text", "binary"),
	"envoy.type.v3.Int64Range":                         set("start", "end"),
	"envoy.config.cluster.v3.OutlierDetection": set("consecutive_5xx", "interval", "base_ejection_time",
		"max_ejection_percent", "enforcing_consecutive_5xx", "enforcing_success_rate", "success_rate_minimum_hosts",
		"success_rate_request_volume", "success_rate_stdev_factor", "consecutive_gateway_failure",
		"enforcing_consecutive_gateway_failure", "split_external_local_origin_errors", "consecutive_local_origin_failure",
		"enforcing_consecutive_local_origin_failure", "enforcing_local_origin_success_rate", "failure_percentage_threshold",
		"enforcing_failure_percentage", "enforcing_failure_percentage_local_origin", "failure_percentage_minimum_hosts",
		"failure_percentage_request_volume", "max_ejection_time", "max_ejection_time_jitter",
		"successful_active_health_check_uneject_host", "always_eject_one_host", "detect_degraded_hosts"),
	"envoy.config.cluster.v3.CircuitBreakers": set("thresholds"),
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds": set("priority", "max_connections", "max_pending_requests",
		"max_requests", "max_retries", "retry_budget"),
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget": set("budget_percent", "min_retry_concurrency"),
	"envoy.config.cluster.v3.Cluster.CommonLbConfig":                 set("healthy_panic_threshold", "locality_weighted_lb_config"),
	"envoy.type.v3.Percent":                                          set("value"),
	"envoy.config.endpoint.v3.ClusterLoadAssignment.Policy":          set("overprovisioning_factor"),
	"envoy.config.cluster.v3.Cluster.RingHashLbConfig":               set("minimum_ring_size", "maximum_ring_size", "hash_function"),
	"envoy.config.cluster.v3.Cluster.MaglevLbConfig":                 set("table_size"),
	"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig":           set("choice_count", "active_request_bias"),
	"envoy.config.core.v3.RuntimeDouble":                             set("default_value"),
	"envoy.config.endpoint.v3.ClusterLoadAssignment":                 set("cluster_name", "endpoints", "policy"),
	"envoy.config.endpoint.v3.LocalityLbEndpoints":                   set("locality", "lb_endpoints", "load_balancing_weight", "priority"),
	"envoy.config.endpoint.v3.LbEndpoint":                            set("endpoint", "load_balancing_weight", "health_status"),
	"envoy.config.endpoint.v3.Endpoint":                              set("address", "hostname"),
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": set("explicit_http_config", "auto_config",
		"use_downstream_protocol_config", "common_http_protocol_options"),
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig":      set("http_protocol_options", "http2_protocol_options"),
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig":          set("http_protocol_options", "http2_protocol_options"),
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig": set("http_protocol_options", "http2_protocol_options"),
	"envoy.config.cluster.v3.Cluster.CommonLbConfig.LocalityWeightedLbConfig":        set(),
}

// Supported returns the supported-field table as message name → sorted
// field names, for documentation.
func Supported() map[string][]string {
	out := make(map[string][]string, len(supported))
	for msg, fields := range supported {
		names := make([]string, 0, len(fields))
		for f := range fields {
			names = append(names, f)
		}
		sort.Strings(names)
		out[string(msg)] = names
	}
	return out
}
