// Command msgbench measures what the Trellis protocol proxy costs a
// messaging client (issue 7): throughput and latency with the client
// talking to the broker directly, against the same client going through a
// real in-process Trellis proxy whose listener runs the broker's protocol
// filter before tcp_proxy.
//
//   - NATS: a real embedded nats-server, the nats.go client, and a listener
//     with the Trellis NATS filter (trellis.filters.network.nats.v1.Nats).
//     Publish throughput (asynchronous publishes, then one Flush) and
//     request/reply latency (the responder always connected directly).
//   - Kafka: kfake (franz-go's in-process cluster speaking the real wire
//     protocol; no Kafka server can be installed here), the kgo client, and
//     a listener with envoy.filters.network.kafka_broker whose broker
//     address rewrite keeps the client on the proxy. Produce throughput
//     (acks=all, kgo's default batching) and synchronous one-record
//     produce latency.
//
// Broker, proxy and client share one process and its cores, so the
// figures are relative (the ratio proxy/direct), not capacities.
//
//	go run ./bench/msgbench [-reps 7] [-nats-msgs 1000000] [-nats-reqs 2000] [-kafka-records 200000] [-kafka-sync 2000]
//
// It prints a Markdown table.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config bounds one run.
type config struct {
	natsMsgs     int // publishes per throughput run
	natsReqs     int // request/reply round trips per latency run
	kafkaRecords int // records per throughput run
	kafkaSync    int // synchronous produces per latency run
	payload      int // bytes per message / record value
	reps         int // repetitions of each measurement per path
}

func main() {
	var c config
	flag.IntVar(&c.natsMsgs, "nats-msgs", 1000000, "NATS publishes per throughput run")
	flag.IntVar(&c.natsReqs, "nats-reqs", 2000, "NATS request/reply round trips per latency run")
	flag.IntVar(&c.kafkaRecords, "kafka-records", 200000, "Kafka records per throughput run")
	flag.IntVar(&c.kafkaSync, "kafka-sync", 2000, "synchronous Kafka produces per latency run")
	flag.IntVar(&c.payload, "payload", 128, "bytes per message or record value")
	flag.IntVar(&c.reps, "reps", 7, "repetitions of each measurement per path, direct and proxy interleaved")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "msgbench:", err)
		os.Exit(1)
	}
}

// row is one line of the result table.
type row struct {
	scenario string
	metric   string
	direct   float64
	proxy    float64
	// runs holds each repetition's figure (throughput rows only), direct
	// and proxy, printed under the table to show the spread.
	runs [2][]float64
}

func run(ctx context.Context, c config, out io.Writer) error {
	for name, v := range map[string]int{"-nats-msgs": c.natsMsgs, "-nats-reqs": c.natsReqs,
		"-kafka-records": c.kafkaRecords, "-kafka-sync": c.kafkaSync, "-payload": c.payload, "-reps": c.reps} {
		if v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", name, v)
		}
	}
	start := time.Now()
	natsRows, err := benchNATS(ctx, c)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	kafkaRows, err := benchKafka(ctx, c)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	fmt.Fprintf(out, "%s, GOMAXPROCS=%d, %d-byte payloads, %d repetitions per path, %.1f s\n\n", runtime.Version(),
		runtime.GOMAXPROCS(0), c.payload, c.reps, time.Since(start).Seconds())
	fmt.Fprintln(out, "| scenario | metric | direct | through the proxy | proxy / direct | added latency |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	all := append(natsRows, kafkaRows...)
	for _, r := range all {
		added := "—"
		if strings.HasSuffix(r.metric, "µs") {
			added = fmt.Sprintf("%+.1f µs", r.proxy-r.direct)
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %.2f | %s |\n", r.scenario, r.metric, format(r.direct), format(r.proxy),
			r.proxy/r.direct, added)
	}
	fmt.Fprintln(out, "\nThroughput is the median of the repetitions; each repetition (in run order):")
	fmt.Fprintln(out)
	for _, r := range all {
		if len(r.runs[0]) == 0 {
			continue
		}
		fmt.Fprintf(out, "- %s, %s: direct %s; proxy %s\n", r.scenario, r.metric, list(r.runs[0]), list(r.runs[1]))
	}
	fmt.Fprintln(out, "\nLatency percentiles are over every request of every repetition. The proxy's filters counted every message and record sent through it"+
		" (trellis_nats_messages_total, trellis_kafka_topic_records_total).")
	return nil
}

func list(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = format(v)
	}
	return strings.Join(s, ", ")
}

// format prints rates as integers and latencies (below 1000) with two
// decimals.
func format(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// interleave runs measure for path 0 (direct) and path 1 (proxy) reps
// times each, alternating which goes first (0 1, 1 0, 0 1, ...) so that
// neither always runs on a warmer or colder process.
func interleave(reps int, measure func(path int) error) error {
	for r := range reps {
		for _, i := range [][2]int{{0, 1}, {1, 0}}[r%2] {
			if err := measure(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// rows makes the throughput row (the median over the repetitions) and the
// latency rows (p50 and p99 over every sample of every repetition).
func rows(rateScenario, rateUnit, latScenario string, rates [2][]float64, lat [2][]time.Duration) []row {
	var p50, p99 [2]float64
	for i := range lat {
		p50[i], p99[i] = percentiles(lat[i])
	}
	return []row{
		{rateScenario, rateUnit, median(rates[0]), median(rates[1]), rates},
		{latScenario, "p50 µs", p50[0], p50[1], [2][]float64{}},
		{latScenario, "p99 µs", p99[0], p99[1], [2][]float64{}},
	}
}

// median of vs (the mean of the middle two for an even count).
func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentiles returns p50 and p99 of ds in microseconds (nearest rank).
func percentiles(ds []time.Duration) (p50, p99 float64) {
	slices.Sort(ds)
	at := func(q int) float64 {
		i := (len(ds)*q+99)/100 - 1
		i = max(0, min(i, len(ds)-1))
		return float64(ds[i].Nanoseconds()) / 1e3
	}
	return at(50), at(99)
}

// scrapeSum sums the samples of metric in the proxy's /stats/prometheus
// whose label set contains label (e.g. `direction="publish"`).
func scrapeSum(ctx context.Context, admin, metric, label string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/stats/prometheus", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /stats/prometheus: %s", resp.Status)
	}
	var sum float64
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, metric+"{") || !strings.Contains(line, label) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", metric, line, err)
		}
		sum += v
	}
	return sum, nil
}

// checkCount fails unless the proxy's filter counted exactly want.
func checkCount(ctx context.Context, admin, metric, label string, want int) error {
	got, err := scrapeSum(ctx, admin, metric, label)
	if err != nil {
		return err
	}
	if got != float64(want) {
		return fmt.Errorf("the proxy counted %s{%s} = %.0f, want %d: traffic did not go through the filter as expected", metric, label, got, want)
	}
	return nil
}

// randomBytes returns n random bytes: payloads that do not compress.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return b
}
