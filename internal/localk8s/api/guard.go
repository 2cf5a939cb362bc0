package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Guard serves h, the API and the dashboard, to this machine's own
// clients only, refusing with 403 what a web page the user visits could
// make the browser send them:
//
//   - a request whose Host is a DNS name other than localhost. With DNS
//     rebinding, a page's own name made to resolve to 127.0.0.1 is the
//     page's origin, so the browser lets it read the answers (the
//     snapshot) unless the server refuses names it does not answer to.
//   - a cross-origin request that is not GET, HEAD or OPTIONS
//     ([http.CrossOriginProtection]): a page's form or fetch could
//     otherwise restart Deployments. Clients that are not browsers, such
//     as `shoal rollout`, send no Origin or Sec-Fetch-Site and pass.
func Guard(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin " + r.Method + " refused: shoal up changes nothing for another site's page"})
	}))
	protected := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("host %q refused: reach shoal up by an IP address or localhost", r.Host)})
			return
		}
		protected.ServeHTTP(w, r)
	})
}

// localHost reports whether a Host header names an IP address or
// localhost, the names that DNS rebinding cannot take.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return strings.EqualFold(host, "localhost")
}
