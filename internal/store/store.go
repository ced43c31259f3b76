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
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrClosed is returned by [DB.Update] and [DB.View] after [DB.Close] has
// been called.
var ErrClosed = errors.New("store closed")

// ErrLocked is returned by [Open] when another process (or another DB in this
// process) holds the file's lock for longer than [Options.Timeout].
var ErrLocked = errors.New("file is locked by another process (is gwpki serve already running?)")

// ErrStalled is wrapped by the error [DB.Health] returns when a commit has
// run longer than [StallAfter].
var ErrStalled = errors.New("store commit stalled")

// ErrPanicked is wrapped by the error [DB.Update] returns when its fn
// panicked; the panic value is part of the message.
var ErrPanicked = errors.New("update panicked")

// Options tune a DB. The zero value is the default.
type Options struct {
	// MaxBatch caps how many updates share one transaction (default 1024).
	MaxBatch int
	// Timeout is how long Open waits for bbolt's file lock (default 1s):
	// only one process may open a data file.
	Timeout time.Duration
	// Linger is how long the committer waits for more updates after the
	// first of a batch arrives, when the batch is not yet full and the
	// previous batch held more than one update (the store is under load).
	// Under load it turns many small commits, each paying the full price of
	// bbolt's page writes and two fsyncs, into fewer larger ones; a caller
	// then waits at most Linger longer. Zero commits at once.
	Linger time.Duration
	// OnCommit, when set, is called from the committer goroutine after every
	// durable commit, before the batch's callers return, with the number of
	// updates in the batch and how long the commit took. It must be quick:
	// nothing commits while it runs.
	OnCommit func(updates int, took time.Duration)
	// NoFreelistSync leaves bbolt's free page list out of every commit; it
	// is rebuilt by a scan of the file when the file is opened. It makes
	// commits of a write-heavy file cheaper at the price of a slower open;
	// durability is the same.
	NoFreelistSync bool
}

// DB is a bbolt database with a single committer goroutine.
type DB struct {
	bolt     *bolt.DB
	path     string
	opts     Options
	requests chan *request
	done     chan struct{}

	closeOnce sync.Once
	closeErr  error
	// mu guards closed and makes Close wait for senders: Update holds the
	// read lock while sending, so requests is never sent on once closed.
	mu     sync.RWMutex
	closed bool

	// What the committer last saw, for [DB.Health] and
	// [DB.CommitErrors]: the error of the last failed commit (nil once a
	// commit succeeds again), failed commits since Open, and when the
	// commit under way began (unix nanoseconds, 0 when none is).
	lastErr       atomic.Pointer[error]
	commitErrors  atomic.Uint64
	commitStarted atomic.Int64
}

// StallAfter is how long a commit may run before [DB.Health] reports the
// store stalled: commits take milliseconds, and a disk that hangs in fsync
// holds every writer.
const StallAfter = 30 * time.Second

// Request states: a queued request is either taken by the committer or
// abandoned by its caller, never both.
const (
	queued int32 = iota
	taken
	abandoned
)

type request struct {
	fn    func(*bolt.Tx) error
	err   chan error
	state atomic.Int32
	// early requests (Apply) are answered once fn has run, not once the
	// batch is durable; answered and result belong to the committer.
	early    bool
	answered bool
	result   error
}

// refusal marks an update that wrote nothing; see [Refuse].
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// Refuse wraps err for an update function that decided to write nothing:
// its caller gets err, and unlike any other error it does not make the
// committer roll back and re-run the rest of the batch. An attacker replaying
// tokens cannot turn each batch into a quadratic amount of work this way.
func Refuse(err error) error { return refusal{err} }

// Open opens (creating if needed) the bbolt file at path with mode 0600.
func Open(path string, opts Options) (*DB, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      opts.Timeout,
		FreelistType: bolt.FreelistMapType,
		// Mapping 256 MiB up front spares the remaps (which stall readers
		// and the committer) while the file grows to that size.
		InitialMmapSize: 256 << 20,
		NoFreelistSync:  opts.NoFreelistSync,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db := &DB{
		bolt:     b,
		path:     path,
		opts:     opts,
		requests: make(chan *request, opts.MaxBatch),
		done:     make(chan struct{}),
	}
	go db.commitLoop()
	return db, nil
}

