package main

import (
	"bufio"

	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/gateway"
	"github.com/gwpki/gwpki/provisioning"
)

type gatewayRunOptions struct {
	bundle   string
	interval time.Duration
	verbose  bool
}

func newGatewayRunCommand() *cobra.Command {
	o := &gatewayRunOptions{}
	cmd := &cobra.Command{
		Use:   "run --bundle OUT/<serial>",
		Short: "Run one gateway: bootstrap, MQTT over mutual TLS, telemetry, claim code, renewal",
		Long: "Run the agent of the gateway whose bundle is OUT/<serial>: bootstrap an operational certificate with its birth\n" +
			"certificate (kept in the bundle as operational.key, operational.crt and bootstrap.json), connect to the broker\n" +
			"the server names, publish pump telemetry every --interval, print the claim code until the gateway is claimed,\n" +
			"renew the certificate at two thirds of its life, reconnect with back-off and bootstrap again when refused.\n" +
			"Each line on standard input, or a SIGUSR1, is a press of the gateway's claim button. See docs/gateway.md.",
		Args: cobra.NoArgs,
		RunE: o.run,
	}
	cmd.Flags().StringVar(&o.bundle, "bundle", "", "the gateway's bundle directory, OUT/<serial> from gwpki provision (required)")
	cmd.Flags().DurationVar(&o.interval, "interval", 5*time.Second, "time between telemetry messages")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "log details to stderr")
	return cmd
}

func (o *gatewayRunOptions) run(cmd *cobra.Command, _ []string) error {
	if o.bundle == "" {
		return withHint(errors.New("no bundle given"), "pass --bundle OUT/<serial> (a folder gwpki provision wrote)")
	}
	if o.interval <= 0 {
		return withHint(fmt.Errorf("--interval %s is not a positive duration", o.interval), "e.g. --interval 5s")
	}
	b, err := readGatewayBundle(o.bundle)
	if err != nil {
		return err
	}
	if err := b.Check(); err != nil {
		return err
	}
	a := gateway.NewAgent(b, gateway.AgentOptions{
		Interval: o.interval,
		Console:  cmd.OutOrStdout(),
		Logger:   agentLogger(cmd.ErrOrStderr(), o.verbose),
	})
	go readLines(cmd.InOrStdin(), func(string) { a.PressButton() })
	stop := notifyButton(a.PressButton)
	defer stop()
	fmt.Fprintf(cmd.ErrOrStderr(), "gateway %s: press Enter%s to press its claim button; Ctrl-C stops it\n", b.Serial, buttonSignalHint())
	return a.Run(cmd.Context())
}

func agentLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// readLines calls f with each line of r until r ends.
func readLines(r io.Reader, f func(string)) {
	if r == nil {
		return
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f(strings.TrimSpace(sc.Text()))
	}
}

type gatewaySimOptions struct {
	bundles  string
	count    int
	interval time.Duration
	stagger  time.Duration
	summary  time.Duration
	verbose  bool
}

func newGatewaySimCommand() *cobra.Command {
	o := &gatewaySimOptions{}
	cmd := &cobra.Command{
		Use:   "sim --bundles OUT [--count N]",
		Short: "Run many gateways in one process, for demos and load",
		Long: "Run the agents of the first --count bundle folders of OUT, in serial order (all by default), in this process,\n" +
			"each as gwpki gateway run would, their starts spread --stagger apart. Console lines start with each gateway's\n" +
			"serial; a summary (connected, claimed, messages per second) goes to stderr every 10 seconds. A line\n" +
			"SERIAL on standard input presses that gateway's claim button. See docs/gateway.md.",
		Args: cobra.NoArgs,
		RunE: o.run,
	}
	cmd.Flags().StringVar(&o.bundles, "bundles", "", "the output folder of gwpki provision, holding OUT/<serial> bundles (required)")
	cmd.Flags().IntVar(&o.count, "count", 0, "run the first N bundles in serial order (0: all)")
	cmd.Flags().DurationVar(&o.interval, "interval", 5*time.Second, "time between each gateway's telemetry messages")
	cmd.Flags().DurationVar(&o.stagger, "stagger", 20*time.Millisecond, "time between two gateways' starts")
	cmd.Flags().DurationVar(&o.summary, "summary-every", 10*time.Second, "time between summary lines")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "log details to stderr")
	return cmd
}

