package main

import (
	"encoding/json"
	"fmt"
	"net/http"
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
	fs.BoolVar(&o.json, "json", false, `print the page as JSON: {"devices": [...], "next": SERIAL}`)
	fs.StringVar(&o.query.State, "state", "", "only gateways in this state: "+strings.Join(claimStates, ", "))
	fs.StringVar(&o.query.Model, "model", "", "only gateways of this model (exact match)")
	fs.StringVar(&o.query.Org, "org", "", "only gateways of this organisation (admins; operators see only their own)")
	fs.IntVar(&o.query.Limit, "limit", 0, fmt.Sprintf("show at most N gateways, 1 to %d (default %d)", claim.MaxDeviceLimit, claim.DefaultDeviceLimit))
	fs.StringVar(&o.query.After, "after", "", "show gateways whose serial sorts after SERIAL (the next page)")
}

// claimStates are the states --state accepts.
var claimStates = []string{claim.StateUnclaimed, claim.StateClaimed}

func newDevicesCommand() *cobra.Command {
	o := &devicesOptions{}
	cmd := &cobra.Command{
		Use:   "devices [--json] [--state S] [--model M] [--org O] [--limit N] [--after SERIAL]",
		Short: "List the registered gateways (operator session)",
		Long: `List the gateways that line stations have registered, sorted by serial:
model, claim state, the organisation that claimed it, the station that
registered it, when its birth certificate expires and when it was
registered. Operators see their organisation's gateways; admins see all,
unclaimed ones too. Claim codes and secrets are never shown. A page ends where --limit or the server's scan bound stops it;
the command then says which --after shows the next page.`,
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
	fmt.Fprintln(tw, "SERIAL\tMODEL\tSTATE\tORG\tSTATION\tIDEVID-EXPIRES\tREGISTERED")
	for _, d := range page.Devices {
		org := d.Org
		if org == "" {
			org = "-"
		}
		// What a station sent (the model) is shown escaped, never raw.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", auditCell(d.Serial), auditCell(d.Model), auditCell(d.State),
			auditCell(org), auditCell(d.Station), d.IDevIDNotAfter.UTC().Format(time.DateOnly), d.RegisteredAt.UTC().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "more gateways: run again with --after %s\n", page.Next)
	}
	return nil
}
