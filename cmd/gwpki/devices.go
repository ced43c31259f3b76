package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/apiclient"
)

type devicesOptions struct {
	json  bool
	query claim.DeviceQuery
}

func (o *devicesOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.json, "json", false, `print the page as JSON: {"devices": [...], "next": CURSOR}`)
	fs.StringVar(&o.query.State, "state", "", "only gateways in this state: "+strings.Join(claimStates, ", "))
	fs.StringVar(&o.query.Model, "model", "", "only gateways of this model (exact match)")
	fs.StringVar(&o.query.Org, "org", "", "only gateways of this organisation (admins; operators see only their own)")
	fs.IntVar(&o.query.Limit, "limit", 0, fmt.Sprintf("show at most N gateways, 1 to %d (default %d)", claim.MaxDeviceLimit, claim.DefaultDeviceLimit))
	fs.StringVar(&o.query.Sort, "sort", "", "sort by "+strings.Join(deviceSorts, ", ")+" (default serial; equal keys in serial order)")
	fs.BoolVar(&o.query.Desc, "desc", false, "sort in descending order")
	fs.StringVar(&o.query.Search, "q", "", "only gateways whose serial or model contains TEXT, ignoring case")
	fs.StringVar(&o.query.After, "after", "", "show the next page: the CURSOR the previous page printed (sorted by serial, any serial works)")
}

// claimStates are the states --state accepts.
var claimStates = []string{claim.StateUnclaimed, claim.StateClaimed}

// deviceSorts are the keys --sort accepts.
var deviceSorts = []string{claim.SortSerial, claim.SortModel, claim.SortState, claim.SortOrg, claim.SortRegistered}

func newDevicesCommand() *cobra.Command {
	o := &devicesOptions{}
	cmd := &cobra.Command{
		Use:   "devices [--json] [--sort KEY] [--desc] [--q TEXT] [--state S] [--model M] [--org O] [--limit N] [--after CURSOR]",
		Short: "List the registered gateways (operator session)",
		Long: `List the gateways that line stations have registered, sorted by serial
or by --sort: model, claim state, the organisation that claimed it, the
station that registered it, whether it is connected now, when its newest
message arrived, when its operational certificate expires, when its birth
certificate expires and when it was registered. STATE is "locked" for a
gateway whose claims are locked after too many wrong codes (gwpki unlock
lifts it) and "revoked" for a decommissioned one; --json also carries the
lock (claim_lock: locked or backoff, claim_retry_after, claim_failures,
claim_last_failure). Operators see their
organisation's gateways; admins see all, unclaimed ones too. Claim codes
and secrets are never shown. A page ends where --limit stops it; the
command then prints, on stderr, the --after CURSOR of the next page (with
the --sort and --desc it needs: keep the filters the same too).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *devicesOptions) run(cmd *cobra.Command) error {
	// Checked here, not left to the server, because a --limit of 0 would
	// otherwise quietly mean the default.
	if l := o.query.Limit; cmd.Flags().Changed("limit") && (l < 1 || l > claim.MaxDeviceLimit) {
		return withHint(fmt.Errorf("invalid --limit %d", l), fmt.Sprintf("use a number from 1 to %d", claim.MaxDeviceLimit))
	}
	if o.query.State == claim.ClaimLockLocked {
		// Not a claim state: the lock lives with the attempt counters,
		// which the server's device index does not hold.
		return withHint(errors.New("--state locked is not a filter the server has"),
			"list the gateways and look for STATE locked, or claim_lock in --json")
	}
	if s := o.query.Sort; s != "" && !slices.Contains(deviceSorts, s) {
		return withHint(fmt.Errorf("unknown --sort %q", s), "use one of: "+strings.Join(deviceSorts, ", "))
	}
	c, err := apiclient.Load()
	if err != nil {
		return apiclientError("list devices", err)
	}
	path := "/v1/devices"
	if q := o.query.Encode(); q != "" {
		path += "?" + q
	}
	var page claim.DevicePage
	if err := c.Do(cmd.Context(), http.MethodGet, path, nil, &page); err != nil {
		return apiclientError("list devices", err)
	}
	if page.Devices == nil {
		page.Devices = []claim.Device{}
	}
	out := cmd.OutOrStdout()
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(page)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tMODEL\tSTATE\tORG\tSTATION\tONLINE\tLAST-SEEN\tCERT-EXPIRES\tIDEVID-EXPIRES\tREGISTERED")
	for _, d := range page.Devices {
		online := "no"
		if d.Online {
			online = "yes"
		}
		// What a station sent (the model) is shown escaped, never raw;
		// auditCell shows an empty org as "-".
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", auditCell(d.Serial), auditCell(d.Model), auditCell(deviceState(d)),
			auditCell(d.Org), auditCell(d.Station), online, timeCell(d.LastSeen, time.RFC3339), timeCell(d.CertNotAfter, time.DateOnly),
			d.IDevIDNotAfter.UTC().Format(time.DateOnly), d.RegisteredAt.UTC().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "more gateways: run again with %s\n", o.nextArgs(page.Next))
	}
	return nil
}

// deviceState is the STATE column, as the TUI's fleet table shows it:
// "revoked" for a decommissioned gateway (it can never come back), else
// "locked" for one whose claims are locked until an unlock, else the claim
// state. A back-off, which ends by itself, shows only in --json.
func deviceState(d claim.Device) string {
	switch {
	case d.Revoked:
		return "revoked"
	case d.ClaimLock == claim.ClaimLockLocked:
		return "locked"
	}
	return d.State
}

// nextArgs returns the flags that show the page after the one whose
// [claim.DevicePage.Next] is next: the cursor, shell-quoted when it needs
// it (an opaque cursor starts with "~"), after the --sort and --desc it is
// only valid with.
func (o *devicesOptions) nextArgs(next string) string {
	var args []string
	if o.query.Sort != "" {
		args = append(args, "--sort", o.query.Sort)
	}
	if o.query.Desc {
		args = append(args, "--desc")
	}
	return strings.Join(append(args, "--after", shellQuote(next)), " ")
}

// shellQuote returns s as one POSIX shell word: unchanged when it is only
// letters, digits and - . _ / : = , (and does not start with -), else in
// single quotes.
func shellQuote(s string) string {
	safe := s != "" && s[0] != '-'
	for i := 0; safe && i < len(s); i++ {
		c := s[i]
		safe = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._/:=,", c) >= 0
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// timeCell formats t in UTC with layout, "-" when it is zero.
func timeCell(t time.Time, layout string) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(layout)
}
