package claim

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
)

// accountStore is everything [Accounts] keeps. Writes are durable when they
// return. The bbolt implementation below is the embedded default; a
// PostgreSQL one can take its place without touching the rest.
type accountStore interface {
	// createUser stores a new user and creates its organisation if new; it
	// returns ErrUserExists if the username is taken.
	createUser(ctx context.Context, rec userRecord) error
	// user returns ErrUserNotFound for an unknown username.
	user(ctx context.Context, username string) (userRecord, error)
	// users returns every user ordered by username.
	users(ctx context.Context) ([]userRecord, error)
	// setDisabled sets the flag and, when disabling, deletes the user's
	// sessions; ErrUserNotFound for an unknown username.
	setDisabled(ctx context.Context, username string, disabled bool) (userRecord, error)

	// chargeAttempt counts one login attempt against every key, unless a
	// key is already at its limit: then nothing is counted and a
	// *RateLimitError says when to retry.
	chargeAttempt(ctx context.Context, keys []attemptKey, at time.Time) error
	// loginSucceeded stores the session, clears the attempts of reset and
	// takes back the attempt charged at `at` from refund, all at once.
	loginSucceeded(ctx context.Context, tokenHash []byte, s sessionRecord, reset []string, refund string, at time.Time) error
	// session returns the session stored under tokenHash and its user, or
	// ErrInvalidSession; it does not check expiry.
	session(ctx context.Context, tokenHash []byte) (sessionRecord, userRecord, error)
	// deleteSession removes a session; removing an absent one is no error.
	deleteSession(ctx context.Context, tokenHash []byte) error
	// sweep deletes sessions expired at now and attempt logs with nothing
	// newer than now-window.
	sweep(ctx context.Context, now time.Time, window time.Duration) error
}

