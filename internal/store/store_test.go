package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var testBucket = []byte("test")

// openTemp opens a store under t.TempDir and, at cleanup, closes it and
// checks the file. (storetest.OpenTemp does the same but cannot be used here:
// it imports this package.)
func openTemp(tb testing.TB, opts Options) *DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "store.db")
	db, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		checkFile(tb, path)
	})
	return db
}

func checkFile(tb testing.TB, path string) {
	tb.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		tb.Fatalf("reopen %s: %v", path, err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		tb.Errorf("Check(%s): %v", path, err)
	}
}

func put(key, value string) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(testBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte(value))
	}
}

// get returns the value of key, or "" with ok false when absent.
func get(tb testing.TB, db *DB, key string) (value string, ok bool) {
	tb.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(testBucket)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			value, ok = string(v), true
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("View: %v", err)
	}
	return value, ok
}

// blockCommitter occupies the committer with an update that waits until the
// returned release is called, so that the test can queue updates that will
// then all land in the next batch.
func blockCommitter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started := make(chan struct{})
	unblock := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var once sync.Once
		done <- db.Update(context.Background(), func(tx *bolt.Tx) error {
			once.Do(func() { close(started) })
			<-unblock
			return nil
		})
	}()
	<-started
	// The blocker shares its batch with what is queued when it is released,
	// so its own answer may come late: it is checked at cleanup.
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("blocking update: %v", err)
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(unblock) }) }
}

