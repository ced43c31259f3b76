// Package store wraps bbolt with group commit: concurrent writers share one
// transaction and one fsync, and each caller returns only once the batch that
// holds its write is durable on disk.
//
// Every domain package keeps its own buckets behind its own store type and
// hands [DB.Update] and [DB.View] closures; transactions never leave it.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by [DB.Update] after [DB.Close] has been called.
var ErrClosed = errors.New("store closed")

// Options tune a DB. The zero value is the default.
type Options struct {
	// MaxBatch caps how many updates share one transaction (default 1024).
	MaxBatch int
	// Timeout is how long Open waits for bbolt's file lock (default 1s):
	// only one process may open a data file.
	Timeout time.Duration
	// OnCommit, when set, is called after every durable commit with the
	// number of updates in the batch and how long the commit took.
	OnCommit func(updates int, took time.Duration)
}

// DB is a bbolt database with a single committer goroutine.
type DB struct {
	bolt     *bolt.DB
	opts     Options
	requests chan *request
	done     chan struct{}

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against concurrent Update/Close
	closed    bool
}

type request struct {
	fn  func(*bolt.Tx) error
	err chan error
}

// Open opens (creating if needed) the bbolt file at path with mode 0600.
func Open(path string, opts Options) (*DB, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: the file is locked by another process (is gwpki serve running?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := &DB{
		bolt:     b,
		opts:     opts,
		requests: make(chan *request, opts.MaxBatch),
		done:     make(chan struct{}),
	}
	go db.commitLoop()
	return db, nil
}

// Update runs fn in a read-write transaction shared with other concurrent
// updates and returns once that transaction is committed and fsynced. If fn
// returns an error, its writes are discarded and the error returned; the
// other updates of the batch are unaffected. fn may run more than once, so it
// must not have side effects outside the transaction.
func (db *DB) Update(ctx context.Context, fn func(*bolt.Tx) error) error {
	req := &request{fn: fn, err: make(chan error, 1)}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	select {
	case db.requests <- req:
	case <-ctx.Done():
		db.mu.RUnlock()
		return ctx.Err()
	}
	db.mu.RUnlock()
	// Once queued, the update will be applied: wait for the outcome even if
	// ctx ends, so that callers never report failure for a durable write.
	return <-req.err
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*bolt.Tx) error) error {
	return db.bolt.View(fn)
}

// Check verifies the consistency of the whole file (pages, freelist).
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// Path returns the file the database lives in.
func (db *DB) Path() string { return db.bolt.Path() }

// Close waits for queued updates to commit and closes the file.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		close(db.requests)
		db.mu.Unlock()
		<-db.done
	})
	return db.bolt.Close()
}

func (db *DB) commitLoop() {
	defer close(db.done)
	batch := make([]*request, 0, db.opts.MaxBatch)
	for req := range db.requests {
		batch = append(batch[:0], req)
		// Take whatever else queued up while the previous batch was syncing.
	fill:
		for len(batch) < db.opts.MaxBatch {
			select {
			case r, ok := <-db.requests:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		db.commit(batch)
	}
}

// commit applies batch in one transaction. A failing update is answered with
// its error and the batch is retried without it, since bbolt cannot roll back
// a single closure's writes.
func (db *DB) commit(batch []*request) {
	for len(batch) > 0 {
		start := time.Now()
		failed := -1
		var failErr error
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for i, r := range batch {
				if err := safeCall(r.fn, tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].err <- failErr
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		for _, r := range batch {
			r.err <- err
		}
		if err == nil && db.opts.OnCommit != nil {
			db.opts.OnCommit(len(batch), time.Since(start))
		}
		return
	}
}

// safeCall turns a panic in an update closure into that update's error, so
// one bad caller cannot take down the committer and every other writer.
func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store update panicked: %v", p)
		}
	}()
	return fn(tx)
}
