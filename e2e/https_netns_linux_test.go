//go:build linux

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The addresses of the link between the test's namespace and the host.
const (
	httpsHostIP = "10.77.0.1" // the host's end, where the mirror listens
	httpsAppIP  = "10.77.0.2"
)

// TestHTTPSOnlyNetns: an app with the network on, in a network namespace
// whose only way out is TCP to the HTTPS mirror's port (no peer, no DNS,
// no UDP), updates over HTTPS without waiting PeerWait (10 minutes by
// default): once its network is up it has no peer at all. It needs
// root, ip and nft (scripts/test-deps.sh), and runs only with
// RP_NETNS_TESTS=1 (natEnv).
func TestHTTPSOnlyNetns(t *testing.T) {
	if os.Getenv(natEnv) != "1" {
		t.Skip("skipping: makes a network namespace, a veth pair and nftables rules as root; set " + natEnv + "=1 to run it (.ci/run does)")
	}
	n, prefix := newNetns(t)
	ns := n.addNS(t, prefix+"https")
	// A veth pair from the host to the namespace; deleting the namespace
	// deletes both ends. The host's end is named after the run's tag.
	tag := strings.TrimSuffix(prefix, "-")
	host := "rph-" + tag[strings.LastIndex(tag, "-")+1:]
	n.run(t, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
	n.run(t, "addr", "add", httpsHostIP+"/24", "dev", host)
	n.run(t, "link", "set", host, "up")
	n.addr(t, ns, "eth0", httpsAppIP, 24)
	n.run(t, "-n", ns, "route", "add", "default", "via", httpsHostIP)

	m := newMirrorSetup(t)
	m.ca = newTestCA(t, net.ParseIP(httpsHostIP))
	srv := m.ca.serveTLSOn(t, httpsHostIP+":0", http.FileServer(http.Dir(m.mirror)))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// Out of the namespace only to the mirror's port, and the answers.
	n.exec(t, ns, strings.NewReader(fmt.Sprintf(`
table inet only_https {
	chain out {
		type filter hook output priority 0; policy drop;
		oif "lo" accept
		ct state established,related accept
		ip daddr %s tcp dport %s accept
	}
}
`, httpsHostIP, port)), n.nft, "-f", "-")

	// Networked: the public network (its bootstrap peers are out of
	// reach), listening on TCP.
	p := n.start(t, "the app", ns, []string{"SSL_CERT_FILE=" + m.ca.CAFile}, m.exe,
		"--mode", "now", "--source", "https://"+net.JoinHostPort(httpsHostIP, port)+"/",
		"--interval", "1s", "--listen", "/ip4/0.0.0.0/tcp/0", "a", "b")
	p.WaitLine(0, 30*time.Second, `^hello 1\.0\.0 args=a b$`)
	p.WaitLine(0, 90*time.Second, `^hello 2\.0\.0 args=a b$`)
	m.waitFileVersion(t, "2.0.0", 5*time.Second)
	if _, _, err := p.FindLine(0, 0, `p2p node started`); err != nil {
		t.Error("the app's network did not start: it was not a networked app")
	}
	p.Stop(10 * time.Second)
}
