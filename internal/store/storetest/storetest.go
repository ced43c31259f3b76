// Package storetest opens throwaway stores for tests and checks them when the
// test ends, like bbolt's own internal/btesting.
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/gwpki/gwpki/internal/store"
)

// OpenTemp opens a store in a file under tb.TempDir(). At cleanup it closes the
// store (if the test has not) and fails the test if the file is not
// consistent, so every test that writes also checks bbolt's invariants.
func OpenTemp(tb testing.TB) *store.DB {
	tb.Helper()
	return OpenTempWith(tb, store.Options{})
}

// OpenTempWith is [OpenTemp] with explicit options.
func OpenTempWith(tb testing.TB, opts store.Options) *store.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "store.db")
	db, err := store.Open(path, opts)
	if err != nil {
		tb.Fatalf("open temporary store: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close temporary store: %v", err)
			return
		}
		// Reopen so the check sees exactly what reached the file.
		check, err := store.Open(path, opts)
		if err != nil {
			tb.Errorf("reopen temporary store for check: %v", err)
			return
		}
		defer check.Close()
		if err := check.Check(); err != nil {
			tb.Errorf("store %s is inconsistent: %v", path, err)
		}
	})
	return db
}