// Update runs fn in a read-write transaction shared with other concurrent
// updates and returns once that transaction is committed and fsynced.
//
// If fn returns an error or panics, its writes are discarded and the error
// returned (a panic wraps [ErrPanicked]); the other updates of the batch are
// unaffected. fn may run more than once, so it must not have side effects
// outside the transaction, and whatever it records in captured variables it
// must set afresh on each run.
//
// If ctx ends before the committer picks the update up, Update returns
// ctx.Err() and fn is never applied. Once picked up, Update waits for the
// outcome regardless of ctx, so it never reports failure for a durable write.
//
// fn must not call Update or Close: the committer would wait for itself.
func (db *DB) Update(ctx context.Context, fn func(*bolt.Tx) error) error {
	return db.enqueue(ctx, &request{fn: fn, err: make(chan error, 1)})
}

// Apply is Update without the wait for durability: it returns fn's outcome
// as soon as fn has run in its batch's transaction, before the batch is
// committed. The write becomes durable with the batch, and is lost with it
// if the process dies first or the commit fails. Use it only where that loss
// is harmless because nothing depending on the write is promised to anyone
// before a later Update returns (batches commit in order, so that Update's
// durability covers this write): a one-time token use ahead of storing the
// certificate it authorises, for instance. It saves that caller a whole
// commit's wait.
//
// fn may run again after Apply has returned (when another update of the
// batch fails), so it must report only through its error, never through
// captured variables; it returns [Refuse] to answer without writing.
func (db *DB) Apply(ctx context.Context, fn func(*bolt.Tx) error) error {
	return db.enqueue(ctx, &request{fn: fn, err: make(chan error, 1), early: true})
}

func (db *DB) enqueue(ctx context.Context, req *request) error {
	// Checked first because select picks randomly among ready cases, which
	// would otherwise queue an already-cancelled update half of the time.
	if err := ctx.Err(); err != nil {
		return err
	}
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

	select {
	case err := <-req.err:
		return err
	case <-ctx.Done():
		if req.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err()
		}
		return <-req.err
	}
}

// View runs fn in a read-only transaction. Views run concurrently with each
// other and with the committer.
func (db *DB) View(fn func(*bolt.Tx) error) error {
	err := db.bolt.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Snapshot writes a consistent copy of the whole file to w, as of one
// read-only transaction, and returns the number of bytes written. It runs
// beside the committer: writers are not held up while it copies. The copy
// is a bbolt file that opens on its own.
func (db *DB) Snapshot(w io.Writer) (int64, error) {
	var n int64
	err := db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("snapshot %s: %w", db.path, err)
	}
	return n, nil
}

// Check verifies the consistency of the whole file (pages, freelist).
func (db *DB) Check() error {
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		// The channel must be drained: Check's goroutine blocks otherwise.
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// Path returns the file the database lives in, also after Close (bbolt
// forgets it then).
func (db *DB) Path() string { return db.path }

// Health reports whether the store can commit, from what the committer
// last saw, without writing anything: [ErrClosed] after Close, the error of
// the last commit if it failed (until a commit succeeds again), or an error
// if the commit under way has run longer than [StallAfter]. nil means the
// last commit succeeded (or none was tried yet) and none is stuck.
func (db *DB) Health() error {
	db.mu.RLock()
	closed := db.closed
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if p := db.lastErr.Load(); p != nil {
		return *p
	}
	if start := db.commitStarted.Load(); start != 0 {
		if d := time.Since(time.Unix(0, start)); d > StallAfter {
			return fmt.Errorf("%w: running for %v", ErrStalled, d.Round(time.Second))
		}
	}
	return nil
}

// CommitErrors returns how many commits failed since Open (a transaction
// that could not begin, or bbolt's write or fsync failing); every update of
// such a batch got the error.
func (db *DB) CommitErrors() uint64 { return db.commitErrors.Load() }

// failed records a commit that failed.
func (db *DB) failed(err error) {
	db.commitErrors.Add(1)
	db.lastErr.Store(&err)
}

// Close rejects new updates, waits for the queued ones to commit, and closes
// the file. Calling it again returns the first call's result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		close(db.requests)
		db.mu.Unlock()
		<-db.done
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return db.closeErr
}

