package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/gwpki/gwpki/provisioning"
)

type provisionOptions struct {
	caURL       string
	root        string
	station     string
	count       int
	out         string
	prefix      string
	start       int
	serialsFile string
	model       string
	concurrency int
	labels      string
	csrDir      string
	reissue     bool
	json        bool
}

func (o *provisionOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.caURL, "ca", "", "CA URL (default: the station file's)")
	fs.StringVar(&o.root, "root", "", "the CA's root certificate, PEM (required)")
	fs.StringVar(&o.station, "station", "", "station file from gwpki station add (required)")
	fs.IntVar(&o.count, "count", 0, "how many gateways (with --serial-prefix; with --serials, the first N)")
	fs.StringVar(&o.out, "out", "", "output directory: a bundle per gateway, the manifest (required)")
	fs.StringVar(&o.prefix, "serial-prefix", "", "serials are PREFIX followed by a 6-digit number from --start")
	fs.IntVar(&o.start, "start", 1, "first number with --serial-prefix")
	fs.StringVar(&o.serialsFile, "serials", "", "file with one serial per line (# comments and blank lines ignored)")
	fs.StringVar(&o.model, "model", "gateway", "gateway model, recorded and printed on the label (1 to 32 characters)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "requests in flight")
	fs.StringVar(&o.labels, "label", "", "label formats to write, comma-separated: png, zpl, svg")
	fs.StringVar(&o.csrDir, "csr-dir", "", "the gateways' own CSRs, DIR/<serial>.csr: no key is made on the station")
	fs.BoolVar(&o.reissue, "reissue", false, "replace the birth certificate of gateways provisioned before (the old one is revoked)")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON on stdout")
}

