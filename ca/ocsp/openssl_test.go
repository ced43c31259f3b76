package ocsp_test

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca/ocsp"
)

// peer returns the path of the real program name, skipping the test when it
// is not installed, except under CI (where make test installs every peer),
// where that is a failure.
func peer(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("peer %s is not installed; make test installs it", name)
	}
	t.Skipf("peer %s is not installed", name)
	return ""
}

// TestOpenSSLClient asks the responder with `openssl ocsp`, which checks the
// response against the root alone: the responder certificate must chain to
// it through the issuer and be fit for OCSP signing. openssl ocsp always
// POSTs (OpenSSL 3 has no option to GET), so GET is checked by fetching
// openssl's own request over GET and handing the answer to openssl -respin.
func TestOpenSSLClient(t *testing.T) {
	openssl := peer(t, "openssl")
	e := &env{pki: newPKI(t, time.Now().Add(time.Hour)), store: newStore(), clock: &clock{}}
	e.start(t, ocsp.Config{Clock: time.Now})
	srv := e.server(t)
	c := e.good(t)
	dir := t.TempDir()
	files := map[string][]byte{
		"root.pem":   e.pki.root.PEM,
		"issuer.pem": e.pki.issuerPEM,
		"leaf.pem":   pemCert(c.Raw),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		// A digest option must come before -cert.
		cmd := exec.Command(openssl, append(append([]string{"ocsp"}, args...), "-issuer", "issuer.pem", "-cert", "leaf.pem", "-CAfile", "root.pem")...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl ocsp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("openssl ocsp %s:\n%s", strings.Join(args, " "), out)
		if !strings.Contains(string(out), "Response verify OK") {
			t.Fatalf("openssl ocsp %s did not verify the response:\n%s", strings.Join(args, " "), out)
		}
		return string(out)
	}
	url := srv.URL + "/ocsp"

	t.Run("good", func(t *testing.T) {
		for _, args := range [][]string{
			{"-url", url},                         // with a nonce, which is ignored
			{"-url", url, "-no_nonce"},            // as RFC 5019 clients ask
			{"-url", url, "-no_nonce", "-sha256"}, // SHA-256 CertID
		} {
			out := run(t, args...)
			if !strings.Contains(out, "leaf.pem: good") {
				t.Errorf("openssl ocsp %s:\n%s\nwant leaf.pem: good", strings.Join(args, " "), out)
			}
		}
		out := run(t, "-sha256", "-url", url, "-no_nonce", "-resp_text")
		for _, want := range []string{"Hash Algorithm: sha256", "Cert Status: good", "Responder Id: O = gwpki test, CN = Test Issuing CA OCSP responder"} {
			if !strings.Contains(out, want) {
				t.Errorf("openssl ocsp -resp_text lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("GET", func(t *testing.T) {
		cmd := exec.Command(openssl, "ocsp", "-issuer", "issuer.pem", "-cert", "leaf.pem", "-no_nonce", "-reqout", "req.der")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl ocsp -reqout: %v\n%s", err, out)
		}
		req, err := os.ReadFile(filepath.Join(dir, "req.der"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.Get(url + "/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(base64.StdEncoding.EncodeToString(req)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if err := os.WriteFile(filepath.Join(dir, "resp.der"), body, 0o600); err != nil {
			t.Fatal(err)
		}
		if out := run(t, "-respin", "resp.der"); !strings.Contains(out, "leaf.pem: good") {
			t.Errorf("openssl ocsp -respin (answer to a GET):\n%s\nwant leaf.pem: good", out)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		e.r.Revoked(c.SerialNumber, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), xocsp.KeyCompromise)
		for _, args := range [][]string{{"-url", url}, {"-url", url, "-no_nonce", "-sha256"}} {
			out := run(t, args...)
			for _, want := range []string{"leaf.pem: revoked", "Reason: keyCompromise", "Revocation Time: Jan  2 03:04:05 2026 GMT"} {
				if !strings.Contains(out, want) {
					t.Errorf("openssl ocsp %s:\n%s\nwant %q", strings.Join(args, " "), out, want)
				}
			}
		}
	})

	t.Run("unknown", func(t *testing.T) {
		other := leaf(t, e.pki.issuer, e.pki.issuerKey, randomSerial(t))
		if err := os.WriteFile(filepath.Join(dir, "other.pem"), pemCert(other.Raw), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(openssl, "ocsp", "-issuer", "issuer.pem", "-cert", "other.pem", "-CAfile", "root.pem", "-url", url, "-no_nonce")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("other.pem: unknown")) {
			t.Errorf("openssl ocsp for a serial never issued: %v\n%s\nwant other.pem: unknown", err, out)
		}
	})
}

// TestOpenSSLResponderCertificate has openssl check the responder
// certificate on its own: its chain to the root, its purpose, nocheck.
func TestOpenSSLResponderCertificate(t *testing.T) {
	openssl := peer(t, "openssl")
	e := newEnv(t, ocsp.Config{Clock: time.Now})
	resp := e.status(t, e.good(t), crypto.SHA1)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"root.pem": e.pki.root.PEM, "issuer.pem": e.pki.issuerPEM, "responder.pem": pemCert(resp.Certificate.Raw)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(openssl, "verify", "-purpose", "ocsphelper", "-CAfile", "root.pem", "-untrusted", "issuer.pem", "responder.pem")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("responder.pem: OK")) {
		t.Errorf("openssl verify -purpose ocsphelper: %v\n%s", err, out)
	}
	cmd = exec.Command(openssl, "x509", "-in", "responder.pem", "-noout", "-text")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	for _, want := range []string{"OCSP No Check", "OCSP Signing", "Digital Signature", "CN = Test Issuing CA OCSP responder"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("openssl x509 -text of the responder certificate lacks %q:\n%s", want, out)
		}
	}
}
