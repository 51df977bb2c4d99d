// Package telemetry is the control plane's golden-metrics aggregator: it
// receives the proxies' Prometheus metrics over Envoy's metrics service
// (envoy.service.metrics.v3.MetricsService/StreamMetrics, on the xDS
// port), turns the cumulative counters and histograms of each push into
// deltas, and keeps a rolling window of request rate, success rate,
// latency percentiles, TCP connections and bytes per service (server
// side), per route, per dataplane and per edge (source service →
// destination service, client side).
//
// Beside them, per mesh, broker and topic, it keeps the messaging
// numbers of the HTTP bridge and the Kafka and NATS filters (topics.go:
// rates of published, delivered, retried, dead-lettered, denied,
// produced and consumed, and the latest lag), answered by Topics.
//
// Data flow:
//
//	proxy ──StreamMetrics (MetricFamily protos every N s)──► Service
//	  └► Aggregator.Ingest: per node, cumulative → delta (resets handled)
//	       └► series ring buffers (one bucket per resolution interval)
//	            ◄── Aggregator.Stats / Edges (REST, trellis stat / edges)
//	            ◄── Collector (GET /metrics, for a real Prometheus)
//
// Memory is bounded: a series costs its ring (retention / resolution
// buckets of about 120 bytes: 90 buckets, about 11 KiB, by default) plus
// its cumulative totals (about 200 bytes) and the per-proxy gauges; the
// number of series is capped (Options.MaxSeries) and series without data
// for the retention period are dropped. A node's previous values cost a
// map entry per metric series it pushes.
//
// Concurrency: every method may be called from any goroutine. Ingest of
// one node is serialised by the node's lock; the series are guarded by
// the aggregator's lock, held once per push.
package telemetry
