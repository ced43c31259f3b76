package telemetry

import (
	"context"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Prune drops every partition whose whole span ended more than
// [Options.Retention] before the clock's now, one partition bucket per
// commit (tx.DeleteBucket frees its pages without touching messages one by
// one), and returns how many it dropped. A partition that still holds one
// message inside the retention stays whole.
func (s *Store) Prune(ctx context.Context) (int, error) {
	cutoff := s.opts.Clock().Add(-s.opts.Retention).Unix()
	s.mu.RLock()
	var old []int64
	for _, start := range s.partitions {
		if start+s.span > cutoff {
			break
		}
		old = append(old, start)
	}
	s.mu.RUnlock()

	dropped := 0
	for _, start := range old {
		pkey := partitionKey(start)
		var existed bool
		err := s.db.Update(ctx, func(tx *bolt.Tx) error {
			existed = tx.Bucket(pkey) != nil
			if !existed {
				return nil
			}
			return tx.DeleteBucket(pkey)
		})
		if err != nil {
			return dropped, fmt.Errorf("prune telemetry partition %s: %w", time.Unix(start, 0).UTC().Format(time.RFC3339), err)
		}
		s.mu.Lock()
		if i, ok := slices.BinarySearch(s.partitions, start); ok {
			s.partitions = slices.Delete(s.partitions, i, i+1)
		}
		s.mu.Unlock()
		if existed {
			dropped++
		}
	}
	return dropped, nil
}

// Run prunes at once and then every [PruneInterval] until ctx ends, logging
// what it dropped and any error.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(PruneInterval)
	defer t.Stop()
	for {
		n, err := s.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.opts.Logger.Error("telemetry retention", "err", err)
		case n > 0:
			s.opts.Logger.Info("telemetry retention dropped partitions", "partitions", n, "retention", s.opts.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
