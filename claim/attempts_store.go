package claim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
)

// Claim attempt buckets. Gateways hold a JSON gatewayRecord; users and
// sources the big-endian unix nanos of their attempts within the window,
// oldest first (the encoding of the login attempt logs).
var (
	bucketClaimGateways = []byte("claim/attempts/gateways")
	bucketClaimUsers    = []byte("claim/attempts/users")
	bucketClaimSources  = []byte("claim/attempts/sources")
)

// gatewayRecord is one gateway's failures since its last success or unlock.
type gatewayRecord struct {
	// Failures are the unix nanos of the newest failures, at most
	// GatewayFree+1 of them, oldest first.
	Failures []int64 `json:"failures,omitempty"`
	// Total counts failures since the last success or unlock.
	Total int `json:"total"`
	// Streak is how many failures of the current back-off streak there
	// were; NotBefore is when the last one's back-off ends.
	Streak    int       `json:"streak,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
}

// refusal returns why an attempt at `at` is refused, or nil.
func (r gatewayRecord) refusal(at time.Time, l Limits) *LimitError {
	switch {
	case r.Total >= l.GatewayLock:
		return &LimitError{Scope: ScopeGateway, Locked: true}
	case at.Before(r.NotBefore):
		return &LimitError{Scope: ScopeGateway, RetryAfter: r.NotBefore.Sub(at)}
	}
	return nil
}

// fail counts a failure at `at`.
func (r *gatewayRecord) fail(at time.Time, l Limits) {
	r.Failures = append(r.Failures, at.UnixNano())
	// Sorted, because a clock stepped back can append out of order.
	slices.Sort(r.Failures)
	r.Failures = recentFailures(r.Failures, at.Add(-l.GatewayWindow))
	r.Failures = r.Failures[max(0, len(r.Failures)-(l.GatewayFree+1)):]
	r.Total++
	if r.Streak > 0 && !at.Before(r.NotBefore.Add(l.GatewayWindow)) {
		// Quiet for a whole window after the back-off: the streak is over.
		r.Streak, r.NotBefore = 0, time.Time{}
	}
	if r.Streak > 0 || len(r.Failures) > l.GatewayFree {
		r.Streak++
		r.NotBefore = at.Add(backoff(r.Streak, l.GatewayBackoff, l.GatewayMaxBackoff))
	}
}

func (r gatewayRecord) state(now time.Time, l Limits) GatewayAttempts {
	s := GatewayAttempts{
		Failures: len(recentFailures(r.Failures, now.Add(-l.GatewayWindow))),
		Total:    r.Total,
		Locked:   r.Total >= l.GatewayLock,
	}
	if now.Before(r.NotBefore) {
		s.NextAttempt = r.NotBefore
	}
	if n := len(r.Failures); n > 0 {
		// Sorted by fail; the newest is never trimmed.
		s.LastFailure = time.Unix(0, r.Failures[n-1]).UTC()
	}
	return s
}

// recentFailures returns the entries of the sorted log after since.
func recentFailures(log []int64, since time.Time) []int64 {
	cut := since.UnixNano()
	i := 0
	for i < len(log) && log[i] <= cut {
		i++
	}
	return log[i:]
}

// attemptStore keeps the claim attempt counters in their buckets.
type attemptStore struct {
	db *store.DB
}

func newAttemptStore(ctx context.Context, db *store.DB) (*attemptStore, error) {
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketClaimGateways, bucketClaimUsers, bucketClaimSources} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &attemptStore{db: db}, nil
}

func getGatewayRecord(tx *bolt.Tx, gateway string) (gatewayRecord, error) {
	var r gatewayRecord
	v := tx.Bucket(bucketClaimGateways).Get([]byte(gateway))
	if v == nil {
		return r, nil
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("decode gateway %s attempts: %w", gateway, err)
	}
	return r, nil
}

func putGatewayRecord(tx *bolt.Tx, gateway string, r gatewayRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode gateway %s attempts: %w", gateway, err)
	}
	if err := tx.Bucket(bucketClaimGateways).Put([]byte(gateway), v); err != nil {
		return fmt.Errorf("put gateway %s attempts: %w", gateway, err)
	}
	return nil
}

// attemptLog is one user's or source's counter within a transaction.
type attemptLog struct {
	bucket []byte
	key    string
	scope  string
	limit  attemptLimit
}

func (k attemptKeys) logs(l Limits) []attemptLog {
	var out []attemptLog
	if k.user != "" {
		out = append(out, attemptLog{bucketClaimUsers, k.user, ScopeUser, attemptLimit{max: l.UserMax, window: l.UserWindow}})
	}
	if k.source != "" {
		out = append(out, attemptLog{bucketClaimSources, k.source, ScopeSource, attemptLimit{max: l.SourceMax, window: l.SourceWindow}})
	}
	return out
}

// putLog stores log under key, or deletes the key when log is empty.
func putLog(b *bolt.Bucket, key string, log []int64) error {
	if len(log) == 0 {
		return b.Delete([]byte(key))
	}
	return b.Put([]byte(key), encodeAttempts(log))
}

// worse returns the refusal that weighs more: a lock, else the longer wait.
func worse(a, b *LimitError) *LimitError {
	switch {
	case a == nil:
		return b
	case b == nil || a.Locked:
		return a
	case b.Locked || b.RetryAfter > a.RetryAfter:
		return b
	}
	return a
}

// reserve counts an attempt at `at` against every key, or none if one of
// them refuses (a *LimitError). locked reports that this attempt locked the
// gateway.
func (s *attemptStore) reserve(ctx context.Context, k attemptKeys, at time.Time, l Limits) (locked bool, err error) {
	err = s.db.Update(ctx, func(tx *bolt.Tx) error {
		locked = false
		var refused *LimitError
		var gw gatewayRecord
		if k.gateway != "" {
			var err error
			if gw, err = getGatewayRecord(tx, k.gateway); err != nil {
				return err
			}
			refused = worse(refused, gw.refusal(at, l))
		}
		logs := k.logs(l)
		recent := make([][]int64, len(logs))
		for i, lg := range logs {
			recent[i] = recentAttempts(tx.Bucket(lg.bucket).Get([]byte(lg.key)), at.Add(-lg.limit.window))
			if n := len(recent[i]); n >= lg.limit.max {
				// The attempt that must age out first to get under the limit.
				oldest := time.Unix(0, recent[i][n-lg.limit.max])
				refused = worse(refused, &LimitError{Scope: lg.scope, RetryAfter: oldest.Add(lg.limit.window).Sub(at)})
			}
		}
		if refused != nil {
			return store.Refuse(refused)
		}
		if k.gateway != "" {
			gw.fail(at, l)
			locked = gw.Total == l.GatewayLock
			if err := putGatewayRecord(tx, k.gateway, gw); err != nil {
				return err
			}
		}
		for i, lg := range logs {
			log := append(recent[i], at.UnixNano())
			// recentAttempts sorted the log; a clock stepped back may
			// append out of order, which the next decode sorts again.
			log = log[max(0, len(log)-lg.limit.max):]
			if err := putLog(tx.Bucket(lg.bucket), lg.key, log); err != nil {
				return fmt.Errorf("put %s attempts: %w", lg.scope, err)
			}
		}
		return nil
	})
	return locked, err
}

// refund forgets the gateway's failures and takes the newest attempt within
// the window off the user's and the source's logs.
func (s *attemptStore) refund(ctx context.Context, k attemptKeys, at time.Time, l Limits) error {
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		if k.gateway != "" {
			if err := tx.Bucket(bucketClaimGateways).Delete([]byte(k.gateway)); err != nil {
				return fmt.Errorf("delete gateway attempts: %w", err)
			}
		}
		for _, lg := range k.logs(l) {
			b := tx.Bucket(lg.bucket)
			log := recentAttempts(b.Get([]byte(lg.key)), at.Add(-lg.limit.window))
			if len(log) > 0 {
				log = log[:len(log)-1]
			}
			if err := putLog(b, lg.key, log); err != nil {
				return fmt.Errorf("put %s attempts: %w", lg.scope, err)
			}
		}
		return nil
	})
}

// left reads what [Attempts.Left] reports.
func (s *attemptStore) left(_ context.Context, k attemptKeys, at time.Time, l Limits) (int, error) {
	left := max(l.GatewayFree, l.GatewayLock, l.UserMax, l.SourceMax)
	err := s.db.View(func(tx *bolt.Tx) error {
		if k.gateway != "" {
			gw, err := getGatewayRecord(tx, k.gateway)
			if err != nil {
				return err
			}
			free := l.GatewayFree - len(recentFailures(gw.Failures, at.Add(-l.GatewayWindow)))
			if gw.Streak > 0 && at.Before(gw.NotBefore.Add(l.GatewayWindow)) {
				free = 0
			}
			left = min(left, free, l.GatewayLock-gw.Total)
		}
		for _, lg := range k.logs(l) {
			n := len(recentAttempts(tx.Bucket(lg.bucket).Get([]byte(lg.key)), at.Add(-lg.limit.window)))
			left = min(left, lg.limit.max-n)
		}
		return nil
	})
	return max(left, 0), err
}

func (s *attemptStore) clearGateway(ctx context.Context, gateway string) error {
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketClaimGateways).Delete([]byte(gateway))
	})
}

func (s *attemptStore) gateway(_ context.Context, gateway string) (gatewayRecord, error) {
	var r gatewayRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getGatewayRecord(tx, gateway)
		return err
	})
	return r, err
}

// prune deletes the user and source logs with nothing within their window
// at now. Gateway records stay: their total counts towards the lock however
// old it is.
func (s *attemptStore) prune(ctx context.Context, now time.Time, l Limits) error {
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		for _, p := range []struct {
			bucket []byte
			window time.Duration
		}{{bucketClaimUsers, l.UserWindow}, {bucketClaimSources, l.SourceWindow}} {
			b := tx.Bucket(p.bucket)
			var stale [][]byte
			err := b.ForEach(func(k, v []byte) error {
				if len(recentAttempts(v, now.Add(-p.window))) == 0 {
					stale = append(stale, bytes.Clone(k))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range stale {
				if err := b.Delete(k); err != nil {
					return fmt.Errorf("delete attempts: %w", err)
				}
			}
		}
		return nil
	})
}
