// Package demo runs the whole story of gwpki in one process, narrated and
// checked: a CA and its server in a scratch directory, a production-line
// station, gateways provisioned with labels and brought online by their
// agents, a claim by an installer with the code a gateway prints, that
// gateway's telemetry, and a revocation that cuts another gateway off the
// broker and shows in OCSP. Every step talks to the server through its real
// interfaces (HTTPS, MQTT over mutual TLS, OCSP over HTTP) on loopback.
package demo

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/gwpki/gwpki/gateway"
	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/internal/server"
	"github.com/gwpki/gwpki/provisioning"
)

// Options configure [Run].
type Options struct {
	// Out receives the narration.
	Out io.Writer
	// Dir holds the data directory, the gateways' bundles and the logs. It
	// must be absent or empty; "" means a new temporary directory.
	Dir string
	// Keep leaves Dir in place at the end. It is always kept when a check
	// failed, so that the logs can be read.
	Keep bool
	// Gateways is how many gateways to provision (at least 3).
	Gateways int
	// Interval is the agents' telemetry interval (default 500 ms).
	Interval time.Duration
	// Timeout bounds the whole story (default 2 minutes).
	Timeout time.Duration
}

// The story's cast.
const (
	org           = "acme"
	installerName = "ines"
	operatorName  = "oscar"
	stationName   = "line1"
	model         = "PumpCtl-2"
)

// story is one run: what the steps made, for the steps after them.
type story struct {
	o   Options
	n   *narrator
	dir string // everything: data/, out/, logs
	log *slog.Logger

	data, out string // the server's data directory, the bundles
	ready     server.Ready
	rootPEM   []byte
	root      *x509.Certificate
	adminPW   string
	serverErr chan error
	stopSrv   context.CancelFunc

	station *provisioning.Station
	serials []string

	agents    []*gateway.Agent
	consoles  []*console
	agentsWG  sync.WaitGroup
	stopAgent context.CancelFunc

	admin, installer, operator *apiclient.Client
}

// Run tells the story and returns nil only when every check passed.
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	o.Gateways = max(o.Gateways, 3)
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	dir, err := scratchDir(o.Dir)
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	s := &story{
		o:    o,
		n:    &narrator{w: o.Out, start: time.Now()},
		dir:  dir,
		log:  slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
		data: filepath.Join(dir, "data"),
		out:  filepath.Join(dir, "out"),
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	fmt.Fprintf(o.Out, "gwpki demo: the life of %d gateways, from the production line to revocation, in %s\n", o.Gateways, dir)
	steps := []func(context.Context) error{
		s.startServer, s.addStation, s.provision, s.startAgents, s.claim, s.telemetry, s.revoke,
	}
	for _, step := range steps {
		if err = step(ctx); err != nil {
			break
		}
	}
	if err != nil {
		s.n.failed(err)
	}
	if cerr := s.cleanUp(err == nil); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(o.Out, "\nThe demo failed at step %d after %d checks passed. Kept %s for inspection (demo.log has the server's log).\n",
			s.n.step, s.n.checks, dir)
		return errors.New("demo failed")
	}
	fmt.Fprintf(o.Out, "\nAll %d checks passed in %s.\n", s.n.checks, since(s.n.start))
	return nil
}

// scratchDir makes dir (or a temporary directory when dir is ""), which
// must be absent or empty.
func scratchDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "gwpki-demo-")
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return "", fmt.Errorf("%s is not empty; the demo needs an empty or new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Abs(dir)
}

// cleanUp stops the agents and the server and removes the directory unless
// it is to be kept. It is a step of its own when the story went well.
func (s *story) cleanUp(passed bool) error {
	if passed {
		s.n.title("Clean up")
	}
	var errs []error
	if s.stopAgent != nil {
		s.stopAgent()
		if waitGroup(&s.agentsWG, 15*time.Second) {
			if passed {
				s.n.ok("%d agents said goodbye and stopped", len(s.agents))
			}
		} else {
			errs = append(errs, errors.New("the agents did not stop within 15s"))
		}
	}
	if s.stopSrv != nil {
		s.stopSrv()
		select {
		case err := <-s.serverErr:
			if err != nil {
				errs = append(errs, fmt.Errorf("the server stopped with an error: %w", err))
			} else if passed {
				s.n.ok("server shut down cleanly: listeners closed, store committed and closed")
			}
		case <-time.After(30 * time.Second):
			errs = append(errs, fmt.Errorf("the server did not stop within 30s (goroutines in %s)", s.dumpGoroutines()))
		}
	}
	err := errors.Join(errs...)
	if err != nil && passed {
		s.n.failed(err)
	}
	if err != nil || !passed || s.o.Keep {
		if passed && err == nil {
			s.n.say("kept %s (--keep)", s.dir)
		}
		return err
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		s.n.failed(rmErr)
		return rmErr
	}
	s.n.ok("removed %s", s.dir)
	return nil
}

// dumpGoroutines writes every goroutine's stack to the story's directory,
// for a hang that should not happen.
func (s *story) dumpGoroutines() string {
	path := filepath.Join(s.dir, "goroutines.txt")
	f, err := os.Create(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	pprof.Lookup("goroutine").WriteTo(f, 2)
	return path
}

func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
