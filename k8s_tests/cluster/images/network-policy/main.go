// Command network-policy enforces the ingress and egress rules of Kubernetes NetworkPolicies on
// the node it runs on, with the node's iptables. It is an add-on of the project's kind cluster (kindnetd here
// enforces nothing, and kube-network-policies needs nfqueue, which these kernels lack), not a CNI:
//   - for each pod of this node (not hostNetwork, with an IPv4 address) selected by a policy with
//     ingress rules, only the sources, protocols and ports those rules allow get in;
//   - for each pod of this node selected by a policy whose policyTypes name Egress, only the
//     destinations, protocols and ports its egress rules allow go out;
//   - a pod no policy selects is not restricted; IPv4 only.
//
// The rules live in the chains NETPOL-INGRESS and NETPOL-EGRESS of the filter table, jumped to
// from the top of FORWARD: pod traffic in a kind cluster is routed (kindnetd's ptp, a /32 route per
// pod), so every packet from or to a pod crosses its node's FORWARD chain, after kube-proxy's DNAT
// (the destination is the pod's or the endpoint's IP, never a Service's). Traffic from the node
// itself (kubelet's probes) goes through OUTPUT, and a pod's traffic to its own node's address
// (the API server, for a pod on the control-plane node) through INPUT: neither is touched. The chain is rewritten whole with iptables-restore --noflush, atomically, after every
// change (debounced) and every 30 s; the iptables binaries are the node's, run chrooted into the
// host's root (mounted at HOST_ROOT), so this image holds nothing but this binary.
//
// Environment: NODE_NAME (the downward API's spec.nodeName), HOST_ROOT (default /host).
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const (
	resyncPeriod = 30 * time.Second
	// Changes closer together than this make one rebuild (a rollout changes many pods at once).
	debounce     = 250 * time.Millisecond
	retryAfter   = 2 * time.Second
	cacheTimeout = 2 * time.Minute
	hostPath     = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

func main() {
	nodeName := os.Getenv("NODE_NAME")
	if nodeName == "" {
		log.Fatal("NODE_NAME is not set; pass it from the downward API (fieldRef spec.nodeName)")
	}
	hostRoot := os.Getenv("HOST_ROOT")
	if hostRoot == "" {
		hostRoot = "/host"
	}
	config, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	e := &enforcer{nodeName: nodeName, hostRoot: hostRoot, trigger: make(chan struct{}, 1)}
	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods()
	namespaces := factory.Core().V1().Namespaces()
	policies := factory.Networking().V1().NetworkPolicies()
	for _, informer := range []cache.SharedIndexInformer{pods.Informer(), namespaces.Informer(), policies.Informer()} {
		if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { e.changed() },
			UpdateFunc: func(any, any) { e.changed() },
			DeleteFunc: func(any) { e.changed() },
		}); err != nil {
			log.Fatalf("event handler: %v", err)
		}
	}
	stop := make(chan struct{})
	factory.Start(stop)
	log.Printf("network-policy on node %s: waiting for pods, namespaces and NetworkPolicies (at most %s)", nodeName, cacheTimeout)
	synced := make(chan bool, 1)
	go func() {
		synced <- cache.WaitForCacheSync(stop, pods.Informer().HasSynced, namespaces.Informer().HasSynced, policies.Informer().HasSynced)
	}()
	select {
	case ok := <-synced:
		if !ok {
			log.Fatal("informer caches did not sync")
		}
	case <-time.After(cacheTimeout):
		log.Fatalf("informer caches not synced after %s: is the API server reachable, and may the ServiceAccount list pods, namespaces and networkpolicies?", cacheTimeout)
	}
	e.list = func() state {
		var s state
		s.Pods, _ = pods.Lister().List(labels.Everything())
		s.Namespaces, _ = namespaces.Lister().List(labels.Everything())
		s.Policies, _ = policies.Lister().List(labels.Everything())
		return s
	}
	e.run()
}

