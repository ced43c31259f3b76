package gateway

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Files the agent keeps in the bundle folder beside the birth certificate.
const (
	// OperationalKeyFile is the operational key, made on the gateway at
	// each bootstrap (PKCS #8 PEM, mode 0600); renewal keeps it.
	OperationalKeyFile = "operational.key"
	// OperationalCertFile is the operational certificate chain, leaf first.
	OperationalCertFile = "operational.crt"
	// BootstrapFile holds the mqtt endpoint and renew_after of the last
	// bootstrap answer (renew_after updated at each renewal).
	BootstrapFile = "bootstrap.json"
)

// MQTTEndpoint is the broker the bootstrap service assigned the gateway.
type MQTTEndpoint struct {
	// URL is mqtts://host:port.
	URL      string `json:"url"`
	ClientID string `json:"client_id"`
}

// bootstrapState is bootstrap.json.
type bootstrapState struct {
	MQTT       MQTTEndpoint `json:"mqtt"`
	RenewAfter time.Time    `json:"renew_after"`
}

// operational is the gateway's operational identity: its key, its
// certificate chain and where to use them.
type operational struct {
	key      crypto.Signer
	chainPEM []byte
	leaf     *x509.Certificate
	cert     tls.Certificate
	state    bootstrapState
}

// newOperational checks that chainPEM starts with a certificate for key
// and returns the identity.
func newOperational(key crypto.Signer, chainPEM []byte, state bootstrapState) (*operational, error) {
	var chain [][]byte
	rest := chainPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			chain = append(chain, block.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("the certificate is not for the operational key")
	}
	return &operational{
		key:      key,
		chainPEM: chainPEM,
		leaf:     leaf,
		cert:     tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf},
		state:    state,
	}, nil
}

// renewAfter is when a certificate should be renewed: two thirds into its
// life.
func renewAfter(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// loadOperational reads the operational identity kept in dir. It returns
// an error wrapping fs.ErrNotExist when the gateway never bootstrapped.
func loadOperational(dir string) (*operational, error) {
	keyPEM, err := os.ReadFile(filepath.Join(dir, OperationalKeyFile))
	if err != nil {
		return nil, err
	}
	chainPEM, err := os.ReadFile(filepath.Join(dir, OperationalCertFile))
	if err != nil {
		return nil, err
	}
	stateJSON, err := os.ReadFile(filepath.Join(dir, BootstrapFile))
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM key", OperationalKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", OperationalKeyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", OperationalKeyFile)
	}
	var state bootstrapState
	if err := json.Unmarshal(stateJSON, &state); err != nil {
		return nil, fmt.Errorf("%s: %w", BootstrapFile, err)
	}
	if state.MQTT.URL == "" {
		return nil, fmt.Errorf("%s: no MQTT URL", BootstrapFile)
	}
	op, err := newOperational(key, chainPEM, state)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", OperationalCertFile, err)
	}
	return op, nil
}

// saveKey writes the operational key, mode 0600.
func saveKey(dir string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode operational key: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, OperationalKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// saveCert writes the certificate chain and bootstrap.json; the key is
// already in place (bootstrap writes it first).
func (o *operational) saveCert(dir string) error {
	if err := writeFileAtomic(filepath.Join(dir, OperationalCertFile), o.chainPEM, 0o644); err != nil {
		return err
	}
	state, err := json.MarshalIndent(o.state, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, BootstrapFile), append(state, '\n'), 0o644)
}

// writeFileAtomic replaces path with data: a temporary file in the same
// folder, written and synced, renamed over path, and the folder synced, so
// a crash leaves either the old file or the new one, never a torn one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// pemChain joins PEM certificates, each ending in a newline.
func pemChain(certs ...string) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		c = string(bytes.TrimSpace([]byte(c)))
		if c == "" {
			continue
		}
		buf.WriteString(c)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}
