package clusterdns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// freeLoopback53 finds a loopback address whose port 53 is free over UDP
// and TCP. Resolvers reach a nameserver on port 53 only, and a running
// shoal up (or another test) may hold 127.0.2.10:53.
func freeLoopback53(t *testing.T) netip.Addr {
	t.Helper()
	for range 100 {
		ip := netip.AddrFrom4([4]byte{127, 53, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
		pc, ln, err := listen(netip.AddrPortFrom(ip, 53))
		if err != nil {
			continue
		}
		pc.Close()
		ln.Close()
		return ip
	}
	t.Fatal("no loopback address with a free port 53 (binding port 53 needs root)")
	return netip.Addr{}
}

// TestGoResolverFullName resolves through Go's own resolver dialing the
// server, as a Go program in a pod does.
func TestGoResolverFullName(t *testing.T) {
	s := startTest(t, Config{})
	s.Update(testTable())
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := &net.Resolver{
				PreferGo: true,
				Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, s.Addr().String())
				},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			addrs, err := r.LookupHost(ctx, "web.default.svc.cluster.local.")
			if err != nil || !slices.Equal(addrs, []string{"127.0.2.11"}) {
				t.Fatalf("LookupHost web: %q, %v", addrs, err)
			}
			addrs, err = r.LookupHost(ctx, "db.default.svc.cluster.local.")
			slices.Sort(addrs)
			if err != nil || !slices.Equal(addrs, []string{"127.0.1.2", "127.0.1.3"}) {
				t.Fatalf("LookupHost db: %q, %v", addrs, err)
			}
			cname, srvs, err := r.LookupSRV(ctx, "http", "tcp", "web.default.svc.cluster.local.")
			if err != nil || cname != "_http._tcp.web.default.svc.cluster.local." || len(srvs) != 1 ||
				srvs[0].Target != "web.default.svc.cluster.local." || srvs[0].Port != 80 {
				t.Fatalf("LookupSRV: %q %+v %v", cname, srvs, err)
			}
			_, err = r.LookupHost(ctx, "nope.default.svc.cluster.local.")
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
				t.Fatalf("LookupHost of an unknown Service: %v, want not found", err)
			}
		})
	}
}

// TestPodResolvConf runs real resolvers in a private mount namespace whose
// /etc/resolv.conf is the one ResolvConf renders, as shoal up runs a pod:
// the short forms reach the server expanded by the search list.
func TestPodResolvConf(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: bind-mounting a pod resolv.conf and serving port 53")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	getent, err := exec.LookPath("getent")
	if err != nil {
		t.Fatalf("getent (libc-bin) is needed: %v", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed to build testdata/lookup: %v", err)
	}
	dir := t.TempDir()
	lookup := filepath.Join(dir, "lookup")
	build := exec.Command(goBin, "build", "-o", lookup, "./testdata/lookup")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/lookup: %v\n%s", err, out)
	}

	ip := freeLoopback53(t)
	s := startTest(t, Config{Addr: netip.AddrPortFrom(ip, 53).String()})
	s.Update(testTable())
	rc := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(rc, ResolvConf("default", ip, ""), 0o644); err != nil {
		t.Fatal(err)
	}

	// inPod runs argv with rc over /etc/resolv.conf, as shoal up does.
	inPod := func(t *testing.T, env []string, argv ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := append([]string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c",
			`mount --bind "$0" /etc/resolv.conf && exec "$@"`, rc}, argv...)
		cmd := exec.CommandContext(ctx, unshare, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	tests := []struct {
		name string
		host string
		want []string
	}{
		{name: "NAME", host: "web", want: []string{"127.0.2.11"}},
		{name: "NAME.NS", host: "web.default", want: []string{"127.0.2.11"}},
		{name: "NAME.NS.svc", host: "web.default.svc", want: []string{"127.0.2.11"}},
		{name: "full name", host: "web.default.svc.cluster.local", want: []string{"127.0.2.11"}},
		{name: "other namespace", host: "noports.other", want: []string{"127.0.2.12"}},
		{name: "headless", host: "db", want: []string{"127.0.1.2", "127.0.1.3"}},
	}
	resolvers := []struct {
		name string
		env  []string
		argv func(host string) []string
		// parse turns the output into sorted addresses.
		parse func(out string) []string
	}{
		{name: "go", env: []string{"GODEBUG=netdns=go"},
			argv: func(h string) []string { return []string{lookup, h} }, parse: strings.Fields},
		{name: "cgo", env: []string{"GODEBUG=netdns=cgo"},
			argv: func(h string) []string { return []string{lookup, h} }, parse: strings.Fields},
		{name: "glibc getent", argv: func(h string) []string { return []string{getent, "ahostsv4", h} },
			parse: func(out string) []string {
				var addrs []string
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					if f := strings.Fields(line); len(f) > 0 && !slices.Contains(addrs, f[0]) {
						addrs = append(addrs, f[0])
					}
				}
				return addrs
			}},
	}
	for _, res := range resolvers {
		for _, tt := range tests {
			t.Run(res.name+"/"+tt.name, func(t *testing.T) {
				out, err := inPod(t, res.env, res.argv(tt.host)...)
				if err != nil {
					t.Fatalf("resolve %s: %v\n%s", tt.host, err, out)
				}
				got := res.parse(out)
				slices.Sort(got)
				if !slices.Equal(got, tt.want) {
					t.Fatalf("resolve %s: %q, want %q", tt.host, got, tt.want)
				}
			})
		}
		t.Run(res.name+"/unknown", func(t *testing.T) {
			if out, err := inPod(t, res.env, res.argv("nosuch")...); err == nil {
				t.Fatalf("resolve nosuch succeeded: %s", out)
			}
		})
	}

	// Outside the pod, the host's resolv.conf is untouched.
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(host), fmt.Sprintf("nameserver %s\n", ip)) {
		t.Fatalf("host /etc/resolv.conf changed:\n%s", host)
	}
}

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name   string
		ns     string
		server netip.Addr
		domain string
		want   string
	}{
		{name: "defaults", ns: "default", server: netip.MustParseAddr("127.0.2.10"),
			want: "nameserver 127.0.2.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{name: "custom domain, trailing dot", ns: "shop", server: netip.MustParseAddr("10.96.0.10"), domain: "Corp.Example.",
			want: "nameserver 10.96.0.10\nsearch shop.svc.corp.example svc.corp.example corp.example\noptions ndots:5\n"},
		{name: "v4-mapped server", ns: "a", server: netip.MustParseAddr("::ffff:127.0.2.10"),
			want: "nameserver 127.0.2.10\nsearch a.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(ResolvConf(tt.ns, tt.server, tt.domain)); got != tt.want {
				t.Errorf("ResolvConf:\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