type enforcer struct {
	nodeName string
	hostRoot string
	list     func() state
	trigger  chan struct{}

	mu sync.Mutex
	// The first change not yet applied, to log how long applying it took.
	pendingSince time.Time
	lastWarnings string
}

// changed records an informer event; run rebuilds soon after.
func (e *enforcer) changed() {
	e.mu.Lock()
	if e.pendingSince.IsZero() {
		e.pendingSince = time.Now()
	}
	e.mu.Unlock()
	select {
	case e.trigger <- struct{}{}:
	default:
	}
}

func (e *enforcer) run() {
	ticker := time.NewTicker(resyncPeriod)
	defer ticker.Stop()
	reason := "start"
	for {
		if err := e.sync(reason); err != nil {
			log.Printf("rebuild of %s failed, retrying in %s: %v", chainName, retryAfter, err)
			time.AfterFunc(retryAfter, e.changed)
		}
		select {
		case <-e.trigger:
			reason = "change"
			time.Sleep(debounce)
			select {
			case <-e.trigger:
			default:
			}
		case <-ticker.C:
			reason = "periodic"
		}
	}
}

func (e *enforcer) sync(reason string) error {
	e.mu.Lock()
	since := e.pendingSince
	e.pendingSince = time.Time{}
	e.mu.Unlock()
	rules := compute(e.list(), e.nodeName)
	if warnings := strings.Join(rules.Warnings, "\n"); warnings != e.lastWarnings {
		for _, warning := range rules.Warnings {
			log.Printf("warning: %s", warning)
		}
		e.lastWarnings = warnings
	}
	if err := e.host(render(rules), "/usr/sbin/iptables-restore", "-w", "5", "--noflush"); err != nil {
		return err
	}
	if err := e.ensureJump(); err != nil {
		return err
	}
	latency := ""
	if !since.IsZero() {
		latency = fmt.Sprintf(", %d ms after the change", time.Since(since).Milliseconds())
	}
	pods := make([]string, 0, len(rules.Pods))
	for _, pod := range rules.Pods {
		pods = append(pods, fmt.Sprintf("%s/%s(%d allowed)", pod.Namespace, pod.Name, len(pod.Allow)))
	}
	for _, pod := range rules.EgressPods {
		pods = append(pods, fmt.Sprintf("%s/%s(egress, %d allowed)", pod.Namespace, pod.Name, len(pod.Allow)))
	}
	log.Printf("rebuilt %s and %s (%s%s): %d pods restricted in, %d out, %d rules %v", chainName,
		egressChainName, reason, latency, len(rules.Pods), len(rules.EgressPods), rules.RuleCount(), pods)
	return nil
}

// ensureJump puts the jumps to both chains at the top of FORWARD, once each. Their order does not
// matter: each chain only drops or returns.
func (e *enforcer) ensureJump() error {
	for chain, comment := range map[string]string{
		chainName:       "network-policy: ingress rules of NetworkPolicies",
		egressChainName: "network-policy: egress rules of NetworkPolicies",
	} {
		rule := []string{"FORWARD", "-m", "comment", "--comment", comment, "-j", chain}
		if e.host("", "/usr/sbin/iptables", append([]string{"-w", "5", "-C"}, rule...)...) == nil {
			continue
		}
		if err := e.host("", "/usr/sbin/iptables", append([]string{"-w", "5", "-I", rule[0], "1"}, rule[1:]...)...); err != nil {
			return err
		}
		log.Printf("inserted the jump to %s at the top of FORWARD", chain)
	}
	return nil
}

// host runs one of the node's commands, chrooted into its root, with stdin.
func (e *enforcer) host(stdin string, command string, args ...string) error {
	cmd := exec.Command(command, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: e.hostRoot}
	cmd.Dir = "/"
	cmd.Env = []string{hostPath}
	cmd.Stdin = strings.NewReader(stdin)
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s (chroot %s): %w: %s", command, strings.Join(args, " "), e.hostRoot, err,
			strings.TrimSpace(output.String()))
	}
	return nil
}