func (o *gatewaySimOptions) run(cmd *cobra.Command, _ []string) error {
	if o.bundles == "" {
		return withHint(errors.New("no bundles folder given"), "pass --bundles OUT (the --out folder of gwpki provision)")
	}
	if o.count < 0 {
		return fmt.Errorf("--count %d is negative", o.count)
	}
	if o.interval <= 0 || o.summary <= 0 || o.stagger < 0 {
		return errors.New("--interval and --summary-every must be positive, --stagger not negative")
	}
	dirs, err := bundleDirs(o.bundles)
	if err != nil {
		return err
	}
	if o.count > 0 && o.count < len(dirs) {
		dirs = dirs[:o.count]
	}
	stderr := cmd.ErrOrStderr()
	if warning := checkFileLimit(len(dirs)); warning != "" {
		fmt.Fprintln(stderr, warning)
	}
	console := &lockedWriter{w: cmd.OutOrStdout()}
	logger := agentLogger(stderr, o.verbose)
	agents := make([]*gateway.Agent, len(dirs))
	bySerial := map[string]*gateway.Agent{}
	for i, dir := range dirs {
		b, err := readGatewayBundle(dir)
		if err != nil {
			return err
		}
		if err := b.Check(); err != nil {
			return err
		}
		agents[i] = gateway.NewAgent(b, gateway.AgentOptions{Interval: o.interval, Console: console, Logger: logger})
		bySerial[b.Serial] = agents[i]
	}
	fmt.Fprintf(stderr, "sim: %d gateways from %s, one every %s; a line SERIAL on stdin presses its claim button\n", len(agents), o.bundles, o.stagger)

	ctx := cmd.Context()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the launcher: staggered starts, so the server sees a ramp
		defer wg.Done()
		for i, a := range agents {
			if i > 0 && o.stagger > 0 {
				select {
				case <-time.After(o.stagger):
				case <-ctx.Done():
					return
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := a.Run(ctx); err != nil {
					fmt.Fprintf(console, "%s stopped: %v\n", a.Status().Serial, err)
				}
			}()
		}
	}()
	go readLines(cmd.InOrStdin(), func(line string) {
		if line == "" {
			return
		}
		if a, ok := bySerial[line]; ok {
			a.PressButton()
		} else {
			fmt.Fprintf(stderr, "sim: no gateway %q in this simulation\n", line)
		}
	})

	tick := time.NewTicker(o.summary)
	defer tick.Stop()
	last, lastAt := simTotals(agents), time.Now()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			fmt.Fprintln(stderr, simSummary(agents, last, simTotals(agents), time.Since(lastAt)))
			return nil
		case now := <-tick.C:
			t := simTotals(agents)
			fmt.Fprintln(stderr, simSummary(agents, last, t, now.Sub(lastAt)))
			last, lastAt = t, now
		}
	}
}

type simCounts struct {
	connected, claimed, started int
	published, acked            uint64
}

func simTotals(agents []*gateway.Agent) simCounts {
	var c simCounts
	for _, a := range agents {
		s := a.Status()
		if s.Connected {
			c.connected++
		}
		if s.Claimed {
			c.claimed++
		}
		c.published += s.Published
		c.acked += s.Acked
	}
	return c
}

func simSummary(agents []*gateway.Agent, prev, now simCounts, d time.Duration) string {
	secs := max(d.Seconds(), 0.001)
	return fmt.Sprintf("sim: %d gateways, %d connected, %d claimed, %.1f msgs/s (%.1f acked/s), %d published",
		len(agents), now.connected, now.claimed,
		float64(now.published-prev.published)/secs, float64(now.acked-prev.acked)/secs, now.published)
}

// bundleDirs returns the bundle folders of out (those holding a
// gateway.json), in serial order.
func bundleDirs(out string) ([]string, error) {
	entries, err := os.ReadDir(out)
	if err != nil {
		return nil, withHint(fmt.Errorf("read bundles: %w", err), "--bundles is the --out folder of gwpki provision")
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := os.Stat(filepath.Join(out, e.Name(), provisioning.GatewayFile)); err == nil {
			dirs = append(dirs, filepath.Join(out, e.Name()))
		}
	}
	if len(dirs) == 0 {
		return nil, withHint(fmt.Errorf("no gateway bundles in %s", out), "--bundles is the --out folder of gwpki provision, holding OUT/<serial>/gateway.json")
	}
	slices.Sort(dirs)
	return dirs, nil
}

// lockedWriter makes each Write whole among the agents sharing a console.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