// userRecord is a user as stored.
type userRecord struct {
	Username     string    `json:"username"`
	Org          string    `json:"org"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"password_hash"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

func (r userRecord) user() (User, error) {
	role, err := ParseRole(r.Role)
	if err != nil {
		return User{}, fmt.Errorf("read user %s: %w", r.Username, err)
	}
	return User{Username: r.Username, Org: r.Org, Role: role, Disabled: r.Disabled, CreatedAt: r.CreatedAt}, nil
}

type orgRecord struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// sessionRecord is a session as stored, under the SHA-256 of its token.
type sessionRecord struct {
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Bucket names are the package's own; the prefix keeps them apart from
// other packages' buckets in a shared file.
var (
	bucketUsers    = []byte("accounts/users")
	bucketOrgs     = []byte("accounts/orgs")
	bucketSessions = []byte("accounts/sessions")
	bucketAttempts = []byte("accounts/attempts") // key -> big-endian unix nanos of recent failures
)

type boltAccountStore struct {
	db *store.DB
}

func newBoltAccountStore(ctx context.Context, db *store.DB) (*boltAccountStore, error) {
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketUsers, bucketOrgs, bucketSessions, bucketAttempts} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &boltAccountStore{db: db}, nil
}

func (s *boltAccountStore) createUser(ctx context.Context, rec userRecord) error {
	userJSON, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode user: %w", err)
	}
	orgJSON, err := json.Marshal(orgRecord{Name: rec.Org, CreatedAt: rec.CreatedAt})
	if err != nil {
		return fmt.Errorf("encode org: %w", err)
	}
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if users.Get([]byte(rec.Username)) != nil {
			return ErrUserExists
		}
		orgs := tx.Bucket(bucketOrgs)
		if orgs.Get([]byte(rec.Org)) == nil {
			if err := orgs.Put([]byte(rec.Org), orgJSON); err != nil {
				return fmt.Errorf("put org: %w", err)
			}
		}
		if err := users.Put([]byte(rec.Username), userJSON); err != nil {
			return fmt.Errorf("put user: %w", err)
		}
		return nil
	})
}

func getUser(tx *bolt.Tx, username string) (userRecord, error) {
	var rec userRecord
	v := tx.Bucket(bucketUsers).Get([]byte(username))
	if v == nil {
		return rec, ErrUserNotFound
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("decode user %s: %w", username, err)
	}
	return rec, nil
}

func (s *boltAccountStore) user(_ context.Context, username string) (userRecord, error) {
	var rec userRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = getUser(tx, username)
		return err
	})
	return rec, err
}

func (s *boltAccountStore) users(_ context.Context) ([]userRecord, error) {
	var out []userRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var rec userRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode user %s: %w", k, err)
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

func (s *boltAccountStore) setDisabled(ctx context.Context, username string, disabled bool) (userRecord, error) {
	var rec userRecord
	err := s.db.Update(ctx, func(tx *bolt.Tx) error {
		var err error
		if rec, err = getUser(tx, username); err != nil {
			return err
		}
		rec.Disabled = disabled
		v, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode user: %w", err)
		}
		if err := tx.Bucket(bucketUsers).Put([]byte(username), v); err != nil {
			return fmt.Errorf("put user: %w", err)
		}
		if !disabled {
			return nil
		}
		return deleteSessionsWhere(tx, func(s sessionRecord) bool { return s.Username == username })
	})
	return rec, err
}

// deleteSessionsWhere deletes every session for which match is true. It
// scans all sessions: it runs only when a user is disabled and in sweeps.
func deleteSessionsWhere(tx *bolt.Tx, match func(sessionRecord) bool) error {
	b := tx.Bucket(bucketSessions)
	var doomed [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var s sessionRecord
		// An unreadable session can never authenticate anyone: drop it.
		if json.Unmarshal(v, &s) != nil || match(s) {
			doomed = append(doomed, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete session: %w", err)
		}
	}
	return nil
}

func (s *boltAccountStore) chargeAttempt(ctx context.Context, keys []attemptKey, at time.Time) error {
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAttempts)
		var retry time.Duration
		logs := make([][]int64, len(keys))
		for i, k := range keys {
			logs[i] = recentAttempts(b.Get([]byte(k.key)), at.Add(-k.limit.window))
			if n := len(logs[i]); n >= k.limit.max {
				// The attempt that must age out first to get under the limit.
				oldest := time.Unix(0, logs[i][n-k.limit.max])
				retry = max(retry, oldest.Add(k.limit.window).Sub(at))
			}
		}
		if retry > 0 {
			return &RateLimitError{RetryAfter: retry}
		}
		for i, k := range keys {
			log := append(logs[i], at.UnixNano())
			slices.Sort(log)
			// Only the newest max entries can matter for the limit.
			log = log[max(0, len(log)-k.limit.max):]
			if err := b.Put([]byte(k.key), encodeAttempts(log)); err != nil {
				return fmt.Errorf("put attempts: %w", err)
			}
		}
		return nil
	})
}

func (s *boltAccountStore) loginSucceeded(ctx context.Context, tokenHash []byte, sess sessionRecord, reset []string, refund string, at time.Time) error {
	v, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSessions).Put(tokenHash, v); err != nil {
			return fmt.Errorf("put session: %w", err)
		}
		b := tx.Bucket(bucketAttempts)
		for _, k := range reset {
			if err := b.Delete([]byte(k)); err != nil {
				return fmt.Errorf("delete attempts: %w", err)
			}
		}
		if refund == "" {
			return nil
		}
		log := decodeAttempts(b.Get([]byte(refund)))
		for i, t := range log {
			if t == at.UnixNano() {
				log = append(log[:i], log[i+1:]...)
				break
			}
		}
		if len(log) == 0 {
			return b.Delete([]byte(refund))
		}
		return b.Put([]byte(refund), encodeAttempts(log))
	})
}

func (s *boltAccountStore) session(_ context.Context, tokenHash []byte) (sessionRecord, userRecord, error) {
	var sess sessionRecord
	var rec userRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get(tokenHash)
		if v == nil {
			return ErrInvalidSession
		}
		if err := json.Unmarshal(v, &sess); err != nil {
			return fmt.Errorf("decode session: %w", err)
		}
		var err error
		rec, err = getUser(tx, sess.Username)
		if errors.Is(err, ErrUserNotFound) {
			return ErrInvalidSession
		}
		return err
	})
	return sess, rec, err
}

func (s *boltAccountStore) deleteSession(ctx context.Context, tokenHash []byte) error {
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Delete(tokenHash)
	})
}

func (s *boltAccountStore) sweep(ctx context.Context, now time.Time, window time.Duration) error {
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		if err := deleteSessionsWhere(tx, func(s sessionRecord) bool { return !now.Before(s.ExpiresAt) }); err != nil {
			return err
		}
		b := tx.Bucket(bucketAttempts)
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if len(recentAttempts(v, now.Add(-window))) == 0 {
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
		return nil
	})
}

// recentAttempts decodes an attempt log and keeps the entries after since.
func recentAttempts(v []byte, since time.Time) []int64 {
	log := decodeAttempts(v)
	cut := since.UnixNano()
	i := 0
	for i < len(log) && log[i] <= cut {
		i++
	}
	return log[i:]
}

func decodeAttempts(v []byte) []int64 {
	out := make([]int64, 0, len(v)/8+1)
	for ; len(v) >= 8; v = v[8:] {
		out = append(out, int64(binary.BigEndian.Uint64(v)))
	}
	// Sorted, because a clock stepped back can append out of order.
	slices.Sort(out)
	return out
}

func encodeAttempts(log []int64) []byte {
	out := make([]byte, 0, 8*len(log))
	for _, t := range log {
		out = binary.BigEndian.AppendUint64(out, uint64(t))
	}
	return out
}
