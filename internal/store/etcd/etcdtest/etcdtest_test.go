package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStart(t *testing.T) {
	eps := Start(t)
	checkPutGet(t, eps, eps)
}

func TestStartCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three etcd members")
	}
	eps := StartCluster(t, 3)
	if len(eps) != 3 {
		t.Fatalf("%d endpoints, want 3", len(eps))
	}
	// A write through one member is read through another.
	checkPutGet(t, eps[:1], eps[2:])
}

func checkPutGet(t *testing.T, putEps, getEps []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	put := client(t, putEps)
	if _, err := put.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := client(t, getEps).Get(ctx, "k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("Get = %v", resp.Kvs)
	}
}

func client(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
