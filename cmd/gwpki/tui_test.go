package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gwpki/gwpki/internal/apiclient"
)

// tuiWriteSession writes a session file as gwpki login leaves it.
func tuiWriteSession(t *testing.T, s apiclient.Session) {
	t.Helper()
	path, err := apiclient.SessionPath()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(s)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func tuiTestRoot(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestTUIOptions: a valid saved session skips the login screen; otherwise
// the login screen is prefilled from the session and the flags.
func TestTUIOptions(t *testing.T) {
	root := tuiTestRoot(t)
	saved := apiclient.Session{Server: "https://gw.example:8443", RootPEM: root, Username: "ines", Org: "acme",
		Role: "installer", Token: "t", ExpiresAt: time.Now().Add(time.Hour)}

	t.Run("no session", func(t *testing.T) {
		t.Setenv("GWPKI_CONFIG_DIR", t.TempDir())
		o := tuiOptions(loginDefaultServer, "root.pem", false)
		if o.Client != nil || o.Login.Server != loginDefaultServer || o.Login.RootPath != "root.pem" || o.Login.Notice != "" {
			t.Errorf("options = %+v", o)
		}
	})
	t.Run("valid session", func(t *testing.T) {
		t.Setenv("GWPKI_CONFIG_DIR", t.TempDir())
		tuiWriteSession(t, saved)
		if o := tuiOptions(loginDefaultServer, "", false); o.Client == nil || o.Client.Session().Username != "ines" {
			t.Errorf("options = %+v; want the saved session", o)
		}
		if o := tuiOptions(saved.Server, "", true); o.Client == nil {
			t.Errorf("--server of the session: options = %+v; want the saved session", o)
		}
	})
	t.Run("session for another server", func(t *testing.T) {
		t.Setenv("GWPKI_CONFIG_DIR", t.TempDir())
		tuiWriteSession(t, saved)
		o := tuiOptions("https://other.example:8443", "", true)
		if o.Client != nil || o.Login.Server != "https://other.example:8443" || o.Login.Username != "" || len(o.Login.RootPEM) != 0 {
			t.Errorf("options = %+v; want a login to the other server", o)
		}
	})
	t.Run("expired session", func(t *testing.T) {
		t.Setenv("GWPKI_CONFIG_DIR", t.TempDir())
		s := saved
		s.ExpiresAt = time.Now().Add(-time.Minute)
		tuiWriteSession(t, s)
		o := tuiOptions(loginDefaultServer, "", false)
		if o.Client != nil || o.Login.Server != saved.Server || o.Login.Username != "ines" || string(o.Login.RootPEM) != root ||
			!strings.Contains(o.Login.Notice, "expired") {
			t.Errorf("options = %+v; want the login prefilled from the expired session", o)
		}
	})
}

// TestTUICommandRegistered: gwpki tui exists with its flags.
func TestTUICommandRegistered(t *testing.T) {
	cmd, _, err := newRootCommand().Find([]string{"tui"})
	if err != nil || cmd.Name() != "tui" {
		t.Fatalf("find tui: %v, %v", cmd, err)
	}
	for _, f := range []string{"server", "root"} {
		if cmd.Flags().Lookup(f) == nil {
			t.Errorf("gwpki tui has no --%s", f)
		}
	}
}
