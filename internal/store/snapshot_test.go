package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

// TestSnapshot copies a database while writers keep committing: every copy
// opens, passes bbolt's check, and holds every write acknowledged before the
// copy began.
func TestSnapshot(t *testing.T) {
	db := storetest.OpenTemp(t)
	ctx := context.Background()
	put := func(i int) error {
		return db.Update(ctx, func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("kv"))
			if err != nil {
				return err
			}
			return b.Put(fmt.Appendf(nil, "k%06d", i), bytes.Repeat([]byte{byte(i)}, 100))
		})
	}
	for i := range 500 {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 500; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := put(i); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for round := range 3 {
		var buf bytes.Buffer
		n, err := db.Snapshot(&buf)
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		if n != int64(buf.Len()) {
			t.Errorf("Snapshot returned %d; wrote %d bytes", n, buf.Len())
		}
		path := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		cp, err := store.Open(path, store.Options{})
		if err != nil {
			t.Fatalf("open copy %d: %v", round, err)
		}
		if err := cp.Check(); err != nil {
			t.Errorf("copy %d: Check: %v", round, err)
		}
		if err := cp.View(func(tx *bolt.Tx) error {
			for i := range 500 {
				if tx.Bucket([]byte("kv")).Get(fmt.Appendf(nil, "k%06d", i)) == nil {
					return fmt.Errorf("no k%06d", i)
				}
			}
			return nil
		}); err != nil {
			t.Errorf("copy %d: %v", round, err)
		}
		cp.Close()
	}
	close(stop)
	wg.Wait()

	db2 := storetest.OpenTemp(t)
	db2.Close()
	if _, err := db2.Snapshot(&bytes.Buffer{}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Snapshot after Close: %v; want ErrClosed", err)
	}
}
