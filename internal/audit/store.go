package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
)

// entryStore is everything [Log] keeps. The bbolt implementation below is
// the embedded default; a PostgreSQL one (a bigserial key, an index on
// action, target, actor and org) can take its place without touching the
// rest.
type entryStore interface {
	// append stores es in order, all or none, setting each one's Seq, and
	// returns once they are durable.
	append(ctx context.Context, es []Entry) error
	// list returns the entries with Seq < q.Before (all when 0) that match
	// q's filters, newest first, at most q.Limit (which is positive) of
	// them, examining at most maxScan entries.
	list(ctx context.Context, q Query, maxScan int) (Page, error)
	// len returns the number of entries.
	len(ctx context.Context) (int, error)
}

// bucketEntries maps the big-endian uint64 sequence number to the entry as
// JSON (record). The prefix keeps it apart from other packages' buckets in
// the shared file.
var bucketEntries = []byte("audit/entries")

// record is an entry as stored: its Seq is the key.
type record struct {
	Time   time.Time         `json:"time"`
	Actor  string            `json:"actor,omitempty"`
	Org    string            `json:"org,omitempty"`
	Action string            `json:"action"`
	Target string            `json:"target,omitempty"`
	Result string            `json:"result"`
	Source string            `json:"source,omitempty"`
	Detail map[string]string `json:"detail,omitempty"`
}

type boltStore struct {
	db *store.DB
}

func newBoltStore(ctx context.Context, db *store.DB) (*boltStore, error) {
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketEntries, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &boltStore{db: db}, nil
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

func (s *boltStore) append(ctx context.Context, es []Entry) error {
	// Encoded here, not in the update: the committer runs updates one after
	// another, so the less each does the more callers a commit serves.
	vals := make([][]byte, len(es))
	for i, e := range es {
		v, err := json.Marshal(record{
			Time: e.Time, Actor: e.Actor, Org: e.Org, Action: e.Action, Target: e.Target,
			Result: e.Result, Source: e.Source, Detail: e.Detail,
		})
		if err != nil {
			return fmt.Errorf("encode audit entry: %w", err)
		}
		vals[i] = v
	}
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		// The update may run again if another in its batch fails: every
		// Seq is set afresh each time (and the sequence was rolled back
		// with the failed transaction).
		for i := range es {
			seq, err := b.NextSequence()
			if err != nil {
				return fmt.Errorf("next audit sequence: %w", err)
			}
			if err := b.Put(seqKey(seq), vals[i]); err != nil {
				return fmt.Errorf("put audit entry: %w", err)
			}
			es[i].Seq = seq
		}
		return nil
	})
}

// ctxCheckEvery is how many entries list examines between looks at ctx.
const ctxCheckEvery = 1024

func (s *boltStore) list(ctx context.Context, q Query, maxScan int) (Page, error) {
	var page Page
	err := s.db.View(func(tx *bolt.Tx) error {
		page = Page{Entries: make([]Entry, 0, min(q.Limit, 128))}
		c := tx.Bucket(bucketEntries).Cursor()
		var k, v []byte
		if q.Before == 0 {
			k, v = c.Last()
		} else if k, _ = c.Seek(seqKey(q.Before)); k == nil {
			// Before is past the newest entry: start from the newest.
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		filtered := q.Action != "" || q.Target != "" || q.Actor != "" || q.Org != ""
		var last uint64
		for scanned := 0; k != nil; k, v = c.Prev() {
			// Another entry exists here: a full page or a spent scan says
			// where to continue.
			if len(page.Entries) == q.Limit || scanned == maxScan {
				page.Next = last
				return nil
			}
			if scanned%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			scanned++
			if len(k) != 8 {
				return fmt.Errorf("audit entry with a key of %d bytes", len(k))
			}
			last = binary.BigEndian.Uint64(k)
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode audit entry %d: %w", last, err)
			}
			if filtered && (q.Action != "" && r.Action != q.Action ||
				q.Target != "" && r.Target != q.Target ||
				q.Actor != "" && r.Actor != q.Actor ||
				q.Org != "" && r.Org != q.Org) {
				continue
			}
			page.Entries = append(page.Entries, Entry{
				Seq: last, Time: r.Time, Actor: r.Actor, Org: r.Org, Action: r.Action, Target: r.Target,
				Result: r.Result, Source: r.Source, Detail: r.Detail,
			})
		}
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	return page, nil
}

func (s *boltStore) len(_ context.Context) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEntries).Stats().KeyN
		return nil
	})
	return n, err
}
