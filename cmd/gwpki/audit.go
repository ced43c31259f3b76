package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/internal/audit"
)

type auditOptions struct {
	json  bool
	query audit.Query
}

func (o *auditOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.json, "json", false, `print the page as JSON: {"entries": [...], "next": SEQ}`)
	fs.IntVar(&o.query.Limit, "limit", 0, "show at most N entries, 1 to 1000 (default 100)")
	fs.Uint64Var(&o.query.Before, "before", 0, "show entries older than sequence number SEQ (default: from the newest)")
	fs.StringVar(&o.query.Action, "action", "", "only entries of this action, such as revoke, login or claim")
	fs.StringVar(&o.query.Target, "target", "", "only entries about this target: a gateway serial, cert:SERIAL, a username")
	fs.StringVar(&o.query.Actor, "actor", "", "only entries by this actor, such as user:alice or step-ca")
	fs.StringVar(&o.query.Org, "org", "", "only entries of this organisation (admins; operators see only their own)")
}

func newAuditCommand() *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit [--json] [--limit N] [--before SEQ] [--action A] [--target T] [--actor U] [--org ORG]",
		Short: "Show the audit log, newest first (operator session)",
		Long: `Show the server's audit log, newest first: who did what to which gateway,
certificate or account, and whether it worked. Filters match whole values.
Operators see only their organisation's entries; admins see all, and may
pick one organisation with --org.
A page ends where --limit or the server's scan bound stops it; the command
then says which --before shows the older entries.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *auditOptions) run(cmd *cobra.Command) error {
	// Checked here, not left to the server, because a --limit of 0 would
	// otherwise quietly mean the default.
	if l := o.query.Limit; cmd.Flags().Changed("limit") && (l < 1 || l > audit.MaxLimit) {
		return withHint(fmt.Errorf("invalid --limit %d", l), fmt.Sprintf("use a number from 1 to %d", audit.MaxLimit))
	}
	c, err := apiclient.Load()
	if err != nil {
		return apiclientError("read audit log", err)
	}
	path := "/v1/audit"
	if q := o.query.Encode(); q != "" {
		path += "?" + q
	}
	var page audit.Page
	if err := c.Do(cmd.Context(), http.MethodGet, path, nil, &page); err != nil {
		return apiclientError("read audit log", err)
	}
	if page.Entries == nil {
		page.Entries = []audit.Entry{}
	}
	out := cmd.OutOrStdout()
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(page)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tORG\tACTION\tTARGET\tRESULT\tDETAILS")
	for _, e := range page.Entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339),
			auditCell(e.Actor), auditCell(e.Org), auditCell(e.Action), auditCell(e.Target), auditCell(e.Result), auditDetails(e.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "older entries: run again with --before %d\n", page.Next)
	}
	return nil
}

// auditCell shows s in one table cell: "-" when empty, quoted with escapes
// when it holds anything but printable characters, so that what a remote
// caller typed (a username at a failed login) can neither break the table
// nor send escape sequences to the terminal.
func auditCell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == '"' }) {
		return strconv.Quote(s)
	}
	return s
}

// auditDetails shows details as k=v sorted by key, values with spaces or
// quotes quoted, "-" when there are none.
func auditDetails(d map[string]string) string {
	if len(d) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := d[k]
		if v == "" || strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' || r == '"' }) {
			v = strconv.Quote(v)
		}
		parts[i] = auditCell(k) + "=" + v
	}
	return strings.Join(parts, " ")
}
