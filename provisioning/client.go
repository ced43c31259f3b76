package provisioning

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client is a line station's connection to the CA: step-ca's sign endpoint
// and gwpki's device registration, over HTTPS that trusts only the root.
// It is safe for concurrent use.
type Client struct {
	base    string
	station *Station
	rootPEM []byte
	http    *http.Client
}

// NewClient returns a client of the CA at caURL for station, trusting only
// the root in rootPEM, which must be the root the station was made for. It
// keeps up to conns connections alive.
func NewClient(caURL string, rootPEM []byte, station *Station, conns int) (*Client, error) {
	block, _ := pem.Decode(rootPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("root: not a PEM certificate")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	sum := sha256.Sum256(root.Raw)
	if station.RootFingerprint != "" && !strings.EqualFold(station.RootFingerprint, hex.EncodeToString(sum[:])) {
		return nil, fmt.Errorf("station %s was made for another CA: its root fingerprint is %s, the given root's is %x",
			station.Name, station.RootFingerprint, sum)
	}
	if caURL == "" {
		caURL = station.CAURL
	}
	if !strings.HasPrefix(caURL, "https://") {
		return nil, fmt.Errorf("CA URL %q: must be https://", caURL)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &Client{
		base:    strings.TrimRight(caURL, "/"),
		station: station,
		rootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}),
		http: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				MaxIdleConnsPerHost: conns,
				MaxConnsPerHost:     conns,
				IdleConnTimeout:     time.Minute,
				ForceAttemptHTTP2:   false,
			},
		},
	}, nil
}

// RootPEM is the root the client trusts.
func (c *Client) RootPEM() []byte { return c.rootPEM }

// APIError is a refusal from the CA: an HTTP status and its message.
type APIError struct {
	Op      string // "sign" or "register"
	Status  int
	Message string
	Reissue bool // the request asked for a reissue
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Op, e.Message, e.Status)
}

// Temporary reports whether trying again later may succeed: the server was
// busy or failed, not the request.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Sign obtains the birth certificate of the gateway serial for the CSR,
// returning the PEM chain (leaf first). A reissue replaces the gateway's
// current birth certificate. Asking again with the same CSR answers the
// certificate already issued.
func (c *Client) Sign(ctx context.Context, serial string, csrPEM []byte, reissue bool) ([]byte, error) {
	tok, err := c.station.Token(serial, SignURL(c.base), time.Now(), tokenReissue(reissue))
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"csr": string(csrPEM), "ott": tok})
	var resp struct {
		CertChain []string `json:"certChain"`
	}
	if err := c.do(ctx, "sign", SignURL(c.base), "", body, &resp); err != nil {
		return nil, markReissue(err, reissue)
	}
	if len(resp.CertChain) == 0 {
		return nil, errors.New("sign: answer holds no certificate")
	}
	var chain []byte
	for _, p := range resp.CertChain {
		chain = append(chain, p...)
	}
	return chain, nil
}

// Registration is what the CA answers to a gateway's registration: the
// device record and its claim credentials.
type Registration struct {
	Device struct {
		Serial       string `json:"serial"`
		Model        string `json:"model"`
		IDevIDSerial string `json:"idevid_serial"`
	} `json:"device"`
	ClaimSecret  string `json:"claim_secret"`
	LabelCode    string `json:"label_code"`
	BootstrapURL string `json:"bootstrap_url"`
}

// Register records the gateway with its birth certificate (PEM leaf) and
// returns its claim credentials. Registering again with the same
// certificate answers the same credentials.
func (c *Client) Register(ctx context.Context, serial, model string, certPEM []byte, reissue bool) (*Registration, error) {
	url := c.base + "/v1/devices"
	tok, err := c.station.Token(serial, url, time.Now())
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"serial": serial, "model": model, "certificate": string(certPEM), "reissue": reissue})
	var reg Registration
	if err := c.do(ctx, "register", url, tok, body, &reg); err != nil {
		return nil, markReissue(err, reissue)
	}
	if reg.LabelCode == "" || reg.ClaimSecret == "" {
		return nil, errors.New("register: answer holds no claim credentials")
	}
	return &reg, nil
}

// markReissue records in an *APIError that its request asked for a
// reissue.
func markReissue(err error, reissue bool) error {
	var api *APIError
	if errors.As(err, &api) {
		api.Reissue = reissue
	}
	return err
}

func (c *Client) do(ctx context.Context, op, url, bearer string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error   string `json:"error"`   // gwpki's /v1
			Message string `json:"message"` // step-ca's
			Hint    string `json:"hint"`
		}
		_ = json.Unmarshal(data, &e)
		msg := strings.TrimSpace(e.Error + e.Message)
		if e.Hint != "" {
			msg += " (" + e.Hint + ")"
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &APIError{Op: op, Status: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: malformed answer: %w", op, err)
	}
	return nil
}
