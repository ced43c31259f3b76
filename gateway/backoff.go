package gateway

import "time"

// Reconnect back-off: the ceiling starts at BackoffBase and doubles with
// each failed attempt up to BackoffMax; the wait is drawn uniformly below
// the ceiling ("full jitter"), so a fleet that lost its broker at once does
// not come back at once.
const (
	BackoffBase = time.Second
	BackoffMax  = 60 * time.Second
	// backoffFloor keeps a draw near zero from turning into a busy loop.
	backoffFloor = 50 * time.Millisecond
)

// Backoff returns how long to wait before attempt (1 for the first retry)
// given r, a uniform random number in [0, 1): r times the ceiling
// min(BackoffMax, BackoffBase * 2^(attempt-1)), and at least 50 ms.
func Backoff(attempt int, r float64) time.Duration {
	ceiling := BackoffMax
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 7 { // 2^6 s > 60 s: no overflow beyond
		ceiling = min(BackoffMax, BackoffBase<<(attempt-1))
	}
	d := time.Duration(r * float64(ceiling))
	return max(d, backoffFloor)
}
