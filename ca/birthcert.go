package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // subject key identifiers are SHA-1 by RFC 5280, as step-ca makes them
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// birthCertEncoder signs gateway birth certificates (IDevIDs) without
// crypto/x509's general machinery, which spends most of its time on what is
// the same in every birth certificate and then checks its own signature
// again (one more P-256 verification per certificate, about a sixth of the
// server's CPU at full load). The parts that never change are encoded once,
// by crypto/x509 itself, when the encoder is made; a test holds the result
// byte for byte to what x509.CreateCertificate makes from the same template.
//
// It is used only with an in-process ECDSA P-256 issuing key: a KMS signer
// keeps the general path and its signature check.
type birthCertEncoder struct {
	key       *ecdsa.PrivateKey
	sigAlg    []byte // AlgorithmIdentifier, ecdsa-with-SHA256
	issuer    []byte // the issuing CA's subject, verbatim
	fixedExts []byte // key usage, EKU, AKID, AIA: in x509's order, SKID and SAN go in between
	policyExt []byte // certificate policies
	ocspExt   []byte // authority information access
	akidExt   []byte
	crlBase   string // the issuer's CRL URL prefix, ending in "/"
	shards    int
}

// newBirthCertEncoder returns nil when signer is not an in-process P-256 key.
// Certificates name httpURL/ocsp and their shard's CRL under crlBase.
func newBirthCertEncoder(parent *x509.Certificate, signer crypto.Signer, httpURL, crlBase string, shards int) (*birthCertEncoder, error) {
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, nil
	}
	// A prototype made by crypto/x509 supplies the constant extensions.
	proto := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "prototype"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(1, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Policies:     []x509.OID{oidIDevID},
		OCSPServer:   []string{httpURL + "/ocsp"},
	}
	der, err := x509.CreateCertificate(rand.Reader, proto, parent, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("birth certificate prototype: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("birth certificate prototype: %w", err)
	}
	e := &birthCertEncoder{key: key, issuer: parent.RawSubject, crlBase: crlBase, shards: shards}
	var keyUsage, eku []byte
	for _, ext := range c.Extensions {
		b := marshalExtension(ext)
		switch {
		case ext.Id.Equal(oidExtKeyUsage):
			keyUsage = b
		case ext.Id.Equal(oidExtExtKeyUsage):
			eku = b
		case ext.Id.Equal(oidExtAuthorityKeyID):
			e.akidExt = b
		case ext.Id.Equal(oidExtAIA):
			e.ocspExt = b
		case ext.Id.Equal(oidExtPolicies):
			e.policyExt = b
		}
	}
	if keyUsage == nil || eku == nil || e.ocspExt == nil || e.policyExt == nil {
		return nil, fmt.Errorf("birth certificate prototype lacks an extension")
	}
	e.fixedExts = append(keyUsage, eku...)
	e.sigAlg = rawTLV(c.RawTBSCertificate, 2) // TBS: version, serial, signature algorithm, ...
	if e.sigAlg == nil {
		return nil, fmt.Errorf("birth certificate prototype: no signature algorithm")
	}
	return e, nil
}

// birthCert is what differs between two birth certificates.
type birthCert struct {
	gateway   string
	spki      []byte // the CSR's SubjectPublicKeyInfo, verbatim
	serial    *big.Int
	notBefore time.Time
	notAfter  time.Time
	extra     []byte // encoded extensions appended last (the provisioner's)
}

// sign encodes and signs c, returning the DER certificate.
func (e *birthCertEncoder) sign(c *birthCert) ([]byte, error) {
	tbs, err := e.tbs(c)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, e.key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(e.sigAlg)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

func (e *birthCertEncoder) tbs(c *birthCert) ([]byte, error) {
	skid, err := subjectKeyID(c.spki)
	if err != nil {
		return nil, err
	}
	uri := GatewayURIPrefix + c.gateway
	crlURL := e.crlBase + CRLShard(c.serial, e.shards) + ".crl"
	b := cryptobyte.NewBuilder(make([]byte, 0, 768))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1Int64(2) // v3
		})
		b.AddASN1BigInt(c.serial)
		b.AddBytes(e.sigAlg)
		b.AddBytes(e.issuer)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addTime(b, c.notBefore)
			addTime(b, c.notAfter)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // subject: CN, then serialNumber
			addRDN(b, oidCommonName, c.gateway)
			addRDN(b, oidSerialNumber, c.gateway)
		})
		b.AddBytes(c.spki)
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(e.fixedExts)
				addExtension(b, oidExtSubjectKeyID, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(skid)
				})
				b.AddBytes(e.akidExt)
				b.AddBytes(e.ocspExt)
				addExtension(b, oidExtSAN, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(uri)) })
					})
				})
				b.AddBytes(e.policyExt)
				addExtension(b, oidExtCRLDP, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
									b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(crlURL)) })
								})
							})
						})
					})
				})
				b.AddBytes(c.extra)
			})
		})
	})
	return b.Bytes()
}

var (
	oidCommonName        = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSerialNumber      = asn1.ObjectIdentifier{2, 5, 4, 5}
	oidExtSubjectKeyID   = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtSAN            = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtCRLDP          = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidExtPolicies       = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidExtAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtAIA            = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
)

// addTime encodes t as x509 does: UTCTime through 2049, GeneralizedTime after.
func addTime(b *cryptobyte.Builder, t time.Time) {
	t = t.UTC().Truncate(time.Second)
	if t.Year() >= 1950 && t.Year() < 2050 {
		b.AddASN1UTCTime(t)
		return
	}
	b.AddASN1GeneralizedTime(t)
}

// addRDN adds a one-attribute relative distinguished name, with the string
// type encoding/asn1 would choose: PrintableString when it can, else UTF8.
func addRDN(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, value string) {
	tag := cbasn1.PrintableString
	for i := 0; i < len(value); i++ {
		if !isPrintable(value[i]) {
			tag = cbasn1.UTF8String
			break
		}
	}
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(value)) })
		})
	})
}

// isPrintable is encoding/asn1's PrintableString alphabet (X.680), without
// the '*' and '&' it tolerates: gateway serials hold neither.
func isPrintable(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == ' ' || c == '\'' || c == '(' || c == ')' || c == '+' || c == ',' ||
		c == '-' || c == '.' || c == '/' || c == ':' || c == '=' || c == '?'
}

func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

func marshalExtension(ext pkix.Extension) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(ext.Id)
		if ext.Critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1OctetString(ext.Value)
	})
	return b.BytesOrPanic()
}

// subjectKeyID is step-ca's: SHA-1 of the subject public key's bits.
func subjectKeyID(spki []byte) ([]byte, error) {
	in := cryptobyte.String(spki)
	var body, alg cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1(&alg, cbasn1.SEQUENCE) || !body.ReadASN1BitString(&bits) {
		return nil, fmt.Errorf("malformed subject public key info")
	}
	sum := sha1.Sum(bits.Bytes) //nolint:gosec // see the import
	return sum[:], nil
}

// rawTLV returns the n-th element (from 0) of the DER SEQUENCE der, with its
// tag and length.
func rawTLV(der []byte, n int) []byte {
	in := cryptobyte.String(der)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil
	}
	for i := 0; ; i++ {
		var elem cryptobyte.String
		var tag cbasn1.Tag
		if !body.ReadAnyASN1Element(&elem, &tag) {
			return nil
		}
		if i == n {
			return elem
		}
	}
}
