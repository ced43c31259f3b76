package crl

import (
	"context"
	"time"
)

// Retry back-off after a failed rebuild: first retry after minRetry,
// doubling up to maxRetry.
const (
	minRetry = time.Second
	maxRetry = time.Minute
)

// Run rebuilds every shard each [Config.Interval], and the shards that
// revocations made dirty [Config.Coalesce] after the first of them, until
// ctx ends; then it returns nil. A shard whose rebuild fails keeps serving
// its previous CRL and is retried with back-off; failures are logged, and
// loudly once a CRL is past its nextUpdate.
func (b *Builder) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer b.running.Store(false)
	tick := time.NewTicker(b.cfg.Interval)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false           // timer will fire
	timerFor := "revocation" // why it was armed: revocation or retry
	failures := 0            // consecutive failed rebuilds
	for {
		var fire <-chan time.Time
		if armed {
			fire = timer.C
		}
		var shards []int
		var trigger string
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
			if !armed {
				timer.Reset(b.cfg.Coalesce)
				armed, timerFor = true, "revocation"
			}
			continue
		case <-fire:
			armed, trigger = false, timerFor
			if shards = b.takeDirty(); len(shards) == 0 {
				continue
			}
		case <-tick.C:
			b.takeDirty()
			shards, trigger = b.all(), "schedule"
		}
		failed, err := b.rebuild(ctx, shards, trigger)
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		failures++
		delay := min(minRetry<<min(failures-1, 16), maxRetry)
		b.mu.Lock()
		for _, s := range failed {
			b.markDirtyLocked(s)
		}
		b.mu.Unlock()
		if !armed {
			timer.Reset(delay)
			armed, timerFor = true, "retry"
		}
		b.logFailure(err, failed, delay)
	}
}

// logFailure reports a failed rebuild, as an error naming how many shards
// are being served past their nextUpdate, or will be before the retry.
func (b *Builder) logFailure(err error, failed []int, retry time.Duration) {
	now := b.cfg.Clock()
	expired, expiring := 0, 0
	for _, s := range failed {
		next := b.shards[s].cur.Load().nextUpdate
		switch {
		case !now.Before(next):
			expired++
		case now.Add(retry).After(next):
			expiring++
		}
	}
	b.log.Error("rebuild CRLs", "err", err, "shards", len(failed), "serving", "previous CRLs", "retry_in", retry)
	if expired+expiring > 0 {
		b.log.Error("CRLs past their nextUpdate: relying parties reject them until a rebuild succeeds",
			"expired", expired, "expiring_before_retry", expiring)
	}
}
