package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/authority/config"

	"github.com/gwpki/gwpki/internal/testpki"
)

// TestWriteSignResponseMatchesStepCA: the hand-written answer is byte for
// byte what step-ca's render.JSONStatus writes for the same chain.
func TestWriteSignResponseMatchesStepCA(t *testing.T) {
	root := testpki.NewCA(t, "root").Cert
	inter := testpki.NewCA(t, "issuing").Cert
	for _, tt := range []struct {
		name  string
		chain []*x509.Certificate
		tls   *config.TLSOptions
	}{
		{"leaf and issuer", []*x509.Certificate{inter, root}, nil},
		{"leaf only", []*x509.Certificate{inter}, nil},
		{"with TLS options", []*x509.Certificate{inter, root}, &config.DefaultTLSOptions},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeSignResponse(rec, tt.chain, tt.tls)

			pems := make([]api.Certificate, len(tt.chain))
			for i, c := range tt.chain {
				pems[i] = api.NewCertificate(c)
			}
			want := &api.SignResponse{ServerPEM: pems[0], CertChainPEM: pems, TLSOptions: tt.tls}
			if len(pems) > 1 {
				want.CaPEM = pems[1]
			}
			var buf bytes.Buffer
			if err := json.NewEncoder(&buf).Encode(want); err != nil {
				t.Fatal(err)
			}
			if got := rec.Body.String(); got != buf.String() {
				t.Errorf("response\n%s\nwant step-ca's\n%s", got, buf.String())
			}
			if rec.Code != 201 || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("status %d, content type %q; want 201 application/json", rec.Code, rec.Header().Get("Content-Type"))
			}
		})
	}
}
