package ca

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"
	"time"

	casapi "github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"

	"github.com/gwpki/gwpki/ca/crl"
)

// issuer is step-ca's software CA service with gwpki's rules on top: no
// certificate outlives the issuing CA, and every gateway leaf names where to
// ask about its revocation (OCSP and its CRL shard).
type issuer struct {
	*softcas.SoftCAS
	notAfter time.Time // the issuing CA's expiry
	httpURL  string    // base of the OCSP URL, no trailing slash
	crlBase  string    // the CRL URLs' prefix, ending in "/" (see [CRLPath])
	shards   int
	birth    *birthCertEncoder // nil when the issuing key is not in-process P-256
}

func newIssuer(soft *softcas.SoftCAS, httpURL, crlBase string, shards int) (*issuer, error) {
	i := &issuer{SoftCAS: soft, notAfter: soft.CertificateChain[0].NotAfter, httpURL: httpURL, crlBase: crlBase, shards: shards}
	var err error
	i.birth, err = newBirthCertEncoder(soft.CertificateChain[0], soft.Signer, httpURL, crlBase, shards)
	return i, err
}

// signBirthCert issues the birth certificate of gateway for the public key
// spki, valid from now (backdated) for lifetime, clamped to the issuing CA.
func (i *issuer) signBirthCert(gateway string, spki []byte, now time.Time, lifetime time.Duration, ext pkix.Extension) (*x509.Certificate, error) {
	sn, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(i.notAfter) {
		notAfter = i.notAfter
	}
	der, err := i.birth.sign(&birthCert{
		gateway: gateway, spki: spki, serial: sn,
		notBefore: now.Add(-backdate), notAfter: notAfter,
		extra: marshalExtension(ext),
	})
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func (i *issuer) CreateCertificate(req *casapi.CreateCertificateRequest) (*casapi.CreateCertificateResponse, error) {
	if req.Template != nil {
		if req.Template.NotAfter.After(i.notAfter) {
			req.Template.NotAfter = i.notAfter
		}
		if err := i.stampGateway(req.Template); err != nil {
			return nil, err
		}
	}
	return i.SoftCAS.CreateCertificate(req)
}

func (i *issuer) RenewCertificate(req *casapi.RenewCertificateRequest) (*casapi.RenewCertificateResponse, error) {
	if left := time.Until(i.notAfter); req.Lifetime > left {
		req.Lifetime = left
	}
	if req.Template != nil {
		// step-ca copies every extension of the old certificate, and an
		// extension given that way wins over the template's fields: drop the
		// old certificate's revocation URLs, which name its own CRL shard.
		req.Template.ExtraExtensions = slices.DeleteFunc(req.Template.ExtraExtensions, func(e pkix.Extension) bool {
			return GatewaySerial(req.Template) != "" && (e.Id.Equal(oidExtCRLDP) || e.Id.Equal(oidExtAIA))
		})
		if err := i.stampGateway(req.Template); err != nil {
			return nil, err
		}
	}
	return i.SoftCAS.RenewCertificate(req)
}

// stampGateway gives a gateway leaf its serial number now, rather than at
// signing, so that its CRL distribution point can name the serial's shard.
func (i *issuer) stampGateway(tpl *x509.Certificate) error {
	if GatewaySerial(tpl) == "" || tpl.IsCA {
		return nil
	}
	if tpl.SerialNumber == nil {
		sn, err := randomSerial()
		if err != nil {
			return err
		}
		tpl.SerialNumber = sn
	}
	tpl.OCSPServer = []string{i.httpURL + "/ocsp"}
	tpl.CRLDistributionPoints = []string{i.crlBase + CRLShard(tpl.SerialNumber, i.shards) + ".crl"}
	return nil
}

// CRLShard names the CRL that lists serial if it is revoked: serials are
// spread over shards by their value modulo the shard count.
func CRLShard(serial *big.Int, shards int) string {
	return crl.ShardName(crl.Shard(serial, shards))
}

// randomSerial returns a positive 128-bit serial number: the current time
// in nanoseconds in the high 64 bits (top bit clear) and 64 random bits
// below, as much randomness as the CA/Browser Forum asks of public CAs.
// Serials that grow with time keep the store's inserts at the end of its
// B+trees, so a batch of certificates touches a few pages rather than one
// page per certificate.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano())&(1<<63-1))
	if _, err := rand.Read(b[8:]); err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	sn := new(big.Int).SetBytes(b[:])
	if sn.Sign() == 0 { // only with a clock at the epoch and zero random bits
		sn.SetInt64(1)
	}
	return sn, nil
}
