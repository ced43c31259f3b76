package crl

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// staleWarnEvery spaces ServeHTTP's warnings about serving a CRL past its
// nextUpdate.
const staleWarnEvery = time.Minute

// ServeHTTP serves GET and HEAD of a shard's CRL, named by the last element
// of the request path ("…/crl/00ff.crl"), as DER (application/pkix-crl) that
// caches may keep until its nextUpdate. It answers If-None-Match and
// If-Modified-Since with 304, an unknown name with 404 and other methods with
// 405. It takes no lock.
func (b *Builder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := req.URL.Path
	s, ok := parseName(p[strings.LastIndexByte(p, '/')+1:], len(b.shards))
	if !ok {
		http.NotFound(w, req)
		return
	}
	c := b.shards[s].cur.Load()
	now := b.cfg.Clock()
	maxAge := int64(c.nextUpdate.Sub(now) / time.Second)
	if maxAge <= 0 {
		maxAge = 0
		b.warnStale(s, c, now)
	}
	h := w.Header()
	h.Set("Content-Type", "application/pkix-crl")
	h.Set("Cache-Control", "public, no-transform, max-age="+strconv.FormatInt(maxAge, 10))
	h.Set("Expires", c.nextUpdate.Format(http.TimeFormat))
	h.Set("ETag", c.etag)
	http.ServeContent(w, req, "", c.thisUpdate, bytes.NewReader(c.der))
}

// warnStale logs, at most once per staleWarnEvery, that a CRL past its
// nextUpdate is being served.
func (b *Builder) warnStale(s int, c *signed, now time.Time) {
	last := b.staleWarn.Load()
	if now.Unix()-last < int64(staleWarnEvery/time.Second) || !b.staleWarn.CompareAndSwap(last, now.Unix()) {
		return
	}
	b.log.Error("serving a CRL past its nextUpdate; relying parties will reject it",
		"shard", ShardName(s), "next_update", c.nextUpdate, "crl_number", c.number)
}
