package broker

import (
	"context"
	"log/slog"
)

// redactedKeys are the attributes mochi attaches to its own log lines that
// carry whole packets or wills, payload included. Payloads are the
// gateways' data and never go to the log.
var redactedKeys = map[string]bool{"pk": true, "packet": true, "will": true, "payload": true}

// redactHandler drops redactedKeys from every record; it is the handler of
// the logger given to mochi.
type redactHandler struct{ h slog.Handler }

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		if !redactedKeys[a.Key] {
			out.AddAttrs(a)
		}
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	kept := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if !redactedKeys[a.Key] {
			kept = append(kept, a)
		}
	}
	return redactHandler{r.h.WithAttrs(kept)}
}

func (r redactHandler) WithGroup(name string) slog.Handler { return redactHandler{r.h.WithGroup(name)} }
