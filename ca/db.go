package ca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql/database"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/events"
	"github.com/gwpki/gwpki/internal/store"
)

// Buckets of the CA's part of the store. Keys of the certificate buckets are
// serial numbers in decimal, as step-ca names them.
var (
	certsBucket      = []byte("x509_certs")      // serial -> leaf DER
	certDataBucket   = []byte("x509_certs_data") // serial -> certData JSON
	revokedBucket    = []byte("revoked_x509_certs")
	usedTokensBucket = []byte("used_ott") // token id -> SHA-256(token) || used-at
	// station token expiry (unix seconds, 8 bytes) || SHA-256(token) -> used-at:
	// sorted by expiry, so expired entries are pruned from the front.
	usedStationTokensBucket = []byte("used_station_ott")
	crlBucket               = []byte("x509_crl")
	byGatewayBucket         = []byte("x509_certs_by_gateway")     // indexKey(gateway, serial) -> nil
	byProvisionerBucket     = []byte("x509_certs_by_provisioner") // indexKey(name, serial) -> nil
	countersBucket          = []byte("ca_counters")
	crlNumbersBucket        = []byte("crl_numbers") // shard (uint32) -> last CRL number (uint64)

	allBuckets = [][]byte{
		certsBucket, certDataBucket, revokedBucket, usedTokensBucket, usedStationTokensBucket, crlBucket,
		byGatewayBucket, byProvisionerBucket, countersBucket, crlNumbersBucket,
	}

	crlKey          = []byte("crl")
	certsCounter    = []byte("certs")
	revokedCounter  = []byte("revoked")
	errEmptyChain   = errors.New("empty certificate chain")
	errEmptySerial  = errors.New("empty serial number")
	errMissingValue = errors.New("missing revocation info")
)

// Compile-time checks that step-ca finds every extension it looks for.
var (
	_ db.AuthDB                      = (*DB)(nil)
	_ db.CertificateStorer           = (*DB)(nil)
	_ db.CertificateRevocationListDB = (*DB)(nil)
	_ interface {
		StoreCertificateChain(provisioner.Interface, ...*x509.Certificate) error
		StoreRenewedCertificate(*x509.Certificate, ...*x509.Certificate) error
		GetCertificateData(string) (*db.CertificateData, error)
	} = (*DB)(nil)
)

// DB is step-ca's certificate database (db.AuthDB and the optional
// interfaces step-ca probes for) on gwpki's group-commit store, plus the
// queries gwpki needs: certificates by gateway serial and by provisioner.
//
// Every write goes through [store.DB.Update], so a method returns only once
// what it wrote is fsynced, and each method's writes are all-or-nothing.
// A DB is safe for concurrent use.
type DB struct {
	s           *store.DB
	revocations *events.Topic[Revocation] // nil: revocations publish nothing
}

// CertRecord is what the store knows about one issued certificate.
type CertRecord struct {
	// Serial is the certificate's serial number in decimal.
	Serial string
	// DER is the leaf certificate.
	DER []byte
	// Provisioner is who authorised the certificate (for a renewal, who
	// authorised the certificate it renews); nil when unknown.
	Provisioner *db.ProvisionerData
	// Gateway is the gateway serial the certificate names, "" for none.
	Gateway string
	// NotAfter is the certificate's expiry.
	NotAfter time.Time
	// RenewedFrom is the serial of the certificate this one renewed, if any.
	RenewedFrom string
	// Revoked is the revocation record, nil while the certificate is valid.
	Revoked *db.RevokedCertificateInfo
	// Birth is set on a gateway's birth certificate issued to a station.
	Birth bool
}

// certData is the JSON kept per certificate. Its first two fields are
// step-ca's db.CertificateData, so step-ca tooling reads it unchanged.
type certData struct {
	Provisioner *db.ProvisionerData `json:"provisioner,omitempty"`
	RaInfo      *provisioner.RAInfo `json:"ra,omitempty"`
	Gateway     string              `json:"gateway,omitempty"`
	NotAfter    time.Time           `json:"notAfter"`
	RenewedFrom string              `json:"renewedFrom,omitempty"`
	// Birth marks a gateway's birth certificate (IDevID) issued to a
	// station: a gateway has at most one that is not revoked.
	Birth bool `json:"birth,omitempty"`
	// Issuer is the issuing CA's key ID (the leaf's authority key
	// identifier, hex), which tells the issuers apart after a rotation.
	// Records written before gwpki kept it have none: see [issuerOf].
	Issuer string `json:"issuer,omitempty"`
}