// waitQueued waits until n requests wait in the committer's queue.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(db.requests) < n {
		if time.Now().After(deadline) {
			t.Fatalf("queued requests = %d; want %d", len(db.requests), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentUpdatesSurviveReopen(t *testing.T) {
	const writers, perWriter = 32, 25
	db := openTemp(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				k := fmt.Sprintf("w%02d-%03d", w, i)
				errs <- db.Update(context.Background(), put(k, k))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	path := db.Path()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	re, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer re.Close()
	for w := range writers {
		for i := range perWriter {
			k := fmt.Sprintf("w%02d-%03d", w, i)
			if v, ok := get(t, re, k); !ok || v != k {
				t.Errorf("after reopen, %s = %q, %v; want %q, true", k, v, ok, k)
			}
		}
	}
}

func TestFailingUpdateIsIsolated(t *testing.T) {
	var commits []int
	db := openTemp(t, Options{OnCommit: func(n int, _ time.Duration) { commits = append(commits, n) }})
	errBad := errors.New("bad update")

	tests := []struct {
		name    string
		bad     func(*bolt.Tx) error
		wantErr func(error) bool
	}{
		{
			name: "error",
			bad: func(tx *bolt.Tx) error {
				if err := put("bad-error", "x")(tx); err != nil {
					return err
				}
				return errBad
			},
			wantErr: func(err error) bool { return errors.Is(err, errBad) },
		},
		{
			name: "panic",
			bad: func(tx *bolt.Tx) error {
				if err := put("bad-panic", "x")(tx); err != nil {
					return err
				}
				panic("boom")
			},
			wantErr: func(err error) bool { return errors.Is(err, ErrPanicked) && strings.Contains(err.Error(), "boom") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			commits = commits[:0]
			release := blockCommitter(t, db)
			// good-1 and good-2 surround the bad update in one batch.
			results := make([]chan error, 3)
			fns := []func(*bolt.Tx) error{put(tt.name+"-good-1", "1"), tt.bad, put(tt.name+"-good-2", "2")}
			for i, fn := range fns {
				results[i] = make(chan error, 1)
				go func() { results[i] <- db.Update(context.Background(), fn) }()
				waitQueued(t, db, i+1)
			}
			release()

			for i, want := range []bool{true, false, true} {
				err := <-results[i]
				if want && err != nil {
					t.Errorf("update %d: got %v; want nil", i, err)
				}
				if !want && (err == nil || !tt.wantErr(err)) {
					t.Errorf("bad update: got %v; want its own error", err)
				}
			}
			for _, k := range []string{tt.name + "-good-1", tt.name + "-good-2"} {
				if _, ok := get(t, db, k); !ok {
					t.Errorf("%s missing; a failing neighbour must not lose it", k)
				}
			}
			if _, ok := get(t, db, "bad-"+tt.name); ok {
				t.Errorf("bad-%s present; a failing update's writes must be discarded", tt.name)
			}
			// The blocker and the two good updates share one batch.
			if want := []int{3}; fmt.Sprint(commits) != fmt.Sprint(want) {
				t.Errorf("batch sizes = %v; want %v", commits, want)
			}
		})
	}
}

func TestCloseDrainsQueuedUpdates(t *testing.T) {
	const n = 50
	db := openTemp(t, Options{})
	release := blockCommitter(t, db)
	results := make(chan error, n)
	for i := range n {
		go func() { results <- db.Update(context.Background(), put(fmt.Sprint("k", i), "v")) }()
	}
	waitQueued(t, db, n)

	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	// Release the committer only once Close has stopped accepting updates.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		db.mu.RLock()
		c := db.closed
		db.mu.RUnlock()
		if c {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not mark the store closed")
		}
	}
	if err := db.Update(context.Background(), put("late", "v")); !errors.Is(err, ErrClosed) {
		t.Errorf("Update during Close: got %v; want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range n {
		if err := <-results; err != nil {
			t.Errorf("queued Update: got %v; want nil", err)
		}
	}

	re, err := Open(db.Path(), Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer re.Close()
	for i := range n {
		if _, ok := get(t, re, fmt.Sprint("k", i)); !ok {
			t.Errorf("k%d missing after Close; queued updates must be committed", i)
		}
	}
	if _, ok := get(t, re, "late"); ok {
		t.Error("late update was committed after Close")
	}
}

func TestAfterClose(t *testing.T) {
	db := openTemp(t, Options{})
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: got %v; want nil", err)
	}
	if err := db.Update(context.Background(), put("k", "v")); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: got %v; want ErrClosed", err)
	}
	if err := db.View(func(*bolt.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("View after Close: got %v; want ErrClosed", err)
	}
}

func TestOpenLocked(t *testing.T) {
	db := openTemp(t, Options{})
	start := time.Now()
	_, err := Open(db.Path(), Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a locked file: got %v; want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), db.Path()) || !strings.Contains(err.Error(), "locked") {
		t.Errorf("error %q should name the file and say it is locked", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Open took %v; want it to give up after its 50ms timeout", took)
	}
}

func TestUpdatesShareCommits(t *testing.T) {
	const writers, perWriter = 64, 10
	var commits, updates atomic.Int64
	db := openTemp(t, Options{OnCommit: func(n int, _ time.Duration) {
		commits.Add(1)
		updates.Add(int64(n))
	}})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if err := db.Update(context.Background(), put(fmt.Sprint(w, "-", i), "v")); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d updates failed", failed.Load())
	}
	if got := updates.Load(); got != writers*perWriter {
		t.Errorf("OnCommit counted %d updates; want %d", got, writers*perWriter)
	}
	if got := commits.Load(); got >= writers*perWriter {
		t.Errorf("%d commits for %d concurrent updates; want fewer (group commit)", got, writers*perWriter)
	}
	t.Logf("%d updates in %d commits", updates.Load(), commits.Load())
}

func TestUpdateContext(t *testing.T) {
	t.Run("already cancelled", func(t *testing.T) {
		db := openTemp(t, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		// Repeated: a select between a ready send and a done ctx is random.
		for i := range 50 {
			if err := db.Update(ctx, put(fmt.Sprint("k", i), "v")); !errors.Is(err, context.Canceled) {
				t.Fatalf("Update with cancelled ctx: got %v; want context.Canceled", err)
			}
		}
		for i := range 50 {
			if _, ok := get(t, db, fmt.Sprint("k", i)); ok {
				t.Fatalf("k%d written by an update whose ctx was already cancelled", i)
			}
		}
	})
	t.Run("cancelled while queued", func(t *testing.T) {
		db := openTemp(t, Options{})
		release := blockCommitter(t, db)
		ctx, cancel := context.WithCancel(context.Background())
		result := make(chan error, 1)
		go func() { result <- db.Update(ctx, put("queued", "v")) }()
		waitQueued(t, db, 1)
		cancel()
		if err := <-result; !errors.Is(err, context.Canceled) {
			t.Errorf("Update cancelled while queued: got %v; want context.Canceled", err)
		}
		release()
		// A later update commits only after the abandoned one was skipped.
		if err := db.Update(context.Background(), put("after", "v")); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if _, ok := get(t, db, "queued"); ok {
			t.Error("an update abandoned before it was picked up was committed")
		}
	})
	t.Run("cancelled while committing", func(t *testing.T) {
		db := openTemp(t, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		err := db.Update(ctx, func(tx *bolt.Tx) error {
			cancel() // the update is already taken: it must still commit
			return put("taken", "v")(tx)
		})
		if err != nil {
			t.Errorf("Update whose ctx ended after pickup: got %v; want nil", err)
		}
		if _, ok := get(t, db, "taken"); !ok {
			t.Error("update that reported success is not in the store")
		}
	})
}

// BenchmarkUpdateParallel measures durable single-key writes from many
// goroutines through group commit.
func BenchmarkUpdateParallel(b *testing.B) {
	var commits atomic.Int64
	db := openTemp(b, Options{OnCommit: func(int, time.Duration) { commits.Add(1) }})
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := fmt.Sprint(n.Add(1))
			if err := db.Update(context.Background(), put(k, k)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(commits.Load()), "updates/commit")
}

// BenchmarkBoltUpdateEach is the baseline: the same writes, each its own
// bolt.Update and fsync.
func BenchmarkBoltUpdateEach(b *testing.B) {
	benchmarkBolt(b, (*bolt.DB).Update)
}

// BenchmarkBoltBatch is bbolt's own DB.Batch, for reference: it also groups
// writes, but waits up to MaxBatchDelay (10ms) to fill a batch.
func BenchmarkBoltBatch(b *testing.B) {
	benchmarkBolt(b, (*bolt.DB).Batch)
}

func benchmarkBolt(b *testing.B, update func(*bolt.DB, func(*bolt.Tx) error) error) {
	path := filepath.Join(b.TempDir(), "bolt.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := fmt.Sprint(n.Add(1))
			if err := update(db, put(k, k)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestApplyAnswersBeforeCommit shows Apply returns once its function has run,
// while its batch is still uncommitted, and that the write then becomes
// durable with the batch.
func TestApplyAnswersBeforeCommit(t *testing.T) {
	db := openTemp(t, Options{})
	release := blockCommitter(t, db)

	applied := make(chan error, 1)
	go func() { applied <- db.Apply(context.Background(), put("token", "used")) }()
	waitQueued(t, db, 1)
	// The next update in the same batch holds the transaction open.
	hold := make(chan struct{})
	updated := make(chan error, 1)
	go func() {
		updated <- db.Update(context.Background(), func(tx *bolt.Tx) error {
			<-hold
			return put("cert", "stored")(tx)
		})
	}()
	waitQueued(t, db, 2)
	release()

	select {
	case err := <-applied:
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Apply did not return while its batch was still open")
	}
	if _, ok := get(t, db, "token"); ok {
		t.Fatal("Apply's write is visible before its batch committed")
	}
	select {
	case err := <-updated:
		t.Fatalf("Update returned (%v) before its batch committed", err)
	default:
	}
	close(hold)
	if err := <-updated; err != nil {
		t.Fatalf("Update: %v", err)
	}
	if v, ok := get(t, db, "token"); !ok || v != "used" {
		t.Errorf("token = %q, %v after the batch committed; want used, true", v, ok)
	}
}

// TestRefuseDoesNotRerunBatch shows a refusal reaches its caller without
// rolling back or re-running the other updates of its batch.
func TestRefuseDoesNotRerunBatch(t *testing.T) {
	db := openTemp(t, Options{})
	release := blockCommitter(t, db)
	errUsed := errors.New("already used")
	var runs atomic.Int32
	results := make(chan error, 3)
	go func() {
		results <- db.Update(context.Background(), func(tx *bolt.Tx) error {
			runs.Add(1)
			return put("a", "1")(tx)
		})
	}()
	waitQueued(t, db, 1)
	go func() {
		results <- db.Apply(context.Background(), func(*bolt.Tx) error { return Refuse(errUsed) })
	}()
	waitQueued(t, db, 2)
	go func() { results <- db.Update(context.Background(), func(*bolt.Tx) error { return Refuse(errUsed) }) }()
	waitQueued(t, db, 3)
	release()

	var refused int
	for range 3 {
		err := <-results
		switch {
		case errors.Is(err, errUsed):
			refused++
		case err != nil:
			t.Errorf("unexpected error %v", err)
		}
	}
	if refused != 2 {
		t.Errorf("%d refusals reached their callers; want 2", refused)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the other update ran %d times; want 1 (refusals must not re-run the batch)", n)
	}
	if v, ok := get(t, db, "a"); !ok || v != "1" {
		t.Errorf("a = %q, %v; want 1, true", v, ok)
	}
}

// TestLingerOnlyUnderLoad shows that a lone writer on an idle store commits
// at once, and that once batches are shared the committer waits (here up to
// an hour) for more updates to fill the next batch.
func TestLingerOnlyUnderLoad(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	db := openTemp(t, Options{MaxBatch: 2, Linger: time.Hour, OnCommit: func(n int, _ time.Duration) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}})
	ctx := context.Background()
	// Idle: no lingering, or this would wait an hour.
	if err := db.Update(ctx, put("idle", "1")); err != nil {
		t.Fatal(err)
	}

	// A shared batch (the blocker and a) puts the store under load.
	release := blockCommitter(t, db)
	errs := make(chan error, 4)
	go func() { errs <- db.Update(ctx, put("a", "1")) }()
	waitQueued(t, db, 1)
	release()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}

	// Now c lingers until d fills its batch.
	go func() { errs <- db.Update(ctx, put("c", "1")) }()
	select {
	case err := <-errs:
		t.Fatalf("c committed alone (%v); want it to wait for a fuller batch", err)
	case <-time.After(50 * time.Millisecond):
	}
	go func() { errs <- db.Update(ctx, put("d", "1")) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, 2, 2}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("commit sizes %v; want %v (idle, blocker+a, c+d)", sizes, want)
	}
}
