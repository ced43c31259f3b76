package claim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sort keys of [DeviceQuery.Sort].
const (
	SortSerial     = "serial"
	SortModel      = "model"
	SortState      = "state"
	SortOrg        = "org"
	SortRegistered = "registered"
)

// deviceSorts are the sort keys, in the order of fleetIndex.orders.
var deviceSorts = []string{SortSerial, SortModel, SortState, SortOrg, SortRegistered}

// sortIndex returns the position of sort in deviceSorts ("" is serial), or
// -1 for an unknown key.
func sortIndex(sort string) int {
	if sort == "" {
		return 0
	}
	return slices.Index(deviceSorts, sort)
}

// fleetEntry is one device in the in-memory snapshot. Entries are never
// changed once in the index, except for stale: an update replaces the
// entry and marks the old one stale.
type fleetEntry struct {
	rec deviceRecord
	// serialLower and modelLower are what [DeviceQuery.Search] matches.
	serialLower, modelLower string
	// stale is set, under the index's write lock, once the entry is
	// replaced or removed; the sorted orders drop it when next merged.
	stale bool
}

func newFleetEntry(rec deviceRecord) *fleetEntry {
	return &fleetEntry{rec: rec, serialLower: strings.ToLower(rec.Serial), modelLower: strings.ToLower(rec.Model)}
}

// compareFleet orders entries by the sort key at index sort, then by serial
// (unique), so every order is total and a cursor names one position.
func compareFleet(sort int, a, b *fleetEntry) int {
	var c int
	switch sort {
	case 1:
		c = strings.Compare(a.rec.Model, b.rec.Model)
	case 2:
		c = strings.Compare(a.rec.State, b.rec.State)
	case 3:
		c = strings.Compare(a.rec.Org, b.rec.Org)
	case 4:
		c = a.rec.RegisteredAt.Compare(b.rec.RegisteredAt)
	}
	if c != 0 {
		return c
	}
	return strings.Compare(a.rec.Serial, b.rec.Serial)
}

// fleetIndex is the registry's in-memory snapshot of every device, kept
// sorted by each sort key, so that a sorted, filtered page of GET
// /v1/devices is a scan of memory rather than of the store. The store
// stays the truth: the index is built from it when the registry opens and
// refreshed from it after every write ([indexedStore]).
//
// A write costs a map update: the changed entries wait in pending, and the
// next page merges them into the sorted orders (one linear pass per order,
// about a millisecond for 100,000 devices), so a burst of registrations
// does not pay for keeping five sorted slices in order one insert at a
// time.
type fleetIndex struct {
	mu       sync.RWMutex
	bySerial map[string]*fleetEntry
	// orders holds every current entry once per sort key, ascending, as of
	// the last merge; stale entries may remain until the next.
	orders [5][]*fleetEntry
	// pending are the changes since the last merge, in order; dirty says
	// a merge is due.
	pending []fleetChange
	dirty   bool
}

// build replaces the index's content with recs.
func (x *fleetIndex) build(recs []deviceRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.bySerial = make(map[string]*fleetEntry, len(recs))
	all := make([]*fleetEntry, 0, len(recs))
	for _, rec := range recs {
		e := newFleetEntry(rec)
		x.bySerial[rec.Serial] = e
		all = append(all, e)
	}
	for i := range x.orders {
		o := slices.Clone(all)
		slices.SortFunc(o, func(a, b *fleetEntry) int { return compareFleet(i, a, b) })
		x.orders[i] = o
	}
	x.pending, x.dirty = nil, false
}

// fleetChange is one put or removal waiting for the next merge: old (nil
// for a new device) leaves the orders, new (nil for a removal) joins them.
type fleetChange struct{ old, new *fleetEntry }

// incrementalMerge is the most pending changes merged one by one, with a
// binary search and a move of the slice's tail per order each; more are
// merged in one linear pass per order.
const incrementalMerge = 64

// eagerMerge is how many pending changes a write lets pile up before it
// merges them itself: a bulk registration pays for its merges a batch at a
// time (a few milliseconds per batch), and the page after it finds at most
// this many to merge, rather than the whole batch.
const eagerMerge = 4096

// put adds rec to the index, or replaces the entry of its serial.
func (x *fleetIndex) put(rec deviceRecord) {
	e := newFleetEntry(rec)
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.bySerial[rec.Serial]
	if old != nil {
		old.stale = true
	}
	x.bySerial[rec.Serial] = e
	x.pending = append(x.pending, fleetChange{old: old, new: e})
	x.dirty = true
	if len(x.pending) >= eagerMerge {
		x.merge()
	}
}

