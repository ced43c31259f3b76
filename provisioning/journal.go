package provisioning

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gwpki/gwpki/provisioning/label"
)

// Bundle is gateway.json, what a gateway needs besides its key and
// certificates. It holds the claim secret, so the file is mode 0600.
type Bundle struct {
	Serial       string    `json:"serial"`
	Model        string    `json:"model"`
	BootstrapURL string    `json:"bootstrap_url"`
	ClaimSecret  string    `json:"claim_secret"`
	LabelCode    string    `json:"label_code"`
	IDevIDSerial string    `json:"idevid_serial"`
	Fingerprint  string    `json:"idevid_sha256"`
	NotAfter     time.Time `json:"idevid_not_after"`
}

// Files of a bundle, OUT/<serial>/...
const (
	KeyFile     = "idevid.key"
	CertFile    = "idevid.crt"
	RootFile    = "root.pem"
	GatewayFile = "gateway.json"
)

var labelFormats = []string{"png", "zpl", "svg"}

// journal is the output directory of a batch and its work area,
// OUT/.pending, where each gateway's bundle is assembled (its key first)
// before it is renamed into OUT whole.
type journal struct {
	out, pending string
}

func openJournal(out string) (*journal, error) {
	j := &journal{out: out, pending: filepath.Join(out, ".pending")}
	if err := os.MkdirAll(j.pending, 0o700); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	return j, nil
}

func (j *journal) dir(serial string) string { return filepath.Join(j.pending, serial) }

// bundleComplete reports whether OUT/<serial> holds a finished bundle.
func bundleComplete(out, serial string) bool {
	_, err := os.Stat(filepath.Join(out, serial, GatewayFile))
	return err == nil
}

// prepare makes sure the gateway's work directory exists and, unless the
// gateway brings its own CSR (then it returns nil), holds its key, which it
// returns: a key already there (from a run that crashed) is kept, so the
// CA answers the certificate it issued for it.
func (j *journal) prepare(serial, csrDir string) (crypto.Signer, error) {
	dir := j.dir(serial)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if csrDir != "" {
		return nil, nil
	}
	keyPath := filepath.Join(dir, KeyFile)
	// A key that does not read back was cut short by a crash before the
	// group's sync, so no CSR of it was ever sent: a new one is safe.
	if key, err := readKey(keyPath); err == nil {
		return key, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate gateway key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	tmp := keyPath + ".tmp"
	if err := writeNew(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return key, os.Rename(tmp, keyPath)
}

// readKey reads a gateway key from the journal.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: not PEM", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return signer, nil
}

// csr returns the gateway's CSR: made from its key, or read from the CSR
// directory.
func csrFor(serial, csrDir string, key crypto.Signer) ([]byte, error) {
	if csrDir != "" {
		return readGatewayCSR(csrDir, serial)
	}
	return GatewayCSR(serial, key)
}

// writeBundle writes the rest of the bundle into the gateway's work
// directory (durable at the next sync).
func (j *journal) writeBundle(serial string, b Bundle, chain, root []byte, labels []string) error {
	dir := j.dir(serial)
	gw, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CertFile, chain, 0o644},
		{RootFile, root, 0o644},
		{GatewayFile, append(gw, '\n'), 0o600},
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	l := label.Label{Serial: b.Serial, LabelCode: b.LabelCode, Model: b.Model}
	for _, format := range labels {
		var buf bytes.Buffer
		var err error
		switch format {
		case "png":
			err = label.PNG(&buf, l)
		case "zpl":
			err = label.ZPL(&buf, l)
		case "svg":
			err = label.SVG(&buf, l)
		}
		if err != nil {
			return fmt.Errorf("%s label: %w", format, err)
		}
		if err := writeNew(filepath.Join(dir, "label."+format), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// commit moves a gateway's finished bundle into OUT, replacing a bundle of
// an earlier issue (--reissue). Its files must be durable already (sync);
// the rename is, after syncDir.
func (j *journal) commit(serial string) error {
	final := filepath.Join(j.out, serial)
	if _, err := os.Stat(final); err == nil {
		old := filepath.Join(j.pending, serial+".replaced-"+strconv.FormatInt(time.Now().UnixNano(), 10))
		if err := os.Rename(final, old); err != nil {
			return err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(j.dir(serial), final); err != nil {
		return fmt.Errorf("move bundle of %s into place: %w", serial, err)
	}
	return nil
}

// sync makes everything written so far durable: one sync of the file
// system for a whole group of gateways.
func (j *journal) sync() error { return syncFS(j.out) }

// syncDir makes the renames of commit durable.
func (j *journal) syncDir() error {
	for _, d := range []string{j.out, j.pending} {
		if err := syncPath(d); err != nil {
			return err
		}
	}
	return nil
}

// writeNew writes a file, replacing one a crashed run left half-written.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