// notFoundError is the type of the package's not-found sentinels. It also
// matches nosql's database.ErrNotFound, which is what step-ca tests for
// (database.IsErrNotFound), for instance before the first CRL exists.
type notFoundError string

func (e notFoundError) Error() string { return string(e) }

func (notFoundError) Is(target error) bool { return target == database.ErrNotFound }

// NewDB returns the CA database kept in s, creating its buckets if needed.
// The DB does not own s: [DB.Shutdown] leaves it open for the server to
// close.
func NewDB(s *store.DB) (*DB, error) {
	err := s.Update(context.Background(), func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open ca database: %w", err)
	}
	return &DB{s: s}, nil
}

// update runs fn through the store's group commit. AuthDB's methods carry no
// context, and a write that reached the queue must be answered anyway.
func (d *DB) update(fn func(*bolt.Tx) error) error {
	return d.s.Update(context.Background(), fn)
}

// IsRevoked reports whether the certificate with serial sn is revoked.
func (d *DB) IsRevoked(sn string) (bool, error) {
	var revoked bool
	err := d.s.View(func(tx *bolt.Tx) error {
		revoked = tx.Bucket(revokedBucket).Get([]byte(sn)) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("check revocation of %s: %w", sn, err)
	}
	return revoked, nil
}

// Revoke records rci durably. It returns step-ca's db.ErrAlreadyExists if the
// serial is already revoked, which step-ca answers with "already revoked";
// the first record is kept. When rci has no ExpiresAt and the certificate is
// stored, its expiry is recorded so that CRLs can drop it once expired.
func (d *DB) Revoke(rci *db.RevokedCertificateInfo) error {
	if rci == nil {
		return fmt.Errorf("revoke certificate: %w", errMissingValue)
	}
	if rci.Serial == "" {
		return fmt.Errorf("revoke certificate: %w", errEmptySerial)
	}
	ev := Revocation{Actor: audit.ActorStepCA, Detail: map[string]string{}}
	switch {
	case rci.MTLS:
		ev.Detail["via"] = "mTLS"
	case rci.ProvisionerID != "":
		ev.Detail["provisioner"] = rci.ProvisionerID
	}
	if rci.Reason != "" {
		ev.Detail["reason_text"] = rci.Reason
	}
	var revoked bool
	err := d.update(func(tx *bolt.Tx) error {
		ev.Certificates = ev.Certificates[:0]
		info := *rci
		rc, ok, err := revokeInTx(tx, &info)
		// Already revoked is not an error inside the batch: that would make
		// the committer re-run everyone else's updates.
		revoked = ok
		if ok && rc.Serial != nil {
			ev.Certificates = append(ev.Certificates, rc)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", rci.Serial, err)
	}
	if !revoked {
		return db.ErrAlreadyExists
	}
	d.publish(ev)
	return nil
}

// GetCertificate returns the stored certificate with serial, or an error
// matching [ErrCertificateNotFound].
func (d *DB) GetCertificate(serial string) (*x509.Certificate, error) {
	var der []byte
	err := d.s.View(func(tx *bolt.Tx) error {
		der = bytes.Clone(tx.Bucket(certsBucket).Get([]byte(serial)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get certificate %s: %w", serial, err)
	}
	if der == nil {
		return nil, fmt.Errorf("get certificate %s: %w", serial, ErrCertificateNotFound)
	}
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", serial, err)
	}
	return crt, nil
}

// GetCertificateData returns the provisioner (and RA) data of the
// certificate with serial, or an error matching [ErrCertificateNotFound].
// step-ca uses it to find the provisioner of a certificate being renewed.
func (d *DB) GetCertificateData(serial string) (*db.CertificateData, error) {
	var data *certData
	err := d.s.View(func(tx *bolt.Tx) error {
		var err error
		data, err = getCertData(tx, serial)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get certificate data %s: %w", serial, err)
	}
	return &db.CertificateData{Provisioner: data.Provisioner, RaInfo: data.RaInfo}, nil
}

// UseToken marks the one-time token tok with identifier id as used. It
// returns true the first time an id is used and false on every replay. Only
// a SHA-256 of tok is kept.
//
// It answers as soon as the use is recorded in the current batch, without
// waiting for that batch's fsync ([store.DB.Apply]): step-ca stores the
// certificate the token authorises with a durable update after this one, so
// by the time a certificate is answered the token's use is durable too, and
// a crash before that loses only a use that authorised nothing. Replays are
// decided in commit order, so two requests with one token never both win.
func (d *DB) UseToken(id, tok string) (bool, error) {
	sum := sha256.Sum256([]byte(tok))
	v := binary.BigEndian.AppendUint64(sum[:], uint64(time.Now().Unix()))
	key := []byte(id)
	err := d.s.Apply(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(usedTokensBucket)
		if b.Get(key) != nil {
			return store.Refuse(ErrTokenUsed)
		}
		return b.Put(key, v)
	})
	switch {
	case errors.Is(err, ErrTokenUsed):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("use token: %w", err)
	}
	return true, nil
}

// UseStationToken is [DB.UseToken] for a station's token, which gwpki's own
// sign handler checks and which always has an expiry: entries are keyed by
// that expiry, so new ones go to the end of the bucket and
// [DB.PruneStationTokens] drops expired ones cheaply. Only a SHA-256 of tok
// is kept. Like UseToken it answers before the fsync of its batch. The sign
// handler uses it for refused requests; an issued certificate records its
// token with [DB.StoreWithStationToken].
func (d *DB) UseStationToken(expiry time.Time, tok string) (bool, error) {
	key, used := stationTokenEntry(expiry, tok)
	err := d.s.Apply(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(usedStationTokensBucket)
		if b.Get(key) != nil {
			return store.Refuse(ErrTokenUsed)
		}
		return b.Put(key, used)
	})
	switch {
	case errors.Is(err, ErrTokenUsed):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("use station token: %w", err)
	}
	return true, nil
}

// StoreBirthCertificate durably records the use of a station's token and
// stores the birth certificate it authorised (chain[0]), in one write. A
// gateway has one birth certificate that is not revoked: the certificate
// with serial replaces (decimal, "" for none) is revoked as superseded in
// the same write, and any other one makes it fail with
// [ErrBirthCertificateExists]. A gateway that has birth certificates, all
// of them revoked, is decommissioned and gets no new one:
// [ErrGatewayDecommissioned]. It returns [ErrTokenUsed] when the token was
// used before. In every case nothing is stored then. A superseded certificate
// is published as a [Revocation] by actor.
func (d *DB) StoreBirthCertificate(p provisioner.Interface, expiry time.Time, tok, replaces, actor string, chain ...*x509.Certificate) error {
	if len(chain) == 0 || chain[0] == nil {
		return fmt.Errorf("store certificate chain: %w", errEmptyChain)
	}
	leaf := chain[0]
	rec := certDataFor(leaf, p)
	rec.Birth = true
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("store certificate: %w", err)
	}
	key, used := stationTokenEntry(expiry, tok)
	serial := leaf.SerialNumber.String()
	ev := Revocation{Actor: actor, Detail: map[string]string{"superseded_by": serial}}
	now := time.Now().UTC().Truncate(time.Second)
	err = d.update(func(tx *bolt.Tx) error {
		ev.Certificates = ev.Certificates[:0]
		b := tx.Bucket(usedStationTokensBucket)
		if b.Get(key) != nil {
			return store.Refuse(ErrTokenUsed)
		}
		current, born, err := birthCertificates(tx, rec.Gateway)
		if err != nil {
			return err
		}
		if born && len(current) == 0 {
			// Every birth certificate of the gateway is revoked: it is
			// decommissioned (also when it was revoked between the
			// caller's look-up and this write), and stays so.
			return store.Refuse(ErrGatewayDecommissioned)
		}
		for _, c := range current {
			if c != replaces {
				return store.Refuse(ErrBirthCertificateExists)
			}
			rc, ok, err := revokeInTx(tx, &db.RevokedCertificateInfo{
				Serial: c, ReasonCode: int(ReasonSuperseded), Reason: ReasonSuperseded.String(), RevokedAt: now,
			})
			if err != nil {
				return err
			}
			if ok && rc.Serial != nil {
				ev.Certificates = append(ev.Certificates, rc)
			}
		}
		if err := b.Put(key, used); err != nil {
			return err
		}
		return putCert(tx, serial, leaf.Raw, rec, v)
	})
	if err != nil {
		return fmt.Errorf("store certificate %s: %w", serial, err)
	}
	d.publish(ev)
	return nil
}

// BirthCertificate returns the gateway's birth certificate that is not
// revoked, or an error matching [ErrCertificateNotFound].
func (d *DB) BirthCertificate(gateway string) (*CertRecord, error) {
	rec, _, err := d.currentBirthCertificate(gateway)
	return rec, err
}

// currentBirthCertificate is [DB.BirthCertificate], also reporting whether
// the gateway has any birth certificate, revoked or not: born without a
// current one is decommissioned.
func (d *DB) currentBirthCertificate(gateway string) (rec *CertRecord, born bool, err error) {
	err = d.s.View(func(tx *bolt.Tx) error {
		current, b, err := birthCertificates(tx, gateway)
		if err != nil {
			return err
		}
		born = b
		if len(current) == 0 {
			return ErrCertificateNotFound
		}
		rec, err = getRecord(tx, current[len(current)-1])
		return err
	})
	if err != nil {
		return nil, born, fmt.Errorf("birth certificate of %s: %w", gateway, err)
	}
	return rec, born, nil
}

// birthCertificates returns the serials of gateway's birth certificates
// that are not revoked, oldest first, and whether the gateway has any birth
// certificate at all, revoked or not (born with none current is
// decommissioned, as [Authority.Decommissioned] says).
func birthCertificates(tx *bolt.Tx, gateway string) (current []string, born bool, err error) {
	if gateway == "" {
		return nil, false, nil
	}
	prefix := indexPrefix(gateway)
	revoked := tx.Bucket(revokedBucket)
	c := tx.Bucket(byGatewayBucket).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		serial := string(k[len(prefix):])
		data, err := getCertData(tx, serial)
		if err != nil {
			return nil, false, err
		}
		if !data.Birth {
			continue
		}
		born = true
		if revoked.Get([]byte(serial)) == nil {
			current = append(current, serial)
		}
	}
	return current, born, nil
}

// stationTokenEntry is the used-token record of tok: its key, expiry
// (unix seconds, 8 bytes) || SHA-256(tok), and value, the time of use.
func stationTokenEntry(expiry time.Time, tok string) (key, used []byte) {
	sum := sha256.Sum256([]byte(tok))
	key = append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+sha256.Size), uint64(expiry.Unix())), sum[:]...)
	return key, binary.BigEndian.AppendUint64(nil, uint64(time.Now().Unix()))
}

