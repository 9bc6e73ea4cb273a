// CoreDNS with only the plugins a kind cluster's Corefile uses (kubeadm's default Corefile, plus a
// few for debugging). Upstream's main links every plugin, cloud DNS back ends included: their SDKs
// are most of a cold build's downloads and compile time. build-binaries.sh writes the go.mod
// (COREDNS_VERSION from versions.env) and builds this file.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// The directive order stays upstream's (core/dnsserver); a Corefile naming a plugin that is not
// linked here fails at start, loudly.
func main() {
	coremain.Run()
}
