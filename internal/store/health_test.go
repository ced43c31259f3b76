package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// TestHealthFollowsCommits: a store that cannot commit reports it through
// Health and CommitErrors, a failed update does not, a commit that works
// again clears it, and Close ends it for good.
func TestHealthFollowsCommits(t *testing.T) {
	db := openTemp(t, Options{})
	ctx := context.Background()
	if err := db.Health(); err != nil {
		t.Fatalf("Health of a new store = %v", err)
	}
	if err := db.Update(ctx, put("a", "1")); err != nil {
		t.Fatal(err)
	}
	// An update that fails is its caller's error, not the store's.
	if err := db.Update(ctx, func(*bolt.Tx) error { return errors.New("no") }); err == nil {
		t.Fatal("failing update succeeded")
	}
	if err := db.Health(); err != nil || db.CommitErrors() != 0 {
		t.Fatalf("after a failed update: Health = %v, CommitErrors = %d; want nil, 0", err, db.CommitErrors())
	}

	// The file goes away under the committer: nothing can commit. (The
	// channel operations of Update order these writes of db.bolt before
	// the committer's reads.)
	path := db.bolt.Path()
	if err := db.bolt.Close(); err != nil {
		t.Fatal(err)
	}
	err := db.Update(ctx, put("b", "2"))
	if !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Fatalf("Update on a closed file = %v; want ErrDatabaseNotOpen", err)
	}
	if herr := db.Health(); !errors.Is(herr, berrors.ErrDatabaseNotOpen) {
		t.Errorf("Health after a failed commit = %v; want the commit's error", herr)
	}
	if n := db.CommitErrors(); n != 1 {
		t.Errorf("CommitErrors = %d; want 1", n)
	}

	// The file is back: the next commit clears the error.
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db.bolt = b
	if err := db.Update(ctx, put("c", "3")); err != nil {
		t.Fatal(err)
	}
	if err := db.Health(); err != nil {
		t.Errorf("Health after a good commit = %v; want nil", err)
	}
	if n := db.CommitErrors(); n != 1 {
		t.Errorf("CommitErrors = %d; want still 1", n)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Health(); !errors.Is(err, ErrClosed) {
		t.Errorf("Health after Close = %v; want ErrClosed", err)
	}
}

// TestHealthStalledCommit: a commit running longer than StallAfter makes
// the store unhealthy.
func TestHealthStalledCommit(t *testing.T) {
	db := openTemp(t, Options{})
	db.commitStarted.Store(time.Now().Add(-StallAfter - time.Second).UnixNano())
	if err := db.Health(); !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "running for") {
		t.Errorf("Health with a stalled commit = %v; want a stall", err)
	}
	db.commitStarted.Store(time.Now().UnixNano())
	if err := db.Health(); err != nil {
		t.Errorf("Health with a fresh commit under way = %v; want nil", err)
	}
	db.commitStarted.Store(0)
}
