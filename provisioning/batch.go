package provisioning

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gwpki/gwpki/ca"
)

// BatchOptions describe a provisioning batch.
type BatchOptions struct {
	Client      *Client
	Serials     []string // the gateways, in order
	Model       string
	Out         string   // the output directory: one bundle per gateway, the journal, the manifest
	CSRDir      string   // the gateways' own CSRs (<serial>.csr or .pem); no key is made or kept
	Labels      []string // label formats: png, zpl, svg
	Concurrency int      // requests in flight (default 64)
	Reissue     bool     // replace the birth certificate of gateways already provisioned
	// Progress, when set, is called after each gateway, from one goroutine.
	Progress func(Progress)
}

// Progress is the state of a running batch.
type Progress struct {
	Done, Skipped, Failed, Total int
	Elapsed                      time.Duration
}

// Summary is how a batch ended.
type Summary struct {
	Done, Skipped, Failed int
	Elapsed               time.Duration
	// Refused are the gateways whose reissue the CA refused for good (a
	// claimed or decommissioned gateway), in the batch's order; they count
	// in Failed. The rest of the batch went on.
	Refused []GatewayError
}

// GatewayError is a failure of one gateway of a batch.
type GatewayError struct {
	Serial string
	Err    error
}

func (e GatewayError) Error() string { return e.Err.Error() }
func (e GatewayError) Unwrap() error { return e.Err }

// RefusedError is RunBatch's error when every gateway was provisioned but
// some reissues were refused: they are listed one per gateway.
type RefusedError struct {
	Gateways []GatewayError
}

func (e *RefusedError) Error() string {
	if len(e.Gateways) == 1 {
		return "gateway " + e.Gateways[0].Serial + ": " + e.Gateways[0].Error()
	}
	serials := make([]string, len(e.Gateways))
	for i, g := range e.Gateways {
		serials[i] = g.Serial
	}
	return fmt.Sprintf("reissue refused for %d gateways: %s", len(e.Gateways), strings.Join(serials, ", "))
}

// IsReissueRefusal reports whether err is the CA's refusal of a reissue
// that concerns that gateway alone and that retrying cannot fix: a 409 to
// a reissue (the gateway is claimed or decommissioned, or its birth
// certificate was replaced with another key in a race).
func IsReissueRefusal(err error) bool {
	var api *APIError
	return errors.As(err, &api) && api.Reissue && api.Status == http.StatusConflict
}

// Rate is gateways provisioned per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Done) / s.Elapsed.Seconds()
}

// RunBatch provisions every gateway of o.Serials that has no bundle in o.Out
// yet (all of them with o.Reissue): a key (unless o.CSRDir), a birth
// certificate, a registration with its claim credentials, and a bundle.
//
// It is crash-safe and idempotent. Each gateway's key is durable in the
// journal (o.Out/.pending/<serial>) before its CSR is sent; the CA answers
// the same certificate for the same key, and the registration the same
// credentials for the same certificate; a bundle appears in o.Out only,
// whole, by a rename once every file of it is durable. So after a crash the
// same command finishes the batch with every gateway provisioned exactly
// once. Durability is grouped: one sync of the file system per group of
// gateways, not one per file.
//
// It stops at the first refusal that retrying cannot fix (a disabled
// station, a CSR the CA refuses) and returns it, after the gateways in
// flight have finished; network errors and busy answers are retried with
// back-off. A refused reissue ([IsReissueRefusal]: the gateway is claimed or
// decommissioned) concerns that gateway alone: it is not retried, the batch
// goes on, and the refusals are listed in the summary's Refused and, when
// nothing else failed, returned as a *[RefusedError].
func RunBatch(ctx context.Context, o BatchOptions) (Summary, error) {
	start := time.Now()
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	todo, skipped, err := planBatch(o)
	if err != nil {
		return Summary{}, err
	}
	j, err := openJournal(o.Out)
	if err != nil {
		return Summary{}, err
	}
	b := &batch{opts: o, j: j, rootPEM: o.Client.RootPEM()}
	b.progress = Progress{Skipped: skipped, Total: len(o.Serials)}
	groupSize := max(64, 4*o.Concurrency)
	for i := 0; i < len(todo) && err == nil; i += groupSize {
		err = b.runGroup(ctx, todo[i:min(i+groupSize, len(todo))], start)
	}
	if werr := writeManifest(o.Out, o.Serials); werr != nil && err == nil {
		err = werr
	}
	if err == nil && len(b.refused) > 0 {
		err = &RefusedError{Gateways: b.refused}
	}
	return Summary{Done: b.progress.Done, Skipped: skipped, Failed: b.progress.Failed, Elapsed: time.Since(start),
		Refused: b.refused}, err
}

