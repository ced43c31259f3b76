package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/gwpki/gwpki/provisioning"
)

// failures counts what failed the checks and keeps the first.
type failures struct {
	mu    sync.Mutex
	count int
	first error
}

func (f *failures) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	if f.first == nil {
		f.first = err
	}
}

// forEach runs check on every serial, on every CPU, and counts failures.
func forEach(serials []string, check func(string) error) *failures {
	bad := &failures{}
	next := make(chan string)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				if err := check(s); err != nil {
					bad.add(fmt.Errorf("%s: %w", s, err))
				}
			}
		}()
	}
	for _, s := range serials {
		next <- s
	}
	close(next)
	wg.Wait()
	return bad
}

// verifyBundles checks what `gwpki provision` wrote into out: for each
// serial a bundle whose idevid.crt chains to the roots, names the gateway
// and matches idevid.key, whose gateway.json describes that certificate and
// holds claim credentials, and with label.<label> when asked; and a
// manifest.jsonl of one line per serial, in order. The manifest counts as
// one failure.
func verifyBundles(out string, serials []string, label string, roots *x509.CertPool) *failures {
	bad := forEach(serials, func(serial string) error {
		dir := filepath.Join(out, serial)
		leaf, err := checkCertificate(dir, serial, roots)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(filepath.Join(dir, provisioning.GatewayFile))
		if err != nil {
			return err
		}
		var b provisioning.Bundle
		if err := json.Unmarshal(data, &b); err != nil {
			return fmt.Errorf("%s: %w", provisioning.GatewayFile, err)
		}
		sum := sha256.Sum256(leaf.Raw)
		switch {
		case b.Serial != serial:
			return fmt.Errorf("%s: serial %q", provisioning.GatewayFile, b.Serial)
		case b.ClaimSecret == "" || b.LabelCode == "":
			return fmt.Errorf("%s: no claim credentials", provisioning.GatewayFile)
		case b.Fingerprint != hex.EncodeToString(sum[:]):
			return fmt.Errorf("%s: fingerprint %s is not idevid.crt's", provisioning.GatewayFile, b.Fingerprint)
		}
		if label != "" {
			if err := checkLabel(filepath.Join(dir, "label."+label), label); err != nil {
				return err
			}
		}
		return nil
	})
	if err := checkManifest(filepath.Join(out, "manifest.jsonl"), serials); err != nil {
		bad.add(err)
	}
	return bad
}

// verifyShell checks what the shell loop wrote into out: for each serial,
// an idevid.crt that chains to the roots, names the gateway and matches
// idevid.key.
func verifyShell(out string, serials []string, roots *x509.CertPool) *failures {
	return forEach(serials, func(serial string) error {
		_, err := checkCertificate(filepath.Join(out, serial), serial, roots)
		return err
	})
}

// checkCertificate checks dir/idevid.crt (the leaf, then its intermediates)
// against dir/idevid.key and the roots, and that it is the birth
// certificate of serial: CN and URI SAN.
func checkCertificate(dir, serial string, roots *x509.CertPool) (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, provisioning.CertFile), filepath.Join(dir, provisioning.KeyFile))
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, err
	}
	want := "urn:gwpki:gateway:" + serial
	if leaf.Subject.CommonName != serial || len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		return nil, fmt.Errorf("certificate of CN %q and URIs %v; want %q and [%s]", leaf.Subject.CommonName, leaf.URIs, serial, want)
	}
	return leaf, nil
}

// checkLabel checks that path holds a label of the format.
func checkLabel(path, format string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var magic []byte
	switch format {
	case "png":
		magic = []byte("\x89PNG\r\n\x1a\n")
	case "zpl":
		magic = []byte("^XA")
	case "svg":
		magic = []byte("<")
	}
	if !bytes.HasPrefix(bytes.TrimSpace(data), magic) {
		return fmt.Errorf("%s is not a %s label", filepath.Base(path), format)
	}
	return nil
}

// checkManifest checks that the manifest lists the serials, one line each,
// in order.
func checkManifest(path string, serials []string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var e provisioning.ManifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("manifest line %d: %w", n+1, err)
		}
		if n >= len(serials) || e.Serial != serials[n] {
			return fmt.Errorf("manifest line %d is gateway %q; want %d lines, %s first", n+1, e.Serial, len(serials), serials[0])
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if n != len(serials) {
		return fmt.Errorf("manifest: %d lines; want %d", n, len(serials))
	}
	return nil
}
