package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
)

// recorder is a testing.TB whose cleanups and errors the test inspects.
type recorder struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(f string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }
func (r *recorder) Fatalf(f string, a ...any) { r.TB.Fatalf(f, a...) }

func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func write(t *testing.T, db *store.DB) {
	t.Helper()
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func TestOpenTempClosesAndChecks(t *testing.T) {
	rec := &recorder{TB: t}
	db := OpenTemp(rec)
	write(t, db)
	rec.runCleanups()
	if len(rec.errs) != 0 {
		t.Errorf("cleanup of a healthy store reported %q; want nothing", rec.errs)
	}
	if err := db.Update(context.Background(), func(*bolt.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after cleanup: got %v; want ErrClosed", err)
	}
}

func TestOpenTempReportsCorruption(t *testing.T) {
	rec := &recorder{TB: t}
	db := OpenTemp(rec)
	// Enough data that the bucket gets pages of its own rather than living
	// inline in its parent.
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		for i := range 200 {
			if err := b.Put(fmt.Appendf(nil, "key-%03d", i), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var root int64
	if err := db.View(func(tx *bolt.Tx) error { root = int64(tx.Bucket([]byte("b")).Root()); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Overwrite the bucket's root page; the meta and freelist pages stay
	// valid, so the file still opens and only a check can tell.
	f, err := os.OpenFile(db.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, os.Getpagesize())
	for i := range garbage {
		garbage[i] = 0xA5
	}
	if _, err := f.WriteAt(garbage, root*int64(len(garbage))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rec.runCleanups()
	if len(rec.errs) == 0 {
		t.Error("cleanup of a corrupted store reported nothing; want an inconsistency")
	}
	t.Logf("reported: %q", rec.errs)
}
