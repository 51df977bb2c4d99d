// Package ads is the proxy's xDS client: one Aggregated Discovery Service
// stream (state of the world) to the control plane, whose Listener,
// RouteConfiguration, Cluster and ClusterLoadAssignment resources it turns
// into an Envoy v3 Bootstrap for the proxy.
//
// Data flow: Client.Run subscribes to every Listener and Cluster (wildcard),
// then to the RouteConfigurations the listeners' HTTP connection managers
// name in rds and to the ClusterLoadAssignments of EDS clusters, following
// the LDS and CDS updates. Each response is decoded and checked on its own
// (the same decode.Validate allowlist as a bootstrap file, errors naming the
// resource and the field). Once every referenced RouteConfiguration and
// ClusterLoadAssignment is present (Envoy's warming), Assemble inlines them
// (rds becomes route_config, an EDS cluster becomes STATIC with a
// load_assignment) beside the local bootstrap's admin, node and static
// resources, and the proxy applies the result all or nothing. Success ACKs
// every response that took part; failure NACKs them with the error text
// and the proxy keeps serving its last good configuration.
//
// Secrets (SDS): the TLS contexts' SdsSecretConfigs with an ads
// sds_config are subscribed to by name on the same stream, made name-only,
// and their Secrets put into static_resources.secrets; Secrets are put in
// use on arrival (the served configuration re-applied when one it names
// changes) and ACKed then. IdentitySecret ("trellis-identity") is the
// proxy's own certificate, handed over with SetIdentity (from the
// certificate rotator) and never requested; a configuration naming a
// secret that is not there yet is held whole, the previous one serving.
//
// Static stability: when the stream fails the proxy keeps serving; the
// client reconnects with exponential back-off and full jitter, re-sending
// its subscriptions with the last ACKed versions. With a cache file the
// last good resources survive a restart and are applied before the control
// plane answers.
//
// Concurrency: a Client's stream is handled by one goroutine; responses are
// processed serially, in order. The Applier is called from that goroutine
// only. SetIdentity may be called from any goroutine.
package ads