// planBatch checks everything that can be checked before anything is
// issued, and returns the serials still to provision.
func planBatch(o BatchOptions) (todo []string, skipped int, err error) {
	if o.Client == nil {
		return nil, 0, errors.New("no CA client")
	}
	if err := validModel(o.Model); err != nil {
		return nil, 0, err
	}
	for _, f := range o.Labels {
		if !slices.Contains(labelFormats, f) {
			return nil, 0, fmt.Errorf("unknown label format %q; use png, zpl or svg", f)
		}
	}
	seen := make(map[string]bool, len(o.Serials))
	for _, s := range o.Serials {
		if err := ca.ValidateSerial(s); err != nil {
			return nil, 0, err
		}
		if seen[s] {
			return nil, 0, fmt.Errorf("serial %s is listed twice", s)
		}
		seen[s] = true
	}
	if o.CSRDir != "" {
		for _, s := range o.Serials {
			if _, err := readGatewayCSR(o.CSRDir, s); err != nil {
				return nil, 0, err
			}
		}
	}
	for _, s := range o.Serials {
		if !o.Reissue && bundleComplete(o.Out, s) {
			skipped++
			continue
		}
		todo = append(todo, s)
	}
	return todo, skipped, nil
}

// readGatewayCSR reads and checks the CSR of serial in dir, as the CA will.
func readGatewayCSR(dir, serial string) ([]byte, error) {
	var data []byte
	var err error
	for _, ext := range []string{".csr", ".pem"} {
		if data, err = os.ReadFile(filepath.Join(dir, serial+ext)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("csr of %s: no %s.csr or %s.pem in %s", serial, serial, serial, dir)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("csr of %s: not a PEM CERTIFICATE REQUEST", serial)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr of %s: %w", serial, err)
	}
	if csr.Subject.CommonName != serial {
		return nil, fmt.Errorf("csr of %s: its subject is %q, not the serial", serial, csr.Subject.CommonName)
	}
	if err := ca.CheckIDevIDRequest(csr); err != nil {
		return nil, fmt.Errorf("csr of %s: %w", serial, err)
	}
	return pem.EncodeToMemory(block), nil
}

// batch is one running RunBatch.
type batch struct {
	opts    BatchOptions
	j       *journal
	rootPEM []byte

	mu       sync.Mutex
	progress Progress
	refused  []GatewayError // reissues refused, in the batch's order
}

// runGroup provisions one group of gateways: keys made durable together,
// then the requests, then the bundles made durable and moved into place
// together. It returns the first refusal, or the parent context's error.
func (b *batch) runGroup(parent context.Context, serials []string, start time.Time) error {
	keys, err := b.prepareKeys(serials)
	if err != nil {
		return err
	}
	if err := b.j.sync(); err != nil {
		return err
	}
	// A refusal stops the group: gateways not started yet are left for the
	// next run.
	ctx, stop := context.WithCancel(parent)
	defer stop()
	results := make([]error, len(serials))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(b.opts.Concurrency, len(serials)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// A refused reissue is that gateway's alone: the others go on.
				if results[i] = b.provision(ctx, serials[i], keys[i]); results[i] != nil && !IsReissueRefusal(results[i]) {
					stop()
				}
			}
		}()
	}
