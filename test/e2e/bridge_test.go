package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/internal/bridge/brokertest"
)

// The HTTP bridge proof (issue 7): an HTTP-only publisher and an HTTP-only
// subscriber, each behind a `trellis proxy` configured by `trellis
// control` from Broker and Subscription resources, exchange bridgeN
// messages over each of NATS (JetStream), RabbitMQ and Kafka (kfake).
// The subscriber answers 500 to every 20th message (always: they must end
// in the dead-letter destination, exactly those), 503 to the first
// attempt of every 10th (retried), and is slow now and then. Mid-way the
// broker stops and comes back (NATS: after 2 s, same store and port;
// RabbitMQ: SIGTERM and a new boot, ~5 s, same mnesia dir and port; kfake:
// after 2 s, same data directory and port); the publisher retries its 5xx
// answers, and nothing acknowledged to it is lost.
const bridgeN = 10000

// bridgeResources: the publisher's Dataplane has only spec.bridge (no
// inbound, no outbound), the subscriber's an inbound for deliveries.
func bridgeResources(natsURL, amqpURL, kafkaAddr string, pubPort, subPort, subBridge, appPort int) string {
	sub := func(name, broker, topic, dead string, conc int) string {
		return fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Subscription
metadata: {name: %s}
spec:
  brokerRef: {name: %s}
  topic: %s
  consumerGroup: %s
  targetRef: {name: subscriber}
  path: /events/%s
  concurrency: %d
  retry: {maxDeliveries: 3, backoff: {base: 5ms, max: 50ms}}
  deadLetter: {topic: %s}
  deliveryTimeout: 5s
---
apiVersion: trellis.dev/v1alpha1
kind: Subscription
metadata: {name: %s-dead}
spec:
  brokerRef: {name: %s}
  topic: %s
  targetRef: {name: subscriber}
  path: /dead/%s
  concurrency: 4
`, name, broker, topic, name, broker, conc, dead, name, broker, dead, broker)
	}
	return fmt.Sprintf(`apiVersion: trellis.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: publisher}
spec: {selector: {app: publisher}, ports: [{port: 80}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Service
metadata: {name: subscriber}
spec: {selector: {app: subscriber}, ports: [{port: 80}]}
---
apiVersion: trellis.dev/v1alpha1
kind: Broker
metadata: {name: nats}
spec: {type: nats, addresses: [%q], nats: {jetStream: true}}
---
apiVersion: trellis.dev/v1alpha1
kind: Broker
metadata: {name: rabbit}
spec: {type: amqp, addresses: [%q]}
---
apiVersion: trellis.dev/v1alpha1
kind: Broker
metadata: {name: kafka}
spec: {type: kafka, addresses: [%q]}
`, natsURL, amqpURL, kafkaAddr) +
		sub("orders-nats", "nats", "orders.nats", "orders.nats.dead", 16) +
		sub("orders-rabbit", "rabbit", "orders-rabbit", "orders-rabbit-dead", 16) +
		sub("orders-kafka", "kafka", "orders-kafka", "orders-kafka-dead", 16) +
		fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: publisher-1, labels: {app: publisher}}
spec:
  address: 127.0.0.1
  bridge: {port: %d}
---
apiVersion: trellis.dev/v1alpha1
kind: Dataplane
metadata: {name: subscriber-1, labels: {app: subscriber}}
spec:
  address: 127.0.0.1
  inbound: [{port: %d, servicePort: 80, appPort: %d}]
  bridge: {port: %d}
`, pubPort, subPort, appPort, subBridge)
}

// subscriberApp counts what the bridge delivers, per broker.
type subscriberApp struct {
	mu        sync.Mutex
	delivered map[string]map[string]int // broker → id → 2xx deliveries
	dead      map[string]map[string]int // broker → id → dead-letter deliveries
	attempts  map[string]int            // broker → POSTs to /events
	retried   map[string]int            // broker → POSTs with attempt > 1
}

func alwaysFails(i int) bool { return i%20 == 7 }
func failsOnce(i int) bool   { return i%10 == 3 }

func (a *subscriberApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, broker, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	id := r.Header.Get("Ce-Id")
	_, num, _ := strings.Cut(id, "/")
	i, err := strconv.Atoi(num)
	if err != nil {
		http.Error(w, "bad id "+id, http.StatusBadRequest)
		return
	}
	attempt, _ := strconv.Atoi(r.Header.Get("Trellis-Delivery-Attempt"))
	if kind == "events" && i%97 == 5 {
		// Slow at times.
		select {
		case <-time.After(150 * time.Millisecond):
		case <-r.Context().Done():
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if kind == "dead" {
		a.dead[broker][id]++
		return
	}
	a.attempts[broker]++
	if attempt > 1 {
		a.retried[broker]++
	}
	switch {
	case alwaysFails(i):
		w.WriteHeader(http.StatusInternalServerError)
	case failsOnce(i) && attempt == 1:
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		a.delivered[broker][id]++
	}
}

func TestBridge(t *testing.T) {
	rabbit := brokertest.StartRabbit(t)
	nats := brokertest.StartNATS(t, true)
	kafka := brokertest.StartKafka(t, 4)
	app := &subscriberApp{delivered: map[string]map[string]int{}, dead: map[string]map[string]int{}, attempts: map[string]int{}, retried: map[string]int{}}
	for _, b := range []string{"nats", "rabbit", "kafka"} {
		app.delivered[b], app.dead[b] = map[string]int{}, map[string]int{}
	}
	appSrv := httptest.NewServer(app)
	t.Cleanup(appSrv.Close)
	appPort := portOf(t, strings.TrimPrefix(appSrv.URL, "http://"))

	cp := startControl(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--name", "cp-1")
	dir := t.TempDir()
	ports := freePorts(t, 3)
	docs := strings.Split(bridgeResources(nats.URL, rabbit.URL, kafka.Addr, ports[0], ports[1], ports[2], appPort), "---\n")
	applyYAML(t, cp.cfg, dir, "bridge.yaml", strings.Join(docs, "---\n"))
	pubFile := writeFile(t, dir, "publisher-1.yaml", docs[len(docs)-2])
	subFile := writeFile(t, dir, "subscriber-1.yaml", docs[len(docs)-1])
	tokens := map[string]string{}
	for _, svc := range []string{"publisher", "subscriber"} {
		tok := strings.TrimSpace(mustCLI(t, cp.cfg, "token", "create", "--mesh", "default", "--service", svc))
		tokens[svc] = writeFile(t, dir, svc+".token", tok+"\n")
	}
	pub := startProxy(t, cp, pubFile, tokens["publisher"])
	sub := startProxy(t, cp, subFile, tokens["subscriber"])
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("publisher-1 stderr:\n%s\nsubscriber-1 stderr:\n%s", tail(pub.p.stderr()), tail(sub.p.stderr()))
		}
	})
	waitReady(t, "publisher-1", pub, 30*time.Second)
	waitReady(t, "subscriber-1", sub, 30*time.Second)
	pubURL := fmt.Sprintf("http://127.0.0.1:%d/publish/", ports[0])
	waitListening(t, "the bridge ports", fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[2]))

	for _, tc := range []struct {
		broker, topic string
		restart       func(*testing.T)
	}{
		{"nats", "orders.nats", func(t *testing.T) { nats.Stop(); outage(); nats.Start(t) }},
		{"rabbit", "orders-rabbit", func(t *testing.T) { rabbit.Restart(t) }}, // down ~5 s: its shutdown and boot
		{"kafka", "orders-kafka", func(t *testing.T) { kafka.Stop(); outage(); kafka.Start(t, 4) }},
	} {
		t.Run(tc.broker, func(t *testing.T) {
			start := time.Now()
			var acked, retries atomic.Int64
			next := make(chan int)
			var wg sync.WaitGroup
			var failed atomic.Value
			for range 16 {
				wg.Go(func() {
					c := &http.Client{Timeout: 15 * time.Second}
					for i := range next {
						if err := publishUntilAcked(c, pubURL+tc.broker+"/"+tc.topic, tc.broker, i, &retries); err != nil {
							failed.Store(err)
						}
						acked.Add(1)
					}
				})
			}
			go func() {
				for i := range bridgeN {
					next <- i
				}
				close(next)
			}()
			poll(t, 60*time.Second, "half the messages acknowledged", func() (bool, string) {
				return acked.Load() >= bridgeN/2, fmt.Sprint(acked.Load())
			})
			restartAt := time.Now()
			tc.restart(t)
			t.Logf("%s restarted in %v", tc.broker, time.Since(restartAt).Round(time.Millisecond))
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				t.Fatal(err)
			}
			published := time.Now()
			poll(t, 120*time.Second, "every message delivered or dead-lettered", func() (bool, string) {
				app.mu.Lock()
				defer app.mu.Unlock()
				d, dl := len(app.delivered[tc.broker]), len(app.dead[tc.broker])
				return d == bridgeN-bridgeN/20 && dl == bridgeN/20, fmt.Sprintf("delivered %d, dead-lettered %d", d, dl)
			})
			app.mu.Lock()
			dups, deadDups := 0, 0
			for i := range bridgeN {
				id := fmt.Sprintf("%s/%d", tc.broker, i)
				n, dn := app.delivered[tc.broker][id], app.dead[tc.broker][id]
				switch {
				case alwaysFails(i) && (n != 0 || dn == 0):
					t.Errorf("%s: delivered %d, dead-lettered %d; want only dead-lettered", id, n, dn)
				case !alwaysFails(i) && (n == 0 || dn != 0):
					t.Errorf("%s: delivered %d, dead-lettered %d; want delivered", id, n, dn)
				}
				dups += max(n-1, 0)
				deadDups += max(dn-1, 0)
			}
			t.Logf("%s: published %d (acknowledged; publisher retries after 5xx or no answer: %d) in %v; "+
				"delivered %d distinct (+%d duplicates), delivery attempts %d, retried attempts %d, dead-lettered %d distinct (+%d duplicates); drained %v after the last publish",
				tc.broker, acked.Load(), retries.Load(), published.Sub(start).Round(time.Millisecond),
				len(app.delivered[tc.broker]), dups, app.attempts[tc.broker], app.retried[tc.broker],
				len(app.dead[tc.broker]), deadDups, time.Since(published).Round(time.Millisecond))
			okPosts, retried := float64(len(app.delivered[tc.broker])+dups), float64(app.retried[tc.broker])
			app.mu.Unlock()

			// The sidecars count the same: every publish answered 200 once,
			// every 2xx and every retry the application saw.
			subName := `subscription="default/orders-` + tc.broker + `"`
			waitMetric(t, "publisher's ok publishes", bridgeN, []*meshProxy{pub},
				"trellis_bridge_published_total{", `broker="`+tc.broker+`"`, `result="ok"`)
			waitMetric(t, "subscriber's 2xx deliveries", okPosts, []*meshProxy{sub},
				"trellis_bridge_delivered_total{", subName, `result="ok"`)
			waitMetric(t, "subscriber's retries", retried, []*meshProxy{sub}, "trellis_bridge_retries_total{", subName)
			if dl := metricSum(t, []*meshProxy{sub}, "trellis_bridge_dead_lettered_total{", subName); dl < bridgeN/20 {
				t.Errorf("trellis_bridge_dead_lettered_total{%s} = %v, want >= %d", subName, dl, bridgeN/20)
			}
		})
	}
}