// PruneStationTokens durably forgets station tokens that expired before
// before, deleting at most limit of them; it returns how many it deleted.
// A token past its expiry is refused on its own, so forgetting its use
// reopens nothing.
func (d *DB) PruneStationTokens(before time.Time, limit int) (int, error) {
	end := binary.BigEndian.AppendUint64(nil, uint64(before.Unix()))
	n := 0
	err := d.update(func(tx *bolt.Tx) error {
		n = 0
		c := tx.Bucket(usedStationTokensBucket).Cursor()
		// Always from the front: the entries before the cursor are gone.
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], end) < 0 && n < limit; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune station tokens: %w", err)
	}
	return n, nil
}

// StoreCertificate stores a leaf issued without a known provisioner.
func (d *DB) StoreCertificate(crt *x509.Certificate) error {
	if crt == nil {
		return fmt.Errorf("store certificate: %w", errEmptyChain)
	}
	rec := newCertData(crt)
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("store certificate: %w", err)
	}
	serial := crt.SerialNumber.String()
	if err := d.update(func(tx *bolt.Tx) error { return putCert(tx, serial, crt.Raw, rec, v) }); err != nil {
		return fmt.Errorf("store certificate %s: %w", serial, err)
	}
	return nil
}

// StoreCertificateChain stores the leaf of chain (chain[0]) with the
// provisioner p that authorised it, as step-ca's own database does; the
// rest of the chain is the CA's and is not stored. p may be nil.
func (d *DB) StoreCertificateChain(p provisioner.Interface, chain ...*x509.Certificate) error {
	if len(chain) == 0 || chain[0] == nil {
		return fmt.Errorf("store certificate chain: %w", errEmptyChain)
	}
	leaf := chain[0]
	rec := certDataFor(leaf, p)
	// Encoded here, not in the closure: the committer runs closures one after
	// another, so work done outside them runs in parallel.
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("store certificate chain: %w", err)
	}
	serial := leaf.SerialNumber.String()
	if err := d.update(func(tx *bolt.Tx) error { return putCert(tx, serial, leaf.Raw, rec, v) }); err != nil {
		return fmt.Errorf("store certificate %s: %w", serial, err)
	}
	return nil
}

