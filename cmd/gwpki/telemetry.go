package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/telemetry"
)

type telemetryOptions struct {
	since, until string
	limit        int
	topic, after string
	json         bool
}

func newTelemetryCommand() *cobra.Command {
	o := &telemetryOptions{}
	cmd := &cobra.Command{
		Use:   "telemetry SERIAL [--since T] [--until T] [--limit N] [--topic T] [--json]",
		Short: "Show what a gateway published, oldest first (operator session)",
		Long: "Show the messages the gateway SERIAL published on its telemetry and state topics, as the broker stored them\n" +
			"(each before it was acknowledged): receive time, topic and payload. --since and --until are RFC 3339 times\n" +
			"or durations back from now (1h).",
		Args: exactlyOneSerial,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.since, "since", "", "only messages received at or after this time (RFC 3339, or a duration ago such as 1h)")
	f.StringVar(&o.until, "until", "", "only messages received before this time (RFC 3339, or a duration ago)")
	f.IntVar(&o.limit, "limit", 0, "at most N messages, 1 to 1000 (default 100)")
	f.StringVar(&o.topic, "topic", "", "only this exact topic, such as gw/SERIAL/state")
	f.StringVar(&o.after, "after", "", "continue after this cursor (printed when more messages follow)")
	f.BoolVar(&o.json, "json", false, `print the page as JSON: {"messages": [...], "next": CURSOR}`)
	return cmd
}

// timeFlag reads an RFC 3339 time or a duration back from now.
func timeFlag(name, s string, now time.Time) (string, error) {
	if s == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return "", withHint(fmt.Errorf("invalid --%s %q", name, s), "use an RFC 3339 time (2026-05-01T10:00:00Z) or a duration such as 30m")
	}
	return s, nil
}

func (o *telemetryOptions) run(cmd *cobra.Command, serial string) error {
	if cmd.Flags().Changed("limit") && (o.limit < 1 || o.limit > 1000) {
		return withHint(fmt.Errorf("invalid --limit %d", o.limit), "use a number from 1 to 1000")
	}
	now := time.Now()
	v := url.Values{}
	for _, f := range []struct{ name, val string }{{"since", o.since}, {"until", o.until}} {
		t, err := timeFlag(f.name, f.val, now)
		if err != nil {
			return err
		}
		if t != "" {
			v.Set(f.name, t)
		}
	}
	if o.limit > 0 {
		v.Set("limit", strconv.Itoa(o.limit))
	}
	if o.topic != "" {
		v.Set("topic", o.topic)
	}
	if o.after != "" {
		v.Set("after", o.after)
	}
	c, err := apiclient.Load()
	if err != nil {
		return apiclientError("read telemetry", err)
	}
	path := "/v1/devices/" + url.PathEscape(serial) + "/telemetry"
	if q := v.Encode(); q != "" {
		path += "?" + q
	}
	var page telemetry.Page
	if err := c.Do(cmd.Context(), http.MethodGet, path, nil, &page); err != nil {
		return apiclientError("read telemetry of "+serial, err)
	}
	if page.Messages == nil {
		page.Messages = []telemetry.Record{}
	}
	if o.json {
		return writeJSON(cmd, page)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTOPIC\tPAYLOAD")
	for _, m := range page.Messages {
		payload := string(m.Payload)
		if m.Payload == nil {
			payload = "base64:" + m.PayloadBase64
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Time.UTC().Format(time.RFC3339Nano), auditCell(m.Topic), payloadCell(payload))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "more messages: run again with --after %s\n", page.Next)
	}
	return nil
}

// payloadCell shows a payload as is, quoted only when it holds something a
// terminal should not print raw.
func payloadCell(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}
