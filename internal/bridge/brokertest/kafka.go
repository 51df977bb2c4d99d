package brokertest

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is a kfake cluster (one broker) persisting to a test directory,
// so Restart keeps its topics, records and committed offsets.
type Kafka struct {
	// Addr is the broker's host:port.
	Addr string

	port int
	dir  string
	c    *kfake.Cluster
}

// StartKafka starts a kfake cluster with automatic topic creation and
// partitions partitions per new topic. t.Cleanup closes it.
func StartKafka(t testing.TB, partitions int) *Kafka {
	t.Helper()
	k := &Kafka{port: FreePort(t), dir: t.TempDir()}
	k.Addr = fmt.Sprintf("127.0.0.1:%d", k.port)
	k.start(t, partitions)
	t.Cleanup(k.Stop)
	return k
}

func (k *Kafka) start(t testing.TB, partitions int) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(k.port), kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions), kfake.DataDir(k.dir), kfake.SyncWrites())
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	k.c = c
}

// Stop closes the cluster.
func (k *Kafka) Stop() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// Start starts a stopped cluster again on the same port from its data
// directory.
func (k *Kafka) Start(t testing.TB, partitions int) {
	t.Helper()
	k.start(t, partitions)
}

// Restart closes the cluster and starts it again on the same port from
// its data directory.
func (k *Kafka) Restart(t testing.TB, partitions int) {
	t.Helper()
	k.Stop()
	k.start(t, partitions)
}