// outage keeps a stopped broker down for 2 s of publishing.
func outage() { <-time.After(2 * time.Second) }

// publishUntilAcked POSTs message i (a binary-mode CloudEvent with id
// "<broker>/<i>") until the bridge answers 200, counting the retries.
func publishUntilAcked(c *http.Client, url, broker string, i int, retries *atomic.Int64) error {
	deadline := time.Now().Add(90 * time.Second)
	pause := 20 * time.Millisecond
	for {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(fmt.Appendf(nil, "order %d", i)))
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Id", fmt.Sprintf("%s/%d", broker, i))
		req.Header.Set("Ce-Source", "/e2e/publisher")
		req.Header.Set("Ce-Type", "order.created")
		req.Header.Set("Ce-Partitionkey", fmt.Sprint("customer-", i%64))
		req.Header.Set("Content-Type", "text/plain")
		resp, err := c.Do(req)
		code := 0
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
			if code == http.StatusOK {
				return nil
			}
		}
		if code != 0 && code < 500 {
			return fmt.Errorf("publish %s/%d: %d", broker, i, code)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("publish %s/%d: not acknowledged within 90s (last %d %v)", broker, i, code, err)
		}
		retries.Add(1)
		time.Sleep(pause)
		pause = min(2*pause, time.Second)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
