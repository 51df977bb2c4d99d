package lb

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr string // substring; empty means valid
	}{
		{name: "least request defaults", err: ValidateLeastRequest(0, DefaultActiveRequestBias)},
		{name: "least request bias 0", err: ValidateLeastRequest(3, 0)},
		{name: "choice_count 1", err: ValidateLeastRequest(1, 1), wantErr: "choice_count: must be >= 2"},
		{name: "negative bias", err: ValidateLeastRequest(2, -0.5), wantErr: "active_request_bias: must be >= 0"},
		{name: "NaN bias", err: ValidateLeastRequest(2, math.NaN()), wantErr: "active_request_bias: must be a finite number"},
		{name: "ring defaults", err: ValidateRingHash(0, 0)},
		{name: "ring min only", err: ValidateRingHash(4096, 0)},
		{name: "ring equal bounds", err: ValidateRingHash(64, 64)},
		{name: "ring max below min", err: ValidateRingHash(20, 10), wantErr: "maximum_ring_size: must be >= minimum_ring_size"},
		{name: "ring max below default min", err: ValidateRingHash(0, 512), wantErr: "maximum_ring_size: must be >= minimum_ring_size"},
		{name: "ring min too big", err: ValidateRingHash(MaxRingSize+1, 0), wantErr: "minimum_ring_size: must be <= 8388608"},
		{name: "ring max too big", err: ValidateRingHash(0, 1<<40), wantErr: "maximum_ring_size: must be <= 8388608"},
		{name: "maglev default", err: ValidateMaglev(0)},
		{name: "maglev prime", err: ValidateMaglev(7)},
		{name: "maglev largest", err: ValidateMaglev(MaxMaglevTableSize)},
		{name: "maglev not prime", err: ValidateMaglev(65536), wantErr: "table_size: must be prime"},
		{name: "maglev one", err: ValidateMaglev(1), wantErr: "table_size: must be prime"},
		{name: "maglev too big", err: ValidateMaglev(MaxMaglevTableSize + 2), wantErr: "table_size: must be <= 5000011"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.wantErr == "" && tc.err != nil:
				t.Errorf("unexpected error: %v", tc.err)
			case tc.wantErr != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.wantErr)):
				t.Errorf("error = %v, want it to contain %q", tc.err, tc.wantErr)
			}
		})
	}
}

func TestIsPrime(t *testing.T) {
	var got []uint64
	for n := uint64(0); n < 50; n++ {
		if isPrime(n) {
			got = append(got, n)
		}
	}
	want := []uint64{2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("primes below 50 (-want +got):\n%s", diff)
	}
	for n, want := range map[uint64]bool{65537: true, 5000011: true, 8388608: false, 65535: false} {
		if isPrime(n) != want {
			t.Errorf("isPrime(%d) = %v, want %v", n, !want, want)
		}
	}
}
