package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
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

// bucketByTarget indexes the entries by target: the key is the target, a
// 0x00 byte and the entry's big-endian sequence number; the value is empty.
// A target's keys are contiguous and in sequence order, so a page for one
// target is a reverse cursor walk over its own keys. Entries with no target,
// or a target holding a 0x00 byte (which would break the order of the
// keys), are not indexed; a query for such a target scans the log.
var bucketByTarget = []byte("audit/by-target")

// bucketMeta holds the store's bookkeeping: keyTargetIndexed.
var bucketMeta = []byte("audit/meta")

// keyTargetIndexed holds, big-endian, the sequence number N such that
// every entry up to N is in bucketByTarget: the backfill's record of its
// work, so it never reruns. Appends advance it in the same transaction, but
// only contiguously (when it already covers everything before them), so
// entries written by an older gwpki, which knows nothing of the index, stay
// above it and are indexed at the next open. Absent: nothing is known to be
// indexed (a file from before the index).
var keyTargetIndexed = []byte("by-target-indexed-through")

// backfillBatch is how many entries one backfill transaction indexes.
const backfillBatch = 20000

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
	// reads counts the entries list has decoded, for tests.
	reads atomic.Int64
}

func newBoltStore(ctx context.Context, db *store.DB) (*boltStore, error) {
	var through, last uint64
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketEntries, bucketByTarget, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		through, last = indexedThrough(tx), 0
		if k, _ := tx.Bucket(bucketEntries).Cursor().Last(); len(k) == 8 {
			last = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s := &boltStore{db: db}
	if through < last {
		if err := s.backfill(ctx, through+1); err != nil {
			return nil, fmt.Errorf("index audit entries by target: %w", err)
		}
	}
	return s, nil
}

// indexedThrough returns keyTargetIndexed, 0 when absent.
func indexedThrough(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyTargetIndexed); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// advanceIndexed sets keyTargetIndexed to through when the entries from
// from to through have just been indexed and it covers everything before
// from; it never moves it back.
func advanceIndexed(tx *bolt.Tx, from, through uint64) error {
	cur := indexedThrough(tx)
	if cur+1 < from || through <= cur && tx.Bucket(bucketMeta).Get(keyTargetIndexed) != nil {
		return nil
	}
	if err := tx.Bucket(bucketMeta).Put(keyTargetIndexed, seqKey(through)); err != nil {
		return fmt.Errorf("put audit index mark: %w", err)
	}
	return nil
}

// backfill indexes the entries from from on, which were written without
// the index (by a gwpki that predates it), in transactions of
// backfillBatch entries, each advancing keyTargetIndexed, so an interrupted
// backfill resumes where it stopped. Index keys are derived from the
// entries, so indexing one twice writes the same key.
func (s *boltStore) backfill(ctx context.Context, from uint64) error {
	for {
		var next uint64
		var done bool
		err := s.db.Update(ctx, func(tx *bolt.Tx) error {
			next, done = from, false
			entries, idx := tx.Bucket(bucketEntries), tx.Bucket(bucketByTarget)
			c := entries.Cursor()
			k, v := c.Seek(seqKey(from))
			for n := 0; k != nil && n < backfillBatch; k, v = c.Next() {
				n++
				if len(k) != 8 {
					return fmt.Errorf("audit entry with a key of %d bytes", len(k))
				}
				seq := binary.BigEndian.Uint64(k)
				next = seq + 1
				var r record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("decode audit entry %d: %w", seq, err)
				}
				if !indexable(r.Target) {
					continue
				}
				if err := idx.Put(targetKey(r.Target, seq), nil); err != nil {
					return fmt.Errorf("put audit index entry: %w", err)
				}
			}
			done = k == nil
			return advanceIndexed(tx, from, next-1)
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		from = next
	}
}

// indexable reports whether entries about target go into bucketByTarget.
func indexable(target string) bool {
	return target != "" && !strings.Contains(target, "\x00")
}

// targetKey returns the bucketByTarget key of the entry seq about target.
func targetKey(target string, seq uint64) []byte {
	k := make([]byte, 0, len(target)+9)
	k = append(k, target...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
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
		b, idx := tx.Bucket(bucketEntries), tx.Bucket(bucketByTarget)
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
			if indexable(es[i].Target) {
				if err := idx.Put(targetKey(es[i].Target, seq), nil); err != nil {
					return fmt.Errorf("put audit index entry: %w", err)
				}
			}
			es[i].Seq = seq
		}
		return advanceIndexed(tx, es[0].Seq, es[len(es)-1].Seq)
	})
}

