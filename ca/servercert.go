package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	casapi "github.com/smallstep/certificates/cas/apiv1"
)

// DefaultServerCertLifetime is the server TLS certificate's lifetime when
// the configuration sets none; the server renews it at two thirds of it.
const DefaultServerCertLifetime = 24 * time.Hour

// serverCert is the API listener's certificate, issued by this CA to the
// configured hostnames and replaced by the server itself before it expires.
type serverCert struct {
	issuer    *issuer
	hostnames []string
	lifetime  time.Duration
	current   atomic.Pointer[tls.Certificate]
}

// issue signs a fresh key pair for the server and makes it current.
func (s *serverCert) issue() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	tpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: s.hostnames[0]},
		PublicKey:   key.Public(),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range s.hostnames {
		if ip := net.ParseIP(h); ip != nil {
			tpl.IPAddresses = append(tpl.IPAddresses, ip)
		} else {
			tpl.DNSNames = append(tpl.DNSNames, h)
		}
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tpl.SerialNumber = sn
	resp, err := s.issuer.CreateCertificate(&casapi.CreateCertificateRequest{
		Template: tpl,
		Lifetime: s.lifetime,
		Backdate: backdate,
	})
	if err != nil {
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	crt := &tls.Certificate{PrivateKey: key, Leaf: resp.Certificate}
	for _, c := range append([]*x509.Certificate{resp.Certificate}, resp.CertificateChain...) {
		crt.Certificate = append(crt.Certificate, c.Raw)
	}
	s.current.Store(crt)
	return crt, nil
}

// renewLoop replaces the certificate when a third of its lifetime is left,
// until ctx ends; a failed renewal is retried every few seconds while the old
// certificate lasts. (NotBefore is backdated, so it is not the issue time.)
func (s *serverCert) renewLoop(ctx context.Context, onError func(error)) {
	for {
		leaf := s.current.Load().Leaf
		wait := time.Until(leaf.NotAfter.Add(-s.lifetime / 3))
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if _, err := s.issue(); err != nil {
			onError(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
	}
}

func (s *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.current.Load(), nil
}
