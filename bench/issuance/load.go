package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

// job is one prepared sign request.
type job struct {
	serial string
	body   []byte // {"csr": PEM, "ott": token}
}

// signRequest is step-ca's /1.0/sign request body.
type signRequest struct {
	CSR string `json:"csr"`
	OTT string `json:"ott"`
}

// prepareJobs makes n fresh P-256 keys, CSRs (CN = serial, SAN URI
// urn:gwpki:gateway:<serial>) and one-time tokens for audience aud, the way a
// line station does (package provisioning), using every CPU.
func prepareJobs(ctx context.Context, n int, aud string, m *caMaterial) ([]job, error) {
	station := &provisioning.Station{Name: stationName, Key: m.station}
	jobs := make([]job, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, runtime.NumCPU())
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				serial := fmt.Sprintf("BENCH-%06d", i+1)
				j, err := newJob(serial, aud, station)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", serial, err)
					return
				}
				jobs[i] = j
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return jobs, ctx.Err()
}

func newJob(serial, aud string, station *provisioning.Station) (job, error) {
	_, csr, err := provisioning.NewGatewayKey(serial)
	if err != nil {
		return job{}, err
	}
	tok, err := station.Token(serial, aud, time.Now())
	if err != nil {
		return job{}, err
	}
	body, err := json.Marshal(signRequest{CSR: string(csr), OTT: tok})
	if err != nil {
		return job{}, err
	}
	return job{serial: serial, body: body}, nil
}

// client posts sign requests over keep-alive HTTPS connections, one per
// worker, reused from run to run. It writes each request as prebuilt bytes
// and reads the answer with net/http's response parser, which costs a
// fraction of net/http's client (its transport's goroutines, channels and
// per-request objects): on a 2-core machine every cycle the client saves
// goes to the server under test. Both servers get this same client.
type client struct {
	addr   string // host:port
	prefix []byte // "POST /1.0/sign HTTP/1.1\r\nHost: ...\r\n...Content-Length: "
	tls    *tls.Config
	idle   chan *conn
}

type conn struct {
	tc  *tls.Conn
	br  *bufio.Reader
	buf []byte
}

// newClient returns a client for signURL that trusts only roots and keeps
// up to c connections.
func newClient(signURL string, roots *x509.CertPool, c int) (*client, error) {
	u, err := url.Parse(signURL)
	if err != nil {
		return nil, err
	}
	prefix := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUser-Agent: gwpki-bench\r\nContent-Type: application/json\r\nContent-Length: "
	return &client{
		addr:   u.Host,
		prefix: []byte(prefix),
		// HTTP/1.1 for both servers: no ALPN, so no HTTP/2.
		tls:  &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, ServerName: u.Hostname()},
		idle: make(chan *conn, c),
	}, nil
}

// close closes the idle connections.
func (cl *client) close() {
	for {
		select {
		case cn := <-cl.idle:
			cn.tc.Close()
		default:
			return
		}
	}
}

func (cl *client) get() (*conn, error) {
	select {
	case cn := <-cl.idle:
		return cn, nil
	default:
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", cl.addr, cl.tls)
	if err != nil {
		return nil, err
	}
	return &conn{tc: tc, br: bufio.NewReaderSize(tc, 16<<10)}, nil
}

func (cl *client) put(cn *conn) {
	select {
	case cl.idle <- cn:
	default:
		cn.tc.Close()
	}
}

// post sends one request on cn; on any error the connection is closed and
// *cn set to nil, so the next request dials afresh.
func (cl *client) post(cn **conn, body []byte) outcome {
	t0 := time.Now()
	if *cn == nil {
		c, err := cl.get()
		if err != nil {
			return outcome{err: err, latency: time.Since(t0)}
		}
		*cn = c
	}
	c := *cn
	c.buf = append(append(strconv.AppendInt(append(c.buf[:0], cl.prefix...), int64(len(body)), 10), "\r\n\r\n"...), body...)
	_ = c.tc.SetDeadline(t0.Add(time.Minute))
	resp, err := c.write()
	if err != nil {
		c.tc.Close()
		*cn = nil
		return outcome{err: err, latency: time.Since(t0)}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.tc.Close()
		*cn = nil
	}
	return outcome{status: resp.StatusCode, body: b, err: err, latency: time.Since(t0)}
}

func (c *conn) write() (*http.Response, error) {
	if _, err := c.tc.Write(c.buf); err != nil {
		return nil, err
	}
	return http.ReadResponse(c.br, nil)
}

// outcome is what one request got.
type outcome struct {
	status  int
	body    []byte
	err     error
	latency time.Duration
}

// loadRun is the outcome of sending a set of jobs.
type loadRun struct {
	jobs     []job
	outcomes []outcome
	wall     time.Duration // from the first request sent to the last answer read
}

// runLoad sends every job from c workers and times each.
func runLoad(ctx context.Context, cl *client, jobs []job, c int) *loadRun {
	r := &loadRun{jobs: jobs, outcomes: make([]outcome, len(jobs))}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(c, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cn *conn
			defer func() {
				if cn != nil {
					cl.put(cn)
				}
			}()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				r.outcomes[i] = cl.post(&cn, jobs[i].body)
			}
		}()
	}
	wg.Wait()
	r.wall = time.Since(start)
	return r
}

// latencies returns the latencies of the successful requests, sorted.
func (r *loadRun) latencies() []time.Duration {
	var l []time.Duration
	for _, o := range r.outcomes {
		if o.err == nil && o.status/100 == 2 {
			l = append(l, o.latency)
		}
	}
	slices.Sort(l)
	return l
}

// failures counts the requests that failed and keeps the first reason.
type failures struct {
	count int
	first error
}

func (f *failures) add(err error) {
	if f.count == 0 {
		f.first = err
	}
	f.count++
}

// signResponse is the part of step-ca's /1.0/sign answer that is checked.
type signResponse struct {
	Crt       string   `json:"crt"`
	CA        string   `json:"ca"`
	CertChain []string `json:"certChain"`
}

// check verifies, after the timed window, every answer: a 2xx with a leaf for
// the job's serial (CN and SAN URI) that chains to the root.
func (r *loadRun) check(m *caMaterial) failures {
	var f failures
	for i, o := range r.outcomes {
		if err := checkOutcome(r.jobs[i].serial, o, m); err != nil {
			f.add(fmt.Errorf("%s: %w", r.jobs[i].serial, err))
		}
	}
	return f
}

func checkOutcome(serial string, o outcome, m *caMaterial) error {
	if o.err != nil {
		return o.err
	}
	if o.status/100 != 2 {
		return fmt.Errorf("status %d: %s", o.status, bytes.TrimSpace(o.body[:min(len(o.body), 300)]))
	}
	var resp signResponse
	if err := json.Unmarshal(o.body, &resp); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	chain := resp.CertChain
	if len(chain) == 0 {
		chain = []string{resp.Crt, resp.CA}
	}
	var certs []*x509.Certificate
	for _, p := range chain {
		rest := []byte(p)
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return fmt.Errorf("parse certificate: %w", err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		return errors.New("answer holds no certificate")
	}
	leaf := certs[0]
	if leaf.Subject.CommonName != serial {
		return fmt.Errorf("leaf CN %q; want %q", leaf.Subject.CommonName, serial)
	}
	if want := ca.GatewayURIPrefix + serial; len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		return fmt.Errorf("leaf SAN URIs %v; want [%s]", leaf.URIs, want)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         m.rootPool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("verify leaf: %w", err)
	}
	return nil
}