func (db *DB) commitLoop() {
	defer close(db.done)
	b := &batch{db: db, reqs: make([]*request, 0, db.opts.MaxBatch)}
	lastBatch := 0
	for req := range db.requests {
		b.take(req)
		// Take whatever else queued up while the previous batch was syncing,
		// and, under load (the last batch was shared), what arrives within
		// Linger. A lone writer on an idle server commits at once.
		var linger <-chan time.Time
		var timer *time.Timer
		if db.opts.Linger > 0 && lastBatch > 1 {
			timer = time.NewTimer(db.opts.Linger)
			linger = timer.C
		}
	fill:
		for len(b.reqs) < db.opts.MaxBatch {
			select {
			case r, ok := <-db.requests:
				if !ok {
					break fill
				}
				b.take(r)
				continue
			default:
			}
			if linger == nil {
				break
			}
			select {
			case r, ok := <-db.requests:
				if !ok {
					break fill
				}
				b.take(r)
			case <-linger:
				break fill
			}
		}
		if timer != nil {
			timer.Stop()
		}
		lastBatch = len(b.reqs)
		b.commit()
	}
}

// batch is one write transaction being filled. Updates run as they arrive,
// so an Apply is answered at once rather than after the batch has filled.
// bbolt cannot roll back a single closure's writes, so when an update fails
// the transaction is rolled back and the updates before it run again in a
// fresh one; refusals ([Refuse]) wrote nothing and need no such retry.
// Updates run in queue order on every try, so an early answer given on one
// try is what every later try computes again.
type batch struct {
	db    *DB
	tx    *bolt.Tx
	reqs  []*request // applied to tx, in order
	start time.Time
}

// take applies r unless its caller has given up on it.
func (b *batch) take(r *request) {
	if r.state.CompareAndSwap(queued, taken) {
		b.apply(r)
	}
}

func (b *batch) apply(r *request) {
	if b.tx == nil {
		tx, err := b.db.bolt.Begin(true)
		if err != nil {
			err = fmt.Errorf("begin store batch: %w", err)
			b.db.failed(err)
			b.answer(r, err)
			return
		}
		b.tx, b.start = tx, time.Now()
		b.db.commitStarted.Store(b.start.UnixNano())
	}
	err := safeCall(r.fn, b.tx)
	var ref refusal
	switch {
	case err == nil:
		r.result = nil
	case errors.As(err, &ref):
		r.result = ref.err
	default:
		b.answer(r, err)
		_ = b.tx.Rollback()
		b.tx = nil
		b.db.commitStarted.Store(0)
		redo := slices.Clone(b.reqs)
		b.reqs = b.reqs[:0]
		for _, q := range redo {
			b.apply(q)
		}
		return
	}
	b.reqs = append(b.reqs, r)
	if r.early {
		b.answer(r, r.result)
	}
}

// commit makes the batch durable and answers everyone not yet answered.
func (b *batch) commit() {
	if b.tx == nil {
		b.db.commitStarted.Store(0)
		return
	}
	err := b.tx.Commit()
	b.db.commitStarted.Store(0)
	if err != nil {
		// bbolt's own error (write or fsync): nothing of the batch is
		// durable, so everyone in it gets it.
		err = fmt.Errorf("commit store batch: %w", err)
		b.db.failed(err)
	} else {
		b.db.lastErr.Store(nil)
		if b.db.opts.OnCommit != nil {
			// Before answering, so that a caller whose Update returned
			// sees its commit counted.
			b.db.opts.OnCommit(len(b.reqs), time.Since(b.start))
		}
	}
	for _, r := range b.reqs {
		if err != nil {
			b.answer(r, err)
		} else {
			b.answer(r, r.result)
		}
	}
	// Drop references so answered callers' closures can be collected.
	clear(b.reqs)
	b.reqs, b.tx = b.reqs[:0], nil
}

// answer gives r its outcome once; an early answer cannot be taken back.
func (b *batch) answer(r *request, err error) {
	if !r.answered {
		r.answered = true
		r.err <- err
	}
}

// safeCall turns a panic in an update closure into that update's error, so
// one bad caller cannot take down the committer and every other writer.
func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("run store update: %w: %v", ErrPanicked, p)
		}
	}()
	return fn(tx)
}
