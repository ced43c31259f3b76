package claim

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
)

// deviceStore is everything [Registry] keeps. Writes are durable when they
// return. The bbolt implementation below is the embedded default; a
// PostgreSQL one (a devices table keyed by serial, SELECT ... FOR UPDATE
// around decide, indexes on state and model) can take its place without
// touching the rest.
type deviceStore interface {
	// update reads the device stored under serial (nil when there is
	// none), calls decide with it and, when decide says write, stores the
	// record decide returns, all in one transaction, so that concurrent
	// registrations and claims of one serial see each other. It returns
	// decide's record, or decide's error having written nothing. decide
	// may be called more than once and must have no other effect.
	update(ctx context.Context, serial string, decide func(old *deviceRecord) (rec deviceRecord, write bool, err error)) (deviceRecord, error)
	// device returns ErrDeviceNotFound for an unknown serial.
	device(ctx context.Context, serial string) (deviceRecord, error)
	// devices returns the devices after q.After in serial order that
	// match q's filters, at most q.Limit (which is positive) of them,
	// examining at most maxScan; next is the serial to continue after
	// when more devices may follow, else "".
	devices(ctx context.Context, q DeviceQuery, maxScan int) (recs []deviceRecord, next string, err error)
}

// deviceRecord is a device as stored. It has no secret to keep: the claim
// credentials are derived from the claim key and the generation.
type deviceRecord struct {
	Serial         string    `json:"serial"`
	Model          string    `json:"model"`
	Station        string    `json:"station"`
	IDevIDSerial   string    `json:"idevid_serial"`
	IDevIDNotAfter time.Time `json:"idevid_not_after"`
	RegisteredAt   time.Time `json:"registered_at"`
	Generation     int       `json:"generation"`
	State          string    `json:"state"`
	Org            string    `json:"org,omitempty"`
	ClaimedAt      time.Time `json:"claimed_at,omitzero"`
	ClaimedBy      string    `json:"claimed_by,omitempty"`
	// LabelUsed: the label code of this generation has claimed the
	// gateway once and is spent.
	LabelUsed bool `json:"label_used,omitempty"`
	// DisplayUsed is the display-code window of the last claim with a
	// display code: codes of that window and earlier are spent, so a
	// code seen at a claim cannot claim the gateway again after an
	// unclaim.
	DisplayUsed uint64 `json:"display_used,omitempty"`
}

// device returns the record as the API shows it.
func (r deviceRecord) device() Device {
	return Device{
		Serial: r.Serial, Model: r.Model, Station: r.Station,
		IDevIDSerial: r.IDevIDSerial, IDevIDNotAfter: r.IDevIDNotAfter,
		RegisteredAt: r.RegisteredAt, Generation: r.Generation,
		State: r.State, Org: r.Org, ClaimedAt: r.ClaimedAt, ClaimedBy: r.ClaimedBy,
		LabelUsed: r.LabelUsed,
	}
}

// bucketDevices maps the gateway serial to its deviceRecord as JSON. The
// prefix keeps it apart from other packages' buckets in the shared file.
var bucketDevices = []byte("registry/devices")

type boltDeviceStore struct {
	db *store.DB
}

func newBoltDeviceStore(ctx context.Context, db *store.DB) (*boltDeviceStore, error) {
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketDevices); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketDevices, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &boltDeviceStore{db: db}, nil
}

func getDevice(b *bolt.Bucket, serial string) (*deviceRecord, error) {
	v := b.Get([]byte(serial))
	if v == nil {
		return nil, nil
	}
	var rec deviceRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode device %s: %w", serial, err)
	}
	return &rec, nil
}

func (s *boltDeviceStore) update(ctx context.Context, serial string, decide func(*deviceRecord) (deviceRecord, bool, error)) (deviceRecord, error) {
	var out deviceRecord
	err := s.db.Update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		old, err := getDevice(b, serial)
		if err != nil {
			return err
		}
		rec, write, err := decide(old)
		if err != nil {
			// A refusal wrote nothing: the rest of the batch need not
			// run again.
			return store.Refuse(err)
		}
		out = rec
		if !write {
			return nil
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode device: %w", err)
		}
		if err := b.Put([]byte(serial), v); err != nil {
			return fmt.Errorf("put device: %w", err)
		}
		return nil
	})
	if err != nil {
		return deviceRecord{}, err
	}
	return out, nil
}

func (s *boltDeviceStore) device(_ context.Context, serial string) (deviceRecord, error) {
	var rec *deviceRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = getDevice(tx.Bucket(bucketDevices), serial)
		return err
	})
	if err != nil {
		return deviceRecord{}, err
	}
	if rec == nil {
		return deviceRecord{}, ErrDeviceNotFound
	}
	return *rec, nil
}

func (s *boltDeviceStore) devices(ctx context.Context, q DeviceQuery, maxScan int) ([]deviceRecord, string, error) {
	var recs []deviceRecord
	var next string
	err := s.db.View(func(tx *bolt.Tx) error {
		recs, next = make([]deviceRecord, 0, min(q.Limit, 128)), ""
		c := tx.Bucket(bucketDevices).Cursor()
		k, v := c.Seek([]byte(q.After))
		if k != nil && q.After != "" && string(k) == q.After {
			k, v = c.Next()
		}
		var last string
		for scanned := 0; k != nil; k, v = c.Next() {
			// Another device exists here: a full page or a spent scan
			// says where to continue.
			if len(recs) == q.Limit || scanned == maxScan {
				next = last
				return nil
			}
			if scanned%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			scanned++
			last = string(k)
			var rec deviceRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode device %s: %w", k, err)
			}
			if q.State != "" && rec.State != q.State || q.Model != "" && rec.Model != q.Model ||
				q.Org != "" && rec.Org != q.Org {
				continue
			}
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return recs, next, nil
}
