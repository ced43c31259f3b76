package ocsp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"
)

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): clients need
// not check the responder certificate's own revocation status.
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// asn1Null is the DER of ASN.1 NULL, the nocheck extension's value.
var asn1Null = []byte{0x05, 0x00}

// responderBackdate is how far before its issue time a responder
// certificate becomes valid, for relying parties whose clocks run behind.
const responderBackdate = time.Minute

// responder is a delegated OCSP signing identity: a certificate issued by
// the CA for a key that lives only in this process's memory.
type responder struct {
	cert *x509.Certificate
	key  crypto.Signer
	// rotateAt is when a successor should be issued: when a third of the
	// certificate's lifetime is left, or never (NotAfter) when the
	// certificate already ends with the issuing CA and a successor could
	// not outlive it.
	rotateAt time.Time
}

// issueResponder issues a fresh responder certificate valid from now for
// lifetime, cut short at the issuer's own NotAfter.
func issueResponder(issuer *x509.Certificate, issuerKey crypto.Signer, lifetime time.Duration, now time.Time) (*responder, error) {
	if !now.Before(issuer.NotAfter) {
		return nil, fmt.Errorf("issue responder certificate: issuing CA expired at %s", issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate responder key: %w", err)
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate responder serial: %w", err)
	}
	sn.SetBit(sn, 127, 1) // positive and never short
	notBefore := now.Add(-responderBackdate).Truncate(time.Second)
	if notBefore.Before(issuer.NotBefore) {
		notBefore = issuer.NotBefore
	}
	notAfter, clamped := now.Add(lifetime).Truncate(time.Second), false
	if !notAfter.Before(issuer.NotAfter) {
		notAfter, clamped = issuer.NotAfter, true
	}
	name := "OCSP responder"
	if cn := issuer.Subject.CommonName; cn != "" {
		name = cn + " " + name
	}
	tpl := &x509.Certificate{
		SerialNumber:    sn,
		Subject:         pkix.Name{CommonName: name, Organization: issuer.Subject.Organization},
		NotBefore:       notBefore,
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidOCSPNoCheck, Value: asn1Null}},
		// Not a CA; basic constraints stated so no one mistakes it for one.
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, issuer, key.Public(), issuerKey)
	if err != nil {
		return nil, fmt.Errorf("sign responder certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse responder certificate: %w", err)
	}
	rotateAt := cert.NotAfter
	if !clamped {
		rotateAt = cert.NotAfter.Add(-notAfter.Sub(now) / 3)
	}
	return &responder{cert: cert, key: key, rotateAt: rotateAt}, nil
}

// currentResponder returns the responder to sign with at now, issuing a
// successor first when rotation is due. A failed rotation keeps the current
// responder while its certificate lasts and is retried at most every
// rotateRetry; the failure is logged once per attempt.
func (r *Responder) currentResponder(now time.Time) (*responder, error) {
	cur := r.resp.Load()
	if now.Before(cur.rotateAt) {
		return cur, nil
	}
	r.rotateMu.Lock()
	defer r.rotateMu.Unlock()
	cur = r.resp.Load()
	if now.Before(cur.rotateAt) {
		return cur, nil
	}
	valid := now.Before(cur.cert.NotAfter)
	if valid && now.Before(r.rotateRetryAt) {
		return cur, nil
	}
	next, err := issueResponder(r.issuer, r.issuerKey, r.lifetime, now)
	if err != nil {
		r.rotateRetryAt = now.Add(rotateRetry)
		r.log.Error("rotate OCSP responder certificate", "err", err)
		if valid {
			return cur, nil
		}
		return nil, err
	}
	r.resp.Store(next)
	r.log.Info("rotated OCSP responder certificate", "serial", next.cert.SerialNumber.Text(16), "not_after", next.cert.NotAfter)
	return next, nil
}