// StoreRenewedCertificate stores the leaf of chain, renewed from old, with
// the provisioner data of old when old is stored. Reading old's data and
// writing the new certificate happen in one transaction.
func (d *DB) StoreRenewedCertificate(old *x509.Certificate, chain ...*x509.Certificate) error {
	if len(chain) == 0 || chain[0] == nil {
		return fmt.Errorf("store renewed certificate: %w", errEmptyChain)
	}
	leaf := chain[0]
	serial := leaf.SerialNumber.String()
	var oldSerial string
	if old != nil {
		oldSerial = old.SerialNumber.String()
	}
	err := d.update(func(tx *bolt.Tx) error {
		rec := newCertData(leaf)
		rec.RenewedFrom = oldSerial
		if oldSerial != "" {
			if prev, err := getCertData(tx, oldSerial); err == nil {
				rec.Provisioner, rec.RaInfo = prev.Provisioner, prev.RaInfo
			} else if !errors.Is(err, ErrCertificateNotFound) {
				return err
			}
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return putCert(tx, serial, leaf.Raw, rec, v)
	})
	if err != nil {
		return fmt.Errorf("store renewed certificate %s: %w", serial, err)
	}
	return nil
}

// IsSSHRevoked reports false: gwpki issues no SSH certificates, and step-ca
// turns any error here into a failed SSH request.
func (d *DB) IsSSHRevoked(string) (bool, error) { return false, nil }

// RevokeSSH returns db.ErrNotImplemented, which step-ca reports as "not
// implemented": gwpki issues no SSH certificates.
func (d *DB) RevokeSSH(*db.RevokedCertificateInfo) error { return db.ErrNotImplemented }

// StoreSSHCertificate returns db.ErrNotImplemented, which step-ca ignores.
func (d *DB) StoreSSHCertificate(*ssh.Certificate) error { return db.ErrNotImplemented }

// IsSSHHost returns db.ErrNotImplemented, which step-ca reports as "not
// implemented": gwpki keeps no SSH host list.
func (d *DB) IsSSHHost(string) (bool, error) { return false, db.ErrNotImplemented }

// GetSSHHostPrincipals returns no principals: gwpki issues no SSH host
// certificates, so the list is truly empty (an error would be a 500).
func (d *DB) GetSSHHostPrincipals() ([]string, error) { return nil, nil }

// GetRevokedCertificates returns every revocation record, for step-ca's CRL.
func (d *DB) GetRevokedCertificates() (*[]db.RevokedCertificateInfo, error) {
	var list []db.RevokedCertificateInfo
	err := d.s.View(func(tx *bolt.Tx) error {
		return tx.Bucket(revokedBucket).ForEach(func(k, v []byte) error {
			var info db.RevokedCertificateInfo
			if err := json.Unmarshal(v, &info); err != nil {
				return fmt.Errorf("decode revocation of %s: %w", k, err)
			}
			list = append(list, info)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list revoked certificates: %w", err)
	}
	return &list, nil
}

// GetCRL returns the CRL last stored by [DB.StoreCRL], or an error matching
// [ErrCRLNotFound] (and nosql's database.ErrNotFound, as step-ca expects)
// before the first one.
func (d *DB) GetCRL() (*db.CertificateRevocationListInfo, error) {
	var info *db.CertificateRevocationListInfo
	err := d.s.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(crlBucket).Get(crlKey)
		if v == nil {
			return ErrCRLNotFound
		}
		info = new(db.CertificateRevocationListInfo)
		return json.Unmarshal(v, info)
	})
	if err != nil {
		return nil, fmt.Errorf("get crl: %w", err)
	}
	return info, nil
}

// StoreCRL durably replaces the stored CRL with info.
func (d *DB) StoreCRL(info *db.CertificateRevocationListInfo) error {
	if info == nil {
		return fmt.Errorf("store crl: %w", errMissingValue)
	}
	v, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("store crl: %w", err)
	}
	if err := d.update(func(tx *bolt.Tx) error { return tx.Bucket(crlBucket).Put(crlKey, v) }); err != nil {
		return fmt.Errorf("store crl: %w", err)
	}
	return nil
}

// Shutdown does nothing and returns nil. The store is shared with the rest
// of the server, which closes it; step-ca calls Shutdown whenever an
// authority is replaced (gwpki rebuilds it when stations change), and the
// next authority keeps using this DB.
func (d *DB) Shutdown() error { return nil }

// Certificate returns what is stored about the certificate with serial
// (decimal), or an error matching [ErrCertificateNotFound].
func (d *DB) Certificate(serial string) (*CertRecord, error) {
	var rec *CertRecord
	err := d.s.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = getRecord(tx, serial)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get certificate %s: %w", serial, err)
	}
	return rec, nil
}