// remove drops serial from the index (the store never deletes a device
// today; kept so that the index follows the store whatever it does).
func (x *fleetIndex) remove(serial string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.bySerial[serial]; old != nil {
		old.stale = true
		delete(x.bySerial, serial)
		x.pending = append(x.pending, fleetChange{old: old})
		x.dirty = true
		if len(x.pending) >= eagerMerge {
			x.merge()
		}
	}
}

// merge brings the sorted orders up to date: it drops stale entries and
// merges the pending ones in. The caller holds the write lock.
func (x *fleetIndex) merge() {
	defer func() { x.pending, x.dirty = nil, false }()
	if len(x.pending) <= incrementalMerge {
		for i, o := range x.orders {
			cmpFleet := func(a, b *fleetEntry) int { return compareFleet(i, a, b) }
			for _, c := range x.pending {
				// An old entry that never reached the orders (replaced
				// twice between merges) is not found; a new one that
				// was replaced since is not added.
				if c.old != nil {
					if j, found := slices.BinarySearchFunc(o, c.old, cmpFleet); found && o[j] == c.old {
						o = slices.Delete(o, j, j+1)
					}
				}
				if c.new != nil && !c.new.stale {
					j, _ := slices.BinarySearchFunc(o, c.new, cmpFleet)
					o = slices.Insert(o, j, c.new)
				}
			}
			x.orders[i] = o
		}
		return
	}
	fresh := make([]*fleetEntry, 0, len(x.pending))
	for _, c := range x.pending {
		if c.new != nil && !c.new.stale {
			fresh = append(fresh, c.new)
		}
	}
	for i, o := range x.orders {
		slices.SortFunc(fresh, func(a, b *fleetEntry) int { return compareFleet(i, a, b) })
		out := make([]*fleetEntry, 0, len(x.bySerial))
		j := 0
		for _, e := range o {
			if e.stale {
				continue
			}
			for j < len(fresh) && compareFleet(i, fresh[j], e) < 0 {
				out = append(out, fresh[j])
				j++
			}
			out = append(out, e)
		}
		x.orders[i] = append(out, fresh[j:]...)
	}
}

// page answers q, which is validated, with its Limit set and its cursor
// decoded into pos (nil for the first page). It scans memory without a
// bound: a filter that matches little costs a pass over the slice, which
// for 100,000 devices is a few milliseconds.
func (x *fleetIndex) page(q DeviceQuery, sort int, pos *fleetEntry) DevicePage {
	var search string
	if q.Search != "" {
		search = strings.ToLower(q.Search)
	}
	match := func(e *fleetEntry) bool {
		r := &e.rec
		return (q.State == "" || r.State == q.State) && (q.Model == "" || r.Model == q.Model) &&
			(q.Org == "" || r.Org == q.Org) &&
			(search == "" || strings.Contains(e.serialLower, search) || strings.Contains(e.modelLower, search))
	}
	x.mu.RLock()
	if x.dirty {
		// Writes since the last page: merge them, and answer under the
		// write lock rather than let another write slip in between.
		x.mu.RUnlock()
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.dirty {
			x.merge()
		}
	} else {
		defer x.mu.RUnlock()
	}
	o := x.orders[sort]
	page := DevicePage{Devices: make([]Device, 0, min(q.Limit, 128))}
	var last *fleetEntry
	visit := func(e *fleetEntry) bool {
		if !match(e) {
			return true
		}
		if len(page.Devices) == q.Limit {
			// Another match follows a full page.
			page.Next = encodeDeviceCursor(q, sort, last)
			return false
		}
		page.Devices = append(page.Devices, e.rec.device())
		last = e
		return true
	}
	cmpPos := func(a, b *fleetEntry) int { return compareFleet(sort, a, b) }
	if !q.Desc {
		start := 0
		if pos != nil {
			// The first entry after pos.
			j, found := slices.BinarySearchFunc(o, pos, cmpPos)
			if found {
				j++
			}
			start = j
		}
		for _, e := range o[start:] {
			if !visit(e) {
				break
			}
		}
		return page
	}
	end := len(o)
	if pos != nil {
		// Entries before pos, walked backwards.
		end, _ = slices.BinarySearchFunc(o, pos, cmpPos)
	}
	for i := end - 1; i >= 0; i-- {
		if !visit(o[i]) {
			break
		}
	}
	return page
}

// cursorPrefix starts every opaque cursor; no serial starts with it, so a
// plain serial is told apart.
const cursorPrefix = "~"

