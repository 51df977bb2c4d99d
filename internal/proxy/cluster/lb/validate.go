package lb

import (
	"errors"
	"math"
)

// Defaults and limits of the policies' Envoy fields.
const (
	// DefaultChoiceCount is least_request_lb_config.choice_count when unset.
	DefaultChoiceCount = 2
	// DefaultActiveRequestBias is least_request_lb_config.active_request_bias
	// when unset.
	DefaultActiveRequestBias = 1.0

	// DefaultMinRingSize is ring_hash_lb_config.minimum_ring_size when unset.
	DefaultMinRingSize = 1024
	// DefaultMaxRingSize is ring_hash_lb_config.maximum_ring_size when unset.
	DefaultMaxRingSize = 8 * 1024 * 1024
	// MaxRingSize is the largest ring size Envoy accepts for either bound.
	MaxRingSize = 8 * 1024 * 1024

	// DefaultMaglevTableSize is maglev_lb_config.table_size when unset.
	DefaultMaglevTableSize = 65537
	// MaxMaglevTableSize is the largest table_size Envoy accepts.
	MaxMaglevTableSize = 5000011
)

// ValidateLeastRequest checks least_request_lb_config. choiceCount 0 means
// unset; activeRequestBias is the value the caller will pass to
// [LeastRequest] (the default when unset). Errors name the field.
func ValidateLeastRequest(choiceCount uint32, activeRequestBias float64) error {
	var errs []error
	if choiceCount == 1 {
		errs = append(errs, errors.New("choice_count: must be >= 2"))
	}
	if math.IsNaN(activeRequestBias) || math.IsInf(activeRequestBias, 0) {
		errs = append(errs, errors.New("active_request_bias: must be a finite number"))
	} else if activeRequestBias < 0 {
		errs = append(errs, errors.New("active_request_bias: must be >= 0"))
	}
	return errors.Join(errs...)
}

// ValidateRingHash checks ring_hash_lb_config's minimum_ring_size and
// maximum_ring_size; 0 means unset (the default). Errors name the field.
func ValidateRingHash(minRingSize, maxRingSize uint64) error {
	var errs []error
	if minRingSize > MaxRingSize {
		errs = append(errs, errors.New("minimum_ring_size: must be <= 8388608"))
	}
	if maxRingSize > MaxRingSize {
		errs = append(errs, errors.New("maximum_ring_size: must be <= 8388608"))
	}
	minRingSize, maxRingSize = ringSizes(minRingSize, maxRingSize)
	if len(errs) == 0 && maxRingSize < minRingSize {
		errs = append(errs, errors.New("maximum_ring_size: must be >= minimum_ring_size"))
	}
	return errors.Join(errs...)
}

// ValidateMaglev checks maglev_lb_config.table_size; 0 means unset (the
// default). Errors name the field.
func ValidateMaglev(tableSize uint64) error {
	if tableSize == 0 {
		return nil
	}
	if tableSize > MaxMaglevTableSize {
		return errors.New("table_size: must be <= 5000011")
	}
	if !isPrime(tableSize) {
		return errors.New("table_size: must be prime")
	}
	return nil
}

// ringSizes applies the defaults to ring hash bounds.
func ringSizes(minRingSize, maxRingSize uint64) (uint64, uint64) {
	if minRingSize == 0 {
		minRingSize = DefaultMinRingSize
	}
	if maxRingSize == 0 {
		maxRingSize = DefaultMaxRingSize
	}
	return minRingSize, maxRingSize
}

// isPrime reports whether n is prime by trial division; n is at most
// MaxMaglevTableSize, so this takes at most ~1,100 divisions.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint64(3); d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}
