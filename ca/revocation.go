package ca

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/smallstep/certificates/db"
	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/ca/crl"
	"github.com/gwpki/gwpki/ca/ocsp"
	"github.com/gwpki/gwpki/internal/events"
	"github.com/gwpki/gwpki/internal/store"
)

// Revocation is the event every revocation publishes, whichever way it came
// (gwpki revoke, the /v1 API, step-ca's /revoke): the OCSP cache, the CRL
// builder, the audit log and the broker react to it. It is published after
// the revocation is durable.
type Revocation struct {
	Certificates []RevokedCert
	// Actor is who revoked: "user:<name>", or "step-ca" for step-ca's
	// /revoke (Detail then names the provisioner or says mTLS).
	Actor  string
	Source string // the caller's address, when known
	Detail map[string]string
}

// RevokedCert is one certificate a [Revocation] revoked.
type RevokedCert struct {
	Serial    *big.Int
	Gateway   string // the gateway serial the certificate belongs to, or ""
	RevokedAt time.Time
	Reason    Reason
	NotAfter  time.Time // the certificate's expiry; zero when unknown
	// Issuer is the key ID (hex) of the issuing CA that issued it, "" for
	// a serial not stored: which issuer's OCSP responder and CRLs list it.
	Issuer string
}

// Reason is an RFC 5280 CRLReason code.
type Reason int

// The reasons RFC 5280 §5.3.1 defines (7 is unused).
const (
	ReasonUnspecified          Reason = 0
	ReasonKeyCompromise        Reason = 1
	ReasonCACompromise         Reason = 2
	ReasonAffiliationChanged   Reason = 3
	ReasonSuperseded           Reason = 4
	ReasonCessationOfOperation Reason = 5
	ReasonCertificateHold      Reason = 6
	ReasonRemoveFromCRL        Reason = 8
	ReasonPrivilegeWithdrawn   Reason = 9
	ReasonAACompromise         Reason = 10
)

var reasonNames = map[Reason]string{
	ReasonUnspecified: "unspecified", ReasonKeyCompromise: "keyCompromise", ReasonCACompromise: "cACompromise",
	ReasonAffiliationChanged: "affiliationChanged", ReasonSuperseded: "superseded",
	ReasonCessationOfOperation: "cessationOfOperation", ReasonCertificateHold: "certificateHold",
	ReasonRemoveFromCRL: "removeFromCRL", ReasonPrivilegeWithdrawn: "privilegeWithdrawn", ReasonAACompromise: "aACompromise",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return strconv.Itoa(int(r))
}

// ParseReason reads an RFC 5280 reason name (any case: keyCompromise,
// keycompromise) or its code. The empty string is unspecified.
// certificateHold and removeFromCRL are refused: gwpki revocations are final.
func ParseReason(s string) (Reason, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ReasonUnspecified, nil
	}
	r := Reason(-1)
	if n, err := strconv.Atoi(s); err == nil {
		if _, ok := reasonNames[Reason(n)]; ok {
			r = Reason(n)
		}
	} else {
		for code, name := range reasonNames {
			if strings.EqualFold(name, s) {
				r = code
			}
		}
	}
	switch r {
	case -1:
		return 0, fmt.Errorf("unknown revocation reason %q; use one of unspecified, keyCompromise, cACompromise, "+
			"affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, aACompromise", s)
	case ReasonCertificateHold, ReasonRemoveFromCRL:
		return 0, fmt.Errorf("revocation reason %s is not supported: revocations are final", r)
	}
	return r, nil
}

// PublishRevocationsTo makes every later revocation through d publish a
// [Revocation] on topic.
func (d *DB) PublishRevocationsTo(topic *events.Topic[Revocation]) { d.revocations = topic }

func (d *DB) publish(ev Revocation) {
	if d.revocations != nil && len(ev.Certificates) > 0 {
		d.revocations.Publish(ev)
	}
}

// RevokeGateway durably revokes every certificate of gateway not revoked
// yet, in one write, and publishes one [Revocation] naming them. It returns
// that event and how many of the gateway's certificates were revoked
// already, or [ErrGatewayNotFound] when no certificate of gateway is stored.
func (d *DB) RevokeGateway(ctx context.Context, gateway string, reason Reason, actor, source string) (Revocation, int, error) {
	return d.revokeGateway(ctx, gateway, reason, actor, source, false)
}

// RevokeOperational is [DB.RevokeGateway] for the gateway's certificates
// other than its birth certificates: those it obtained through bootstrap
// and renewal. A gateway with none revokes nothing and is no error; one
// with no certificate at all is [ErrGatewayNotFound].
func (d *DB) RevokeOperational(ctx context.Context, gateway string, reason Reason, actor, source string) (Revocation, error) {
	ev, _, err := d.revokeGateway(ctx, gateway, reason, actor, source, true)
	return ev, err
}

