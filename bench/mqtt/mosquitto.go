package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gwpki/gwpki/ca"
)

// defaultMosquitto is where Debian's mosquitto package installs the broker.
const defaultMosquitto = "/usr/sbin/mosquitto"

// mosquittoACL is the ACL a mosquitto user writes for gateways whose
// certificate CN is their serial (use_identity_as_username).
const mosquittoACL = `# each gateway (username = its certificate CN = its serial) publishes under gw/<serial>/telemetry
# and reads its own commands
pattern write gw/%u/telemetry/#
pattern read gw/%u/cmd/#
`

// findMosquitto returns the mosquitto broker to run.
func findMosquitto(bin string) (string, error) {
	if bin == "" {
		bin = defaultMosquitto
		if _, err := os.Stat(bin); err != nil {
			if p, err := exec.LookPath("mosquitto"); err == nil {
				bin = p
			}
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("mosquitto broker not found at %s\nhint: sudo apt-get install mosquitto (or give -mosquitto BIN, or -only gwpki)", bin)
	}
	return bin, nil
}

// mosquittoVersion is the version word of `mosquitto -h`.
func mosquittoVersion(ctx context.Context, bin string) string {
	out, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	if f := strings.Fields(line); len(f) >= 3 && f[1] == "version" {
		return f[2]
	}
	return "unknown"
}

// mosquittoFiles writes what mosquitto needs into dir: a throwaway CA and
// the server certificate it issues for 127.0.0.1 (P-256, like gwpki's own
// server certificate), the client CA file (gwpki's root and issuing CA: the
// operational certificates chain to them), the ACL and the configuration.
// It returns the configuration's path and the throwaway CA, which the load
// generator trusts besides gwpki's root.
func mosquittoFiles(dir, gwpkiData string, port int) (conf string, serverCA *x509.Certificate, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	caCert, caKey, err := selfSignedCA("gwpki bench throwaway CA for mosquitto")
	if err != nil {
		return "", nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", nil, fmt.Errorf("issue mosquitto's server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", nil, err
	}
	layout := ca.Layout{Dir: gwpkiData}
	var clientCAs []byte
	for _, p := range []string{layout.RootCert(), layout.IntermediateCert()} {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", nil, err
		}
		clientCAs = append(clientCAs, b...)
	}
	files := map[string][]byte{
		"server.crt": append(pemCert(der), pemCert(caCert.Raw)...),
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"ca.pem":     clientCAs,
		"acl":        []byte(mosquittoACL),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", nil, err
		}
	}
	conf = filepath.Join(dir, "mosquitto.conf")
	p := func(name string) string { return filepath.Join(dir, name) }
	// As a mosquitto user secures gateways with client certificates; every
	// limit not named here (max_inflight_messages 20, max_queued_messages
	// 1000, max_connections unlimited, ...) is left at its default.
	text := fmt.Sprintf(`# written by bench/mqtt
%sper_listener_settings false
persistence false
allow_anonymous false
log_dest file %s
log_type error
log_type warning
connection_messages false

listener %d 127.0.0.1
certfile %s
keyfile %s
cafile %s
require_certificate true
use_identity_as_username true
acl_file %s
`, runAs(), p("mosquitto.log"), port, p("server.crt"), p("server.key"), p("ca.pem"), p("acl"))
	return conf, caCert, os.WriteFile(conf, []byte(text), 0o600)
}

// runAs keeps mosquitto as root when the harness runs as root: it would
// otherwise become the user "mosquitto", who cannot read the work
// directory's private files.
func runAs() string {
	if os.Geteuid() == 0 {
		return "user root\n"
	}
	return ""
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// selfSignedCA makes a P-256 root that lives for a day.
func selfSignedCA(cn string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// startMosquitto runs `mosquitto -c conf` and waits until it accepts TCP
// connections on port.
func startMosquitto(ctx context.Context, bin, conf, work string, port int) (*process, error) {
	p, err := startProcess("mosquitto", bin, filepath.Join(work, "mosquitto-stdout.log"), nil, "-c", conf)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		if p.exited() {
			return nil, p.failure("exited at start (see also " + filepath.Join(filepath.Dir(conf), "mosquitto.log") + ")")
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			p.stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, p.failure(fmt.Sprintf("not listening on %s after %s", addr, startTimeout))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
