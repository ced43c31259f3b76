package server

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

// TestBootstrapNeedsTheRegisteredBirthCertificate: a birth certificate the
// CA signed for a station's reissue but the registry never took (a reissue
// refused at registration, or not registered yet) does not bootstrap: only
// the birth certificate the gateway is registered with does.
func TestBootstrapNeedsTheRegisteredBirthCertificate(t *testing.T) {
	ts := startServer(t, nil)
	out := provisionGateways(t, ts, "GW-R1")

	key, csr, err := provisioning.NewGatewayKey("GW-R1")
	if err != nil {
		t.Fatal(err)
	}
	reissue := rawTokenEdit(t, ts, "GW-R1", []string{ca.GatewayURIPrefix + "GW-R1"}, func(c map[string]any) {
		c["reissue"] = true
		c["jti"] = "reissue-unregistered"
	})
	unregistered := ts.signCert(t, signBody(csr, reissue, nil), http.StatusCreated)

	client := ts.gatewayClient(t, tls.Certificate{Certificate: [][]byte{unregistered.Raw}, PrivateKey: key})
	code, body := ts.bootstrapAs(t, client, csrBody(t, "GW-R1", newKey(t)))
	if code != http.StatusForbidden || !strings.Contains(body, "is not the one gateway GW-R1 is registered with") {
		t.Errorf("bootstrap with an unregistered birth certificate = %d %s; want 403", code, body)
	}
	// The registered one was superseded by the signing: it is revoked.
	old := ts.gatewayClient(t, loadPair(t, filepath.Join(out, "GW-R1")))
	if code, body := ts.bootstrapAs(t, old, csrBody(t, "GW-R1", newKey(t))); code != http.StatusForbidden {
		t.Errorf("bootstrap with the superseded birth certificate = %d %s; want 403", code, body)
	}
}