func newProvisionCommand() *cobra.Command {
	o := &provisionOptions{}
	cmd := &cobra.Command{
		Use:   "provision --root ROOT --station station.json --out OUT (--serial-prefix P --count N | --serials FILE)",
		Short: "Provision a batch of gateways: key, birth certificate, registration, claim credentials, label",
		Long: "Provision a batch of gateways on a production-line station. For each serial: a P-256 key made here (or the\n" +
			"gateway's own CSR from --csr-dir), its birth certificate from the CA, its registration with its claim\n" +
			"credentials, and a bundle OUT/<serial>/ (idevid.crt, idevid.key, root.pem, gateway.json, labels), plus\n" +
			"OUT/manifest.jsonl and OUT/manifest.csv. Crash-safe: run the same command again and the batch finishes,\n" +
			"every gateway provisioned once; gateways already done are skipped.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *provisionOptions) run(cmd *cobra.Command) error {
	switch {
	case o.root == "":
		return withHint(errors.New("no root certificate given"), "pass --root ROOT.pem (the CA's certs/root_ca.crt)")
	case o.station == "":
		return withHint(errors.New("no station file given"), "pass --station station.json (from gwpki station add)")
	case o.out == "":
		return withHint(errors.New("no output directory given"), "pass --out DIR")
	}
	serials, err := o.serials()
	if err != nil {
		return err
	}
	station, err := provisioning.LoadStation(o.station)
	if err != nil {
		return err
	}
	rootPEM, err := os.ReadFile(o.root)
	if err != nil {
		return fmt.Errorf("read root: %w", err)
	}
	client, err := provisioning.NewClient(o.caURL, rootPEM, station, o.concurrency)
	if err != nil {
		return err
	}
	var labels []string
	if o.labels != "" {
		labels = strings.Split(o.labels, ",")
	}
	stderr := cmd.ErrOrStderr()
	progress := newProgressReporter(stderr, isTerminal(cmd.OutOrStdout()) && isTerminal(stderr))
	sum, err := provisioning.RunBatch(cmd.Context(), provisioning.BatchOptions{
		Client: client, Serials: serials, Model: o.model, Out: o.out, CSRDir: o.csrDir,
		Labels: labels, Concurrency: o.concurrency, Reissue: o.reissue, Progress: progress.update,
	})
	progress.finish()
	// Each refused reissue on a line of its own: the batch went on without
	// these gateways, whose bundles are unchanged.
	for _, r := range sum.Refused {
		fmt.Fprintf(stderr, "refused %s: %s\n", r.Serial, r.Err)
	}
	fmt.Fprintf(stderr, "provisioned %d gateways (%d skipped, %d failed) in %s, %.0f/s; bundles and manifest in %s\n",
		sum.Done, sum.Skipped, sum.Failed, sum.Elapsed.Round(time.Millisecond), sum.Rate(), o.out)
	if o.json {
		out := map[string]any{
			"done": sum.Done, "skipped": sum.Skipped, "failed": sum.Failed,
			"seconds": sum.Elapsed.Seconds(), "per_second": sum.Rate(), "out": o.out,
		}
		if len(sum.Refused) > 0 {
			refused := make([]map[string]string, len(sum.Refused))
			for i, r := range sum.Refused {
				refused[i] = map[string]string{"serial": r.Serial, "error": r.Err.Error()}
			}
			out["refused"] = refused
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		_ = enc.Encode(out)
	}
	if err != nil {
		return provisionError(err)
	}
	return nil
}

// serials are the batch's gateway serials, from --serials or from
// --serial-prefix, --start and --count.
func (o *provisionOptions) serials() ([]string, error) {
	switch {
	case o.serialsFile != "" && o.prefix != "":
		return nil, withHint(errors.New("--serials and --serial-prefix exclude each other"), "use one of them")
	case o.serialsFile != "":
		serials, err := readSerials(o.serialsFile)
		if err != nil {
			return nil, err
		}
		if o.count > 0 && o.count < len(serials) {
			serials = serials[:o.count]
		}
		return serials, nil
	case o.prefix != "":
		if o.count <= 0 {
			return nil, withHint(errors.New("no --count given"), "pass --count N with --serial-prefix")
		}
		if o.start < 0 {
			return nil, errors.New("--start must not be negative")
		}
		serials := make([]string, o.count)
		for i := range serials {
			serials[i] = fmt.Sprintf("%s%06d", o.prefix, o.start+i)
		}
		return serials, nil
	}
	return nil, withHint(errors.New("no serials given"), "pass --serial-prefix P --count N, or --serials FILE")
}

func readSerials(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read serials: %w", err)
	}
	defer f.Close()
	var serials []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		serials = append(serials, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read serials: %w", err)
	}
	if len(serials) == 0 {
		return nil, fmt.Errorf("read serials: %s lists no serial", path)
	}
	return serials, nil
}

// provisionError adds what to do to the CA's refusals.
func provisionError(err error) error {
	var refused *provisioning.RefusedError
	if errors.As(err, &refused) {
		return withHint(err, "a claimed gateway is reissued once its organisation (or an admin) has unclaimed it (gwpki unclaim SERIAL); "+
			"a decommissioned gateway stays revoked: provision a replacement under a new serial")
	}
	var api *provisioning.APIError
	if errors.As(err, &api) {
		switch api.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			return withHint(err, "is the station disabled (gwpki station ls) or its file for another CA? fix it and run the same command again to resume")
		case http.StatusConflict:
			return withHint(err, "the gateway was provisioned before with another key: pass --reissue to replace its birth certificate")
		}
		return withHint(err, "run the same command again to resume the batch")
	}
	return withHint(err, "run the same command again to resume the batch")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressReporter shows a batch's progress: a bar redrawn in place on a
// terminal, a plain line at most every two seconds otherwise.
type progressReporter struct {
	w    io.Writer
	tty  bool
	last time.Time
	p    provisioning.Progress
}

func newProgressReporter(w io.Writer, tty bool) *progressReporter {
	return &progressReporter{w: w, tty: tty}
}

func (r *progressReporter) update(p provisioning.Progress) {
	r.p = p
	now := time.Now()
	if !r.tty && now.Sub(r.last) < 2*time.Second {
		return
	}
	r.last = now
	r.draw()
}

func (r *progressReporter) draw() {
	p := r.p
	left := p.Total - p.Skipped
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Done) / p.Elapsed.Seconds()
	}
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(left-p.Done-p.Failed) / rate * float64(time.Second)).Round(time.Second).String()
	}
	status := strconv.Itoa(p.Done) + "/" + strconv.Itoa(left)
	if !r.tty {
		fmt.Fprintf(r.w, "provisioned %s gateways, %.0f/s, ETA %s, %d failed\n", status, rate, eta, p.Failed)
		return
	}
	const width = 30
	filled := 0
	if left > 0 {
		filled = width * (p.Done + p.Failed) / left
	}
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(r.w, "\r[%s] %s  %.0f/s  ETA %s ", bar, status, rate, eta)
}

func (r *progressReporter) finish() {
	if r.tty && r.p.Total > 0 {
		r.draw()
		fmt.Fprintln(r.w)
	}
}