feed:
	for i := range serials {
		select {
		case next <- i:
		case <-ctx.Done():
			for ; i < len(serials); i++ {
				results[i] = context.Canceled
			}
			break feed
		}
	}
	close(next)
	wg.Wait()

	if err := b.j.sync(); err != nil {
		return err
	}
	var first error
	var refused []GatewayError
	done, failed := 0, 0
	for i, s := range serials {
		err := results[i]
		if err == nil {
			err = b.j.commit(s)
		}
		switch {
		case err == nil:
			done++
		case errors.Is(err, context.Canceled) && parent.Err() == nil:
			// not attempted, or cut short by another gateway's refusal
		case IsReissueRefusal(err):
			failed++
			var api *APIError
			errors.As(err, &api) // the CA's words, without "gateway <serial>: "
			refused = append(refused, GatewayError{Serial: s, Err: api})
		default:
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if err := b.j.syncDir(); err != nil {
		return err
	}
	b.mu.Lock()
	b.progress.Done += done
	b.progress.Failed += failed
	b.refused = append(b.refused, refused...)
	b.progress.Elapsed = time.Since(start)
	p := b.progress
	b.mu.Unlock()
	if b.opts.Progress != nil {
		b.opts.Progress(p)
	}
	if err := parent.Err(); err != nil {
		return err
	}
	return first
}

// prepareKeys readies the journal entries of a group, on every CPU: key
// generation is most of a station's own work.
func (b *batch) prepareKeys(serials []string) ([]crypto.Signer, error) {
	keys := make([]crypto.Signer, len(serials))
	errs := make([]error, len(serials))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(serials); i = int(next.Add(1)) - 1 {
				keys[i], errs[i] = b.j.prepare(serials[i], b.opts.CSRDir)
			}
		}()
	}
	wg.Wait()
	return keys, errors.Join(errs...)
}

// provision does the requests for one gateway whose key is in the journal,
// and writes its bundle there.
func (b *batch) provision(ctx context.Context, serial string, key crypto.Signer) error {
	csr, err := csrFor(serial, b.opts.CSRDir, key)
	if err != nil {
		return err
	}
	var chain []byte
	err = retry(ctx, func() error {
		chain, err = b.opts.Client.Sign(ctx, serial, csr, b.opts.Reissue)
		return err
	})
	if err != nil {
		return fmt.Errorf("gateway %s: %w", serial, err)
	}
	leafPEM, leaf, err := firstCertificate(chain)
	if err != nil {
		return fmt.Errorf("gateway %s: %w", serial, err)
	}
	var reg *Registration
	err = retry(ctx, func() error {
		reg, err = b.opts.Client.Register(ctx, serial, b.opts.Model, leafPEM, b.opts.Reissue)
		return err
	})
	if err != nil {
		return fmt.Errorf("gateway %s: %w", serial, err)
	}
	bundle := Bundle{
		Serial: serial, Model: b.opts.Model, BootstrapURL: reg.BootstrapURL,
		ClaimSecret: reg.ClaimSecret, LabelCode: reg.LabelCode,
		IDevIDSerial: leaf.SerialNumber.String(), Fingerprint: fingerprint(leaf), NotAfter: leaf.NotAfter.UTC(),
	}
	if err := b.j.writeBundle(serial, bundle, chain, b.rootPEM, b.opts.Labels); err != nil {
		return fmt.Errorf("gateway %s: %w", serial, err)
	}
	return nil
}

// retry runs fn until it succeeds, fails for good, or about a minute of
// back-off has passed: network errors and busy or failing servers are
// retried, refusals are not.
func retry(ctx context.Context, fn func() error) error {
	delay := 100 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		err := fn()
		if err == nil || !temporary(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func temporary(err error) bool {
	var api *APIError
	if errors.As(err, &api) {
		return api.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

func firstCertificate(chain []byte) ([]byte, *x509.Certificate, error) {
	block, _ := pem.Decode(chain)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, errors.New("the CA's answer holds no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("the CA's certificate: %w", err)
	}
	return pem.EncodeToMemory(block), leaf, nil
}

// validModel: a model is printed on the label, so 1 to 32 printable ASCII
// characters without ZPL's '^' and '~'.
func validModel(m string) error {
	if m == "" || len(m) > 32 {
		return fmt.Errorf("model must be 1 to 32 characters")
	}
	for _, r := range m {
		if r < 0x20 || r > 0x7e || strings.ContainsRune("^~", r) {
			return fmt.Errorf("model %q: printable ASCII only, without ^ or ~", m)
		}
	}
	return nil
}