func (d *DB) revokeGateway(ctx context.Context, gateway string, reason Reason, actor, source string, keepBirth bool) (Revocation, int, error) {
	ev := Revocation{Actor: actor, Source: source}
	already := 0
	now := time.Now().UTC().Truncate(time.Second)
	err := d.s.Update(ctx, func(tx *bolt.Tx) error {
		ev.Certificates, already = ev.Certificates[:0], 0
		prefix := indexPrefix(gateway)
		c := tx.Bucket(byGatewayBucket).Cursor()
		found := false
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			found = true
			serial := string(k[len(prefix):])
			if keepBirth {
				data, err := getCertData(tx, serial)
				if err != nil {
					return err
				}
				if data.Birth {
					continue
				}
			}
			rc, ok, err := revokeInTx(tx, &db.RevokedCertificateInfo{
				Serial: serial, ReasonCode: int(reason), Reason: reason.String(), RevokedAt: now,
			})
			if err != nil {
				return err
			}
			if !ok {
				already++
				continue
			}
			if rc.Serial != nil {
				ev.Certificates = append(ev.Certificates, rc)
			}
		}
		if !found {
			return store.Refuse(ErrGatewayNotFound)
		}
		return nil
	})
	if err != nil {
		return Revocation{}, 0, fmt.Errorf("revoke gateway %s: %w", gateway, err)
	}
	d.publish(ev)
	return ev, already, nil
}

// RevokeCertificate durably revokes the stored certificate with serial and
// publishes a [Revocation]. It returns [ErrCertificateNotFound] for a serial
// not stored and [ErrAlreadyRevoked] for one revoked before.
func (d *DB) RevokeCertificate(ctx context.Context, serial *big.Int, reason Reason, actor, source string) (Revocation, error) {
	ev := Revocation{Actor: actor, Source: source}
	key := serial.String()
	err := d.s.Update(ctx, func(tx *bolt.Tx) error {
		ev.Certificates = ev.Certificates[:0]
		if tx.Bucket(certsBucket).Get([]byte(key)) == nil {
			return store.Refuse(ErrCertificateNotFound)
		}
		rc, ok, err := revokeInTx(tx, &db.RevokedCertificateInfo{
			Serial: key, ReasonCode: int(reason), Reason: reason.String(), RevokedAt: time.Now().UTC().Truncate(time.Second),
		})
		if err != nil {
			return err
		}
		if !ok {
			return store.Refuse(ErrAlreadyRevoked)
		}
		ev.Certificates = append(ev.Certificates, rc)
		return nil
	})
	if err != nil {
		return Revocation{}, fmt.Errorf("revoke certificate %s: %w", key, err)
	}
	d.publish(ev)
	return ev, nil
}

// revokeInTx records info unless its serial is revoked already (ok false).
// A missing expiry is taken from the stored certificate. rc.Serial is nil
// for a serial that is not a decimal number, which names no certificate
// gwpki stored (step-ca still records it).
func revokeInTx(tx *bolt.Tx, info *db.RevokedCertificateInfo) (rc RevokedCert, ok bool, err error) {
	b := tx.Bucket(revokedBucket)
	key := []byte(info.Serial)
	if b.Get(key) != nil {
		return RevokedCert{}, false, nil
	}
	rc = RevokedCert{RevokedAt: info.RevokedAt, Reason: Reason(info.ReasonCode), NotAfter: info.ExpiresAt}
	if data, err := getCertData(tx, info.Serial); err == nil {
		rc.Gateway = data.Gateway
		if rc.Issuer, err = issuerOf(tx, info.Serial, data); err != nil {
			return RevokedCert{}, false, err
		}
		if info.ExpiresAt.IsZero() {
			info.ExpiresAt = data.NotAfter
			rc.NotAfter = data.NotAfter
		}
	}
	rc.Serial, _ = new(big.Int).SetString(info.Serial, 10)
	v, err := json.Marshal(info)
	if err != nil {
		return RevokedCert{}, false, err
	}
	if err := b.Put(key, v); err != nil {
		return RevokedCert{}, false, err
	}
	return rc, true, addCounter(tx, revokedCounter, 1)
}

// Revocations calls fn for every revocation record: the CRL builder's
// [crl.Source] while there is one issuing CA.
func (d *DB) Revocations(_ context.Context, fn func(crl.Revoked) error) error {
	return d.revocationsOf(nil, fn)
}