// ctxCheckEvery is how many entries list examines between looks at ctx.
const ctxCheckEvery = 1024

func (s *boltStore) list(ctx context.Context, q Query, maxScan int) (Page, error) {
	var page Page
	err := s.db.View(func(tx *bolt.Tx) error {
		page = Page{Entries: make([]Entry, 0, min(q.Limit, 128))}
		var w walker
		if indexable(q.Target) {
			w = newTargetWalker(tx, q.Target, q.Before)
		} else {
			w = newSeqWalker(tx, q.Before)
		}
		filtered := q.Action != "" || q.Target != "" || q.Actor != "" || q.Org != ""
		var last uint64
		for scanned := 0; ; scanned++ {
			seq, v, ok, err := w.next()
			if err != nil || !ok {
				return err
			}
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
			last = seq
			s.reads.Add(1)
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
	})
	if err != nil {
		return Page{}, err
	}
	return page, nil
}

// walker yields candidate entries of a page, newest first: their sequence
// number and stored value; ok is false past the last.
type walker interface {
	next() (seq uint64, v []byte, ok bool, err error)
}

// seqWalker walks the whole log from the newest entry below before (from
// the newest when before is 0).
type seqWalker struct {
	c       *bolt.Cursor
	started bool
	before  uint64
}

func newSeqWalker(tx *bolt.Tx, before uint64) *seqWalker {
	return &seqWalker{c: tx.Bucket(bucketEntries).Cursor(), before: before}
}

func (w *seqWalker) next() (uint64, []byte, bool, error) {
	var k, v []byte
	switch {
	case w.started:
		k, v = w.c.Prev()
	case w.before == 0:
		k, v = w.c.Last()
	default:
		if k, _ = w.c.Seek(seqKey(w.before)); k == nil {
			// Before is past the newest entry: start from the newest.
			k, v = w.c.Last()
		} else {
			k, v = w.c.Prev()
		}
	}
	w.started = true
	if k == nil {
		return 0, nil, false, nil
	}
	if len(k) != 8 {
		return 0, nil, false, fmt.Errorf("audit entry with a key of %d bytes", len(k))
	}
	return binary.BigEndian.Uint64(k), v, true, nil
}

// targetWalker walks one target's keys in bucketByTarget from the newest
// below before (from the newest when before is 0), reading each entry.
type targetWalker struct {
	c       *bolt.Cursor
	entries *bolt.Bucket
	prefix  []byte
	before  uint64
	started bool
}

func newTargetWalker(tx *bolt.Tx, target string, before uint64) *targetWalker {
	return &targetWalker{
		c:       tx.Bucket(bucketByTarget).Cursor(),
		entries: tx.Bucket(bucketEntries),
		prefix:  append([]byte(target), 0),
		before:  before,
	}
}

func (w *targetWalker) next() (uint64, []byte, bool, error) {
	var k []byte
	if w.started {
		k, _ = w.c.Prev()
	} else {
		w.started = true
		from := w.before
		if from == 0 {
			from = math.MaxUint64 // never a sequence number: the seek lands past it
		}
		if k, _ = w.c.Seek(targetKey(string(w.prefix[:len(w.prefix)-1]), from)); k == nil {
			k, _ = w.c.Last()
		} else {
			k, _ = w.c.Prev()
		}
	}
	// Only keys of exactly this target: the prefix and 8 bytes. No indexed
	// target holds a 0x00, so no other target's keys share the prefix.
	if k == nil || len(k) != len(w.prefix)+8 || !bytes.HasPrefix(k, w.prefix) {
		return 0, nil, false, nil
	}
	seq := binary.BigEndian.Uint64(k[len(w.prefix):])
	v := w.entries.Get(seqKey(seq))
	if v == nil {
		return 0, nil, false, fmt.Errorf("audit index names entry %d, which is missing", seq)
	}
	return seq, v, true, nil
}

func (s *boltStore) len(_ context.Context) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEntries).Stats().KeyN
		return nil
	})
	return n, err
}
