package server

import (
	"context"
	"log/slog"
	"maps"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/audit"
)

// auditRevocations records every revocation in the audit log, one entry per
// certificate in one durable write, before the revoking request is
// answered (subscribers run in the publisher's goroutine). An entry about a
// claimed gateway carries its organisation, so that its operators see it.
func auditRevocations(ctx context.Context, revocations interface {
	Subscribe(func(ca.Revocation))
}, log *audit.Log, registry *claim.Registry, logger *slog.Logger) {
	revocations.Subscribe(func(ev ca.Revocation) {
		entries := make([]audit.Entry, 0, len(ev.Certificates))
		orgs := map[string]string{}
		for _, c := range ev.Certificates {
			org, seen := orgs[c.Gateway]
			if !seen && c.Gateway != "" {
				if dev, err := registry.Device(ctx, c.Gateway); err == nil {
					org = dev.Org
				}
				orgs[c.Gateway] = org
			}
			detail := map[string]string{"serial": c.Serial.String(), "reason": c.Reason.String()}
			maps.Copy(detail, ev.Detail)
			target := c.Gateway
			if target == "" {
				target = audit.CertTarget(c.Serial.String())
			}
			entries = append(entries, audit.Entry{
				Time: c.RevokedAt, Actor: ev.Actor, Org: org, Action: "revoke", Target: target,
				Result: audit.ResultOK, Source: ev.Source, Detail: detail,
			})
		}
		// The revocation itself is durable already; a failure here is
		// logged, with what would have been recorded.
		if _, err := log.RecordAll(context.WithoutCancel(ctx), entries); err != nil {
			logger.Error("audit revocation", "err", err, "actor", ev.Actor, "certificates", len(entries))
		}
	})
}