// revocationsOf calls fn for every revocation record that keep accepts (nil:
// all). keep is given the issuer's key ID, "" for a serial not stored.
func (d *DB) revocationsOf(keep func(issuer string) bool, fn func(crl.Revoked) error) error {
	serial := new(big.Int)
	return d.s.View(func(tx *bolt.Tx) error {
		return tx.Bucket(revokedBucket).ForEach(func(k, v []byte) error {
			if keep != nil {
				issuer := ""
				if data, err := getCertData(tx, string(k)); err == nil {
					if issuer, err = issuerOf(tx, string(k), data); err != nil {
						return err
					}
				} else if !errors.Is(err, ErrCertificateNotFound) {
					return err
				}
				if !keep(issuer) {
					return nil
				}
			}
			var info db.RevokedCertificateInfo
			if err := json.Unmarshal(v, &info); err != nil {
				return fmt.Errorf("decode revocation of %s: %w", k, err)
			}
			if _, ok := serial.SetString(string(k), 10); !ok {
				return fmt.Errorf("revocation record under %q: not a decimal serial", k)
			}
			return fn(crl.Revoked{Serial: serial, RevokedAt: info.RevokedAt, Reason: info.ReasonCode, NotAfter: info.ExpiresAt})
		})
	})
}

// NextCRLNumbers durably reserves the next CRL number of each shard, in one
// write: the CRL builder's [crl.Source].
func (d *DB) NextCRLNumbers(ctx context.Context, shards []int) ([]*big.Int, error) {
	nums := make([]*big.Int, len(shards))
	err := d.s.Update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(crlNumbersBucket)
		for i, s := range shards {
			key := binary.BigEndian.AppendUint32(nil, uint32(s))
			var n uint64 = 1
			if v := b.Get(key); len(v) == 8 {
				n = binary.BigEndian.Uint64(v) + 1
			}
			if err := b.Put(key, binary.BigEndian.AppendUint64(nil, n)); err != nil {
				return err
			}
			nums[i] = new(big.Int).SetUint64(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reserve crl numbers: %w", err)
	}
	return nums, nil
}

// Lookup tells the OCSP responder what the store knows of serial: its
// [ocsp.Source] while there is one issuing CA.
func (d *DB) Lookup(_ context.Context, serial *big.Int) (ocsp.Entry, error) {
	return d.lookup(serial, "")
}

// lookup is [DB.Lookup] for the certificates of the issuing CA with key ID
// issuer ("": any issuer); another issuer's serial is Unknown.
func (d *DB) lookup(serial *big.Int, issuer string) (ocsp.Entry, error) {
	key := []byte(serial.String())
	var e ocsp.Entry
	err := d.s.View(func(tx *bolt.Tx) error {
		if tx.Bucket(certsBucket).Get(key) == nil {
			e.Status = ocsp.Unknown
			return nil
		}
		if issuer != "" {
			data, err := getCertData(tx, string(key))
			if err != nil {
				return err
			}
			if got, err := issuerOf(tx, string(key), data); err != nil || got != issuer {
				e.Status = ocsp.Unknown
				return err
			}
		}
		v := tx.Bucket(revokedBucket).Get(key)
		if v == nil {
			e.Status = ocsp.Good
			return nil
		}
		var info db.RevokedCertificateInfo
		if err := json.Unmarshal(v, &info); err != nil {
			return fmt.Errorf("decode revocation of %s: %w", key, err)
		}
		e = ocsp.Entry{Status: ocsp.Revoked, RevokedAt: info.RevokedAt, Reason: info.ReasonCode}
		return nil
	})
	return e, err
}

// issuerView is the store as the OCSP responder and the CRL builder of one
// issuing CA see it once there are several (after a rotation): only the
// certificates that CA issued. The current CA's view also lists the
// revocations of serials that are not stored (step-ca's /revoke records
// them), as the single CA did.
type issuerView struct {
	db      *DB
	keyID   string
	orphans bool
}

// Lookup implements [ocsp.Source].
func (v issuerView) Lookup(_ context.Context, serial *big.Int) (ocsp.Entry, error) {
	return v.db.lookup(serial, v.keyID)
}

// Revocations implements [crl.Source].
func (v issuerView) Revocations(_ context.Context, fn func(crl.Revoked) error) error {
	return v.db.revocationsOf(func(issuer string) bool {
		return issuer == v.keyID || (v.orphans && issuer == "")
	}, fn)
}

// NextCRLNumbers implements [crl.Source]. The issuers share the counters:
// each shard's numbers still increase strictly for each issuer, which is
// all RFC 5280 asks (gaps are allowed).
func (v issuerView) NextCRLNumbers(ctx context.Context, shards []int) ([]*big.Int, error) {
	return v.db.NextCRLNumbers(ctx, shards)
}