// CertificatesByGateway returns the certificates that name the gateway
// serial, oldest expiry first; none is not an error.
func (d *DB) CertificatesByGateway(gateway string) ([]CertRecord, error) {
	recs, err := d.byIndex(byGatewayBucket, gateway)
	if err != nil {
		return nil, fmt.Errorf("list certificates of gateway %s: %w", gateway, err)
	}
	return recs, nil
}

// CertificatesByProvisioner returns the certificates authorised by the
// provisioner (station) called name, oldest expiry first; none is not an
// error. Renewals count for the provisioner of the original certificate.
func (d *DB) CertificatesByProvisioner(name string) ([]CertRecord, error) {
	recs, err := d.byIndex(byProvisionerBucket, name)
	if err != nil {
		return nil, fmt.Errorf("list certificates of provisioner %s: %w", name, err)
	}
	return recs, nil
}

// RevokedCertificate returns the revocation record of serial, or an error
// matching [ErrNotRevoked].
func (d *DB) RevokedCertificate(serial string) (*db.RevokedCertificateInfo, error) {
	var info *db.RevokedCertificateInfo
	err := d.s.View(func(tx *bolt.Tx) error {
		var err error
		info, err = getRevoked(tx, serial)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get revocation of %s: %w", serial, err)
	}
	if info == nil {
		return nil, fmt.Errorf("get revocation of %s: %w", serial, ErrNotRevoked)
	}
	return info, nil
}

// Stats returns how many certificates are stored and how many serials are
// revoked (revoked serials need not be stored certificates).
func (d *DB) Stats() (certs, revoked int, err error) {
	err = d.s.View(func(tx *bolt.Tx) error {
		certs = int(getCounter(tx, certsCounter))
		revoked = int(getCounter(tx, revokedCounter))
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count certificates: %w", err)
	}
	return certs, revoked, nil
}

func (d *DB) byIndex(bucket []byte, name string) ([]CertRecord, error) {
	var recs []CertRecord
	err := d.s.View(func(tx *bolt.Tx) error {
		prefix := indexPrefix(name)
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			serial := string(k[len(prefix):])
			rec, err := getRecord(tx, serial)
			if err != nil {
				return err
			}
			recs = append(recs, *rec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(recs, func(a, b CertRecord) int { return a.NotAfter.Compare(b.NotAfter) })
	return recs, nil
}

// certDataFor is the data of leaf issued through provisioner p (may be nil).
func certDataFor(leaf *x509.Certificate, p provisioner.Interface) *certData {
	rec := newCertData(leaf)
	if p != nil {
		rec.Provisioner = &db.ProvisionerData{ID: p.GetID(), Name: p.GetName(), Type: p.GetType().String()}
		if rap, ok := p.(interface{ RAInfo() *provisioner.RAInfo }); ok {
			rec.RaInfo = rap.RAInfo()
		}
	}
	return rec
}

// newCertData returns the data of leaf that does not depend on who issued it.
func newCertData(leaf *x509.Certificate) *certData {
	return &certData{Gateway: indexedGateway(leaf), NotAfter: leaf.NotAfter.UTC(), Issuer: hex.EncodeToString(leaf.AuthorityKeyId)}
}

// issuerOf returns the key ID of the CA that issued the stored certificate
// serial whose data is data: the recorded one, or for a record older than
// that field, the authority key identifier read from the stored DER.
func issuerOf(tx *bolt.Tx, serial string, data *certData) (string, error) {
	if data.Issuer != "" {
		return data.Issuer, nil
	}
	der := tx.Bucket(certsBucket).Get([]byte(serial))
	if der == nil {
		return "", nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "", fmt.Errorf("parse stored certificate %s: %w", serial, err)
	}
	return hex.EncodeToString(c.AuthorityKeyId), nil
}

// indexedGateway is the gateway serial a leaf is indexed under: its gateway
// URI SAN, else its subject serialNumber attribute, else none.
func indexedGateway(leaf *x509.Certificate) string {
	if s := GatewaySerial(leaf); s != "" {
		return s
	}
	return leaf.Subject.SerialNumber
}

// putCert writes a certificate, its data and its index entries. Storing a
// serial again replaces it, index entries included, and counts once.
func putCert(tx *bolt.Tx, serial string, der []byte, rec *certData, encoded []byte) error {
	key := []byte(serial)
	prev, err := getCertData(tx, serial)
	switch {
	case err == nil:
		if err := deleteIndexes(tx, serial, prev); err != nil {
			return err
		}
	case errors.Is(err, ErrCertificateNotFound):
		if err := addCounter(tx, certsCounter, 1); err != nil {
			return err
		}
	default:
		return err
	}
	if err := tx.Bucket(certsBucket).Put(key, der); err != nil {
		return err
	}
	if err := tx.Bucket(certDataBucket).Put(key, encoded); err != nil {
		return err
	}
	if rec.Gateway != "" {
		if err := tx.Bucket(byGatewayBucket).Put(indexKey(rec.Gateway, serial), nil); err != nil {
			return err
		}
	}
	if rec.Provisioner != nil && rec.Provisioner.Name != "" {
		if err := tx.Bucket(byProvisionerBucket).Put(indexKey(rec.Provisioner.Name, serial), nil); err != nil {
			return err
		}
	}
	return nil
}

func deleteIndexes(tx *bolt.Tx, serial string, rec *certData) error {
	if rec.Gateway != "" {
		if err := tx.Bucket(byGatewayBucket).Delete(indexKey(rec.Gateway, serial)); err != nil {
			return err
		}
	}
	if rec.Provisioner != nil && rec.Provisioner.Name != "" {
		if err := tx.Bucket(byProvisionerBucket).Delete(indexKey(rec.Provisioner.Name, serial)); err != nil {
			return err
		}
	}
	return nil
}

// getCertData returns the data of serial or an error matching
// ErrCertificateNotFound. Data is written with every certificate, so it
// tells whether the certificate is stored.
func getCertData(tx *bolt.Tx, serial string) (*certData, error) {
	v := tx.Bucket(certDataBucket).Get([]byte(serial))
	if v == nil {
		return nil, ErrCertificateNotFound
	}
	var data certData
	if err := json.Unmarshal(v, &data); err != nil {
		return nil, fmt.Errorf("decode data of certificate %s: %w", serial, err)
	}
	return &data, nil
}

func getRecord(tx *bolt.Tx, serial string) (*CertRecord, error) {
	data, err := getCertData(tx, serial)
	if err != nil {
		return nil, err
	}
	revoked, err := getRevoked(tx, serial)
	if err != nil {
		return nil, err
	}
	return &CertRecord{
		Serial:      serial,
		DER:         bytes.Clone(tx.Bucket(certsBucket).Get([]byte(serial))),
		Provisioner: data.Provisioner,
		Gateway:     data.Gateway,
		NotAfter:    data.NotAfter,
		RenewedFrom: data.RenewedFrom,
		Revoked:     revoked,
		Birth:       data.Birth,
	}, nil
}

// getRevoked returns the revocation record of serial, nil if none.
func getRevoked(tx *bolt.Tx, serial string) (*db.RevokedCertificateInfo, error) {
	v := tx.Bucket(revokedBucket).Get([]byte(serial))
	if v == nil {
		return nil, nil
	}
	var info db.RevokedCertificateInfo
	if err := json.Unmarshal(v, &info); err != nil {
		return nil, fmt.Errorf("decode revocation of %s: %w", serial, err)
	}
	return &info, nil
}

// indexPrefix is the length-prefixed name that starts every index key of
// name, so that no name's keys run into another's ("a" vs "ab").
func indexPrefix(name string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(name))), name...)
}

func indexKey(name, serial string) []byte {
	return append(indexPrefix(name), serial...)
}

func getCounter(tx *bolt.Tx, name []byte) uint64 {
	v := tx.Bucket(countersBucket).Get(name)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// addCounter keeps counts in the store so that Stats needs no bucket walk;
// with a single committer the read-modify-write cannot race.
func addCounter(tx *bolt.Tx, name []byte, delta uint64) error {
	n := getCounter(tx, name) + delta
	return tx.Bucket(countersBucket).Put(name, binary.BigEndian.AppendUint64(nil, n))
}