// deviceCursor is the content of an opaque cursor: the sort and order it
// belongs to and the last device of the page (its sort key and serial).
type deviceCursor struct {
	Sort   string `json:"s"`
	Desc   bool   `json:"d,omitempty"`
	Key    string `json:"k"`
	Serial string `json:"n"`
}

// encodeDeviceCursor returns the DevicePage.Next after e. Sorted by serial,
// that is the serial itself, as before sorting existed; otherwise an opaque
// cursor.
func encodeDeviceCursor(q DeviceQuery, sort int, e *fleetEntry) string {
	if sort == 0 {
		return e.rec.Serial
	}
	c := deviceCursor{Sort: deviceSorts[sort], Desc: q.Desc, Serial: e.rec.Serial}
	switch sort {
	case 1:
		c.Key = e.rec.Model
	case 2:
		c.Key = e.rec.State
	case 3:
		c.Key = e.rec.Org
	case 4:
		c.Key = strconv.FormatInt(e.rec.RegisteredAt.UnixNano(), 10)
	}
	b, _ := json.Marshal(c)
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// errBadCursor is wrapped by [decodeDeviceCursor]'s errors.
var errBadCursor = errors.New("after is not a next of a previous page with this sort and order")

// decodeDeviceCursor turns after into the position to continue from: a
// plain serial (sorted by serial only) or an opaque cursor of the same sort
// and order.
func decodeDeviceCursor(after string, sort int, desc bool) (*fleetEntry, error) {
	if after == "" {
		return nil, nil
	}
	if !strings.HasPrefix(after, cursorPrefix) {
		if sort != 0 {
			return nil, errBadCursor
		}
		return &fleetEntry{rec: deviceRecord{Serial: after}}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(after[len(cursorPrefix):])
	var c deviceCursor
	if err != nil || json.Unmarshal(b, &c) != nil || c.Sort != deviceSorts[sort] || c.Desc != desc {
		return nil, errBadCursor
	}
	e := &fleetEntry{rec: deviceRecord{Serial: c.Serial}}
	switch sort {
	case 1:
		e.rec.Model = c.Key
	case 2:
		e.rec.State = c.Key
	case 3:
		e.rec.Org = c.Key
	case 4:
		n, err := strconv.ParseInt(c.Key, 10, 64)
		if err != nil {
			return nil, errBadCursor
		}
		e.rec.RegisteredAt = time.Unix(0, n).UTC()
	}
	return e, nil
}

// indexedStore keeps a fleetIndex in step with the deviceStore it wraps:
// after every write it reads the written device back from the store and
// puts that in the index, before the write returns to its caller. Reads
// back are serialised, and each sees the store's latest commit, so the
// index ends at the store's state even when writes of one serial race.
type indexedStore struct {
	deviceStore
	idx *fleetIndex
	log *slog.Logger
	// refresh serialises the read-back-and-put of writes.
	refresh sync.Mutex
}

// newIndexedStore builds the index from every device in st.
func newIndexedStore(ctx context.Context, st deviceStore, log *slog.Logger) (*indexedStore, error) {
	var recs []deviceRecord
	q := DeviceQuery{Limit: MaxDeviceLimit}
	for {
		page, next, err := st.devices(ctx, q, MaxDeviceLimit)
		if err != nil {
			return nil, fmt.Errorf("load devices: %w", err)
		}
		recs = append(recs, page...)
		if next == "" {
			break
		}
		q.After = next
	}
	s := &indexedStore{deviceStore: st, idx: &fleetIndex{}, log: log}
	s.idx.build(recs)
	return s, nil
}

func (s *indexedStore) update(ctx context.Context, serial string, decide func(*deviceRecord) (deviceRecord, bool, error)) (deviceRecord, error) {
	var wrote bool
	rec, err := s.deviceStore.update(ctx, serial, func(old *deviceRecord) (deviceRecord, bool, error) {
		r, write, derr := decide(old)
		wrote = write && derr == nil
		return r, write, derr
	})
	if !wrote {
		return rec, err
	}
	// Also after an error: the write may have committed (a context that
	// ended while waiting for the commit), and the store says.
	s.refresh.Lock()
	defer s.refresh.Unlock()
	cur, rerr := s.deviceStore.device(context.WithoutCancel(ctx), serial)
	switch {
	case rerr == nil:
		s.idx.put(cur)
	case errors.Is(rerr, ErrDeviceNotFound):
		s.idx.remove(serial)
	case err == nil:
		s.log.Warn("device index: read back failed, using the written record", "serial", serial, "err", rerr)
		s.idx.put(rec)
	default:
		s.log.Error("device index: read back failed after a failed write", "serial", serial, "err", rerr)
	}
	return rec, err
}
