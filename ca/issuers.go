package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.step.sm/crypto/kms"
	kmsapi "go.step.sm/crypto/kms/apiv1"
	"go.step.sm/crypto/pemutil"

	"github.com/gwpki/gwpki/ca/crl"
	"github.com/gwpki/gwpki/ca/ocsp"
)

// issuingCA is one issuing CA the server answers for: the current one,
// which issues, or a retired one (replaced by `gwpki ca rotate`), which
// issues nothing more but keeps vouching for what it issued: its
// certificates stay trusted, its OCSP responder answers for them and its
// CRLs are published, until it expires (and with it, every certificate it
// issued: none outlives its issuer).
type issuingCA struct {
	gen    int // its generation: 0 for gwpki init's, one more per rotation
	cert   *x509.Certificate
	signer crypto.Signer
	keyID  string // hex of its subject key ID, which its leaves name as their authority key ID
	ocsp   *ocsp.Responder
	crls   *crl.Builder
}

func newIssuingCA(gen int, cert *x509.Certificate, signer crypto.Signer) (*issuingCA, error) {
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("the key of issuing CA g%d does not match its certificate %q", gen, cert.Subject.CommonName)
	}
	if len(cert.SubjectKeyId) == 0 {
		return nil, fmt.Errorf("issuing CA g%d has no subject key identifier", gen)
	}
	return &issuingCA{gen: gen, cert: cert, signer: signer, keyID: hex.EncodeToString(cert.SubjectKeyId)}, nil
}

// openSigner returns an issuing key: decrypted from the file path when
// kmsKey is empty, else a handle in the configured PKCS#11 module that never
// lets the key out. The module is opened once and closed by Close.
func (a *Authority) openSigner(ctx context.Context, path, kmsKey string) (crypto.Signer, error) {
	if kmsKey == "" {
		key, err := pemutil.Read(path, pemutil.WithPassword(a.opts.Password))
		if err != nil {
			return nil, fmt.Errorf("read issuing key (wrong password?): %w", err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("issuing key is a %T, not a signing key", key)
		}
		return s, nil
	}
	if a.km == nil {
		km, err := kms.New(ctx, kmsapi.Options{Type: kmsapi.PKCS11, URI: a.cfg.KMS})
		if err != nil {
			return nil, fmt.Errorf("open kms: %w", err)
		}
		a.km = km
	}
	s, err := a.km.CreateSigner(&kmsapi.CreateSignerRequest{SigningKey: kmsKey})
	if err != nil {
		return nil, fmt.Errorf("open issuing key in kms: %w", err)
	}
	return s, nil
}

// openRetired opens the retired issuing CAs of the configuration. One that
// has expired is skipped (logged): everything it issued has expired too.
func (a *Authority) openRetired(ctx context.Context) error {
	for _, r := range a.cfg.RetiredIssuers {
		certs, err := pemutil.ReadCertificateBundle(a.layout.RetiredIntermediateCert(r.Generation))
		if err != nil {
			return fmt.Errorf("read retired issuing CA g%d: %w", r.Generation, err)
		}
		if !time.Now().Before(certs[0].NotAfter) {
			a.log.Warn("retired issuing CA has expired, and with it everything it issued; its files may be removed",
				"generation", r.Generation, "not_after", certs[0].NotAfter)
			continue
		}
		if r.KMSKey != "" && a.cfg.KMS == "" {
			return fmt.Errorf("retired issuing CA g%d has its key in a KMS, but config.json names no kms", r.Generation)
		}
		signer, err := a.openSigner(ctx, a.layout.RetiredIntermediateKey(r.Generation), r.KMSKey)
		if err != nil {
			return fmt.Errorf("retired issuing CA g%d: %w", r.Generation, err)
		}
		ic, err := newIssuingCA(r.Generation, certs[0], signer)
		if err != nil {
			return err
		}
		a.retired = append(a.retired, ic)
	}
	return nil
}

// issuingCAs returns the current issuing CA, then the retired ones.
func (a *Authority) issuingCAs() []*issuingCA {
	return append([]*issuingCA{a.issuing}, a.retired...)
}

// issuingCAByKeyID returns the issuing CA with key ID keyID, or the current
// one when none has it (a serial that is not stored).
func (a *Authority) issuingCAByKeyID(keyID string) *issuingCA {
	for _, ic := range a.retired {
		if ic.keyID == keyID {
			return ic
		}
	}
	return a.issuing
}

// trustPool is the pool client certificates are verified with: the roots
// and every issuing CA, retired ones included, so that a gateway presenting
// only its leaf is verified too.
func (a *Authority) trustPool() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range a.roots {
		pool.AddCert(c)
	}
	for _, ic := range a.issuingCAs() {
		pool.AddCert(ic.cert)
	}
	return pool
}

// serveCRL serves the CRL shards of every issuing CA: /crl/<shard>.crl for
// generation 0, /crl/g<N>/<shard>.crl for the later ones ([CRLPath]).
func (a *Authority) serveCRL(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/crl/")
	gen := 0
	if dir, name, ok := strings.Cut(rest, "/"); ok {
		n, err := strconv.Atoi(strings.TrimPrefix(dir, "g"))
		if err != nil || n < 1 || dir != "g"+strconv.Itoa(n) || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		gen = n
	}
	for _, ic := range a.issuingCAs() {
		if ic.gen == gen {
			ic.crls.ServeHTTP(w, r)
			return
		}
	}
	http.NotFound(w, r)
}
