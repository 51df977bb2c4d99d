package main

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunSmall runs both brokers, direct and through the proxy, with
// small counts and checks the table: six rows with positive figures. The
// run itself fails unless the proxy's filters counted every message.
func TestRunSmall(t *testing.T) {
	var out strings.Builder
	c := config{natsMsgs: 2000, natsReqs: 20, kafkaRecords: 500, kafkaSync: 20, payload: 128, reps: 2}
	if err := run(t.Context(), c, &out); err != nil {
		t.Fatal(err)
	}
	var rows int
	for line := range strings.Lines(out.String()) {
		if !strings.HasPrefix(line, "| NATS") && !strings.HasPrefix(line, "| Kafka") {
			continue
		}
		rows++
		cells := strings.Split(line, "|")
		for _, cell := range cells[3:6] {
			v, err := strconv.ParseFloat(strings.TrimSpace(cell), 64)
			if err != nil || v <= 0 {
				t.Errorf("row %q: cell %q is not a positive number", line, cell)
			}
		}
	}
	if rows != 6 {
		t.Errorf("%d result rows, want 6:\n%s", rows, out.String())
	}
}

func TestRunRejectsNonPositiveCounts(t *testing.T) {
	err := run(t.Context(), config{natsMsgs: 1, natsReqs: 1, kafkaRecords: 1, kafkaSync: 0, payload: 1, reps: 1}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "-kafka-sync") {
		t.Fatalf("err = %v, want one naming -kafka-sync", err)
	}
}

func TestPercentilesAndMedian(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Microsecond
	}
	if p50, p99 := percentiles(ds); p50 != 50 || p99 != 99 {
		t.Errorf("percentiles = %v, %v; want 50, 99", p50, p99)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
}
