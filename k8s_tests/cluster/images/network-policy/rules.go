package main

// The rule computation, pure: cluster state in, iptables-restore input out. main.go feeds it from
// informers and applies its output.

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The filter chains FORWARD jumps to; iptables-restore rewrites both whole, in one commit.
const (
	chainName       = "NETPOL-INGRESS"
	egressChainName = "NETPOL-EGRESS"
)

// state is what the rules are computed from: every pod (sources may be on any node), every
// namespace (namespaceSelector) and every NetworkPolicy.
type state struct {
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
	Policies   []*networkingv1.NetworkPolicy
}

// allowRule lets traffic through between the restricted pod and Peer (a CIDR; "" is anywhere):
// in from Peer (ingress) or out to Peer (egress), with Protocol ("" is any) to Port ("" is any
// port; "5432" or a range "1000:2000"; the restricted pod's port for ingress, Peer's for egress).
type allowRule struct {
	Peer     string
	Protocol string
	Port     string
}

// restrictedPod is a pod of this node selected by at least one ingress (egress) policy: only Allow
// gets in (out).
type restrictedPod struct {
	Namespace string
	Name      string
	IP        string
	Allow     []allowRule
}

// ruleset is what one node enforces, sorted so equal states render equal text: Pods restricted
// in what gets in, EgressPods in what goes out.
type ruleset struct {
	Pods       []restrictedPod
	EgressPods []restrictedPod
	Warnings   []string
}

// RuleCount is the number of rules in both chains: a conntrack rule each, the allow rules and one
// drop per restricted pod.
func (r ruleset) RuleCount() int {
	count := 2
	for _, pod := range append(append([]restrictedPod{}, r.Pods...), r.EgressPods...) {
		count += 2 + len(pod.Allow) // the pod's own hairpin traffic, its allows, its drop
	}
	return count
}

// podIPv4 is the pod's IPv4 address, or "" when it has none, runs in the host's network namespace
// or has finished (a finished pod's address may already belong to another pod).
func podIPv4(pod *corev1.Pod) string {
	if pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return ""
	}
	candidates := []string{pod.Status.PodIP}
	for _, ip := range pod.Status.PodIPs {
		candidates = append(candidates, ip.IP)
	}
	for _, candidate := range candidates {
		if addr, err := netip.ParseAddr(candidate); err == nil && addr.Is4() {
			return addr.String()
		}
	}
	return ""
}

// appliesToIngress follows the API's defaulting: with no policyTypes every policy is an ingress
// policy (egress-only policies must say so).
func appliesToIngress(policy *networkingv1.NetworkPolicy) bool {
	if len(policy.Spec.PolicyTypes) == 0 {
		return true
	}
	for _, policyType := range policy.Spec.PolicyTypes {
		if policyType == networkingv1.PolicyTypeIngress {
			return true
		}
	}
	return false
}

// appliesToEgress: only a policy whose policyTypes name Egress restricts egress (the API sets
// Egress itself when a policy has egress rules and no policyTypes).
func appliesToEgress(policy *networkingv1.NetworkPolicy) bool {
	for _, policyType := range policy.Spec.PolicyTypes {
		if policyType == networkingv1.PolicyTypeEgress {
			return true
		}
	}
	return len(policy.Spec.PolicyTypes) == 0 && len(policy.Spec.Egress) > 0
}

// selects reports whether selector matches labelSet; a selector that does not parse matches
// nothing (and says so through warn).
func selects(selector *metav1.LabelSelector, labelSet map[string]string, warn func(string)) bool {
	parsed, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		warn(fmt.Sprintf("selector %v: %v (matches nothing)", selector, err))
		return false
	}
	return parsed.Matches(labels.Set(labelSet))
}

// compute returns the rules of the pods on node nodeName.
func compute(s state, nodeName string) ruleset {
	var result ruleset
	warn := func(message string) { result.Warnings = append(result.Warnings, message) }
	namespaceLabels := map[string]map[string]string{}
	for _, namespace := range s.Namespaces {
		namespaceLabels[namespace.Name] = namespace.Labels
	}
	for _, pod := range s.Pods {
		if pod.Spec.NodeName != nodeName {
			continue
		}
		ip := podIPv4(pod)
		if ip == "" {
			continue
		}
		restricted, egressRestricted := false, false
		var allow, allowOut []allowRule
		for _, policy := range s.Policies {
			if policy.Namespace != pod.Namespace || !selects(&policy.Spec.PodSelector, pod.Labels, warn) {
				continue
			}
			if appliesToIngress(policy) {
				restricted = true
				for _, rule := range policy.Spec.Ingress {
					allow = append(allow, ingressRule(s, namespaceLabels, policy, rule, pod, warn)...)
				}
			}
			if appliesToEgress(policy) {
				egressRestricted = true
				for _, rule := range policy.Spec.Egress {
					allowOut = append(allowOut, egressRule(s, namespaceLabels, policy, rule, warn)...)
				}
			}
		}
		if restricted {
			result.Pods = append(result.Pods, restrictedPod{
				Namespace: pod.Namespace, Name: pod.Name, IP: ip, Allow: dedupe(allow),
			})
		}
		if egressRestricted {
			result.EgressPods = append(result.EgressPods, restrictedPod{
				Namespace: pod.Namespace, Name: pod.Name, IP: ip, Allow: dedupe(allowOut),
			})
		}
	}
	sort.Slice(result.Pods, func(i, j int) bool { return result.Pods[i].IP < result.Pods[j].IP })
	sort.Slice(result.EgressPods, func(i, j int) bool { return result.EgressPods[i].IP < result.EgressPods[j].IP })
	return result
}

// ingressRule expands one ingress rule of policy, for target pod, into (source, protocol, port)
// triples: the product of its peers and its ports.
func ingressRule(
	s state, namespaceLabels map[string]map[string]string, policy *networkingv1.NetworkPolicy,
	rule networkingv1.NetworkPolicyIngressRule, target *corev1.Pod, warn func(string),
) []allowRule {
	sources := []string{""} // no peers: from anywhere
	if len(rule.From) > 0 {
		sources = nil
		for _, peer := range rule.From {
			sources = append(sources, peerSources(s, namespaceLabels, policy, peer, warn)...)
		}
	}
	ports := []allowRule{{}} // no ports: every port of every protocol
	if len(rule.Ports) > 0 {
		ports = nil
		for _, port := range rule.Ports {
			if resolved, ok := resolvePort(port, target); ok {
				ports = append(ports, resolved)
			}
		}
	}
	var allow []allowRule
	for _, source := range sources {
		for _, port := range ports {
			allow = append(allow, allowRule{Peer: source, Protocol: port.Protocol, Port: port.Port})
		}
	}
	return allow
}

// egressRule expands one egress rule of policy into (destination, protocol, port) triples. A
// named port is the destination pod's: resolved per selected pod (with no `to`, on every pod of
// the cluster that declares it); an ipBlock has no pods, so a named port allows it nothing.
func egressRule(
	s state, namespaceLabels map[string]map[string]string, policy *networkingv1.NetworkPolicy,
	rule networkingv1.NetworkPolicyEgressRule, warn func(string),
) []allowRule {
	type destination struct {
		cidr string
		pod  *corev1.Pod // nil for an ipBlock and for "anywhere"
	}
	destinations := []destination{{}} // no peers: anywhere
	if len(rule.To) > 0 {
		destinations = nil
		for _, peer := range rule.To {
			if peer.IPBlock != nil {
				for _, cidr := range peerSources(s, namespaceLabels, policy, peer, warn) {
					destinations = append(destinations, destination{cidr: cidr})
				}
				continue
			}
			for _, pod := range peerPods(s, namespaceLabels, policy, peer, warn) {
				destinations = append(destinations, destination{cidr: podIPv4(pod) + "/32", pod: pod})
			}
		}
	}
	if len(rule.Ports) == 0 {
		allow := make([]allowRule, 0, len(destinations))
		for _, d := range destinations {
			allow = append(allow, allowRule{Peer: d.cidr})
		}
		return allow
	}
	var allow []allowRule
	for _, port := range rule.Ports {
		if port.Port == nil || port.Port.Type != intstr.String {
			resolved, _ := resolvePort(port, nil)
			for _, d := range destinations {
				allow = append(allow, allowRule{Peer: d.cidr, Protocol: resolved.Protocol, Port: resolved.Port})
			}
			continue
		}
		candidates := destinations
		if len(rule.To) == 0 {
			candidates = nil
			for _, pod := range s.Pods {
				if ip := podIPv4(pod); ip != "" {
					candidates = append(candidates, destination{cidr: ip + "/32", pod: pod})
				}
			}
		}
		for _, d := range candidates {
			if d.pod == nil {
				continue
			}
			if resolved, ok := resolvePort(port, d.pod); ok {
				allow = append(allow, allowRule{Peer: d.cidr, Protocol: resolved.Protocol, Port: resolved.Port})
			}
		}
	}
	return allow
}

// peerSources lists the CIDRs one peer allows.
func peerSources(
	s state, namespaceLabels map[string]map[string]string, policy *networkingv1.NetworkPolicy,
	peer networkingv1.NetworkPolicyPeer, warn func(string),
) []string {
	if peer.IPBlock != nil {
		cidrs, err := cidrExcept(peer.IPBlock.CIDR, peer.IPBlock.Except)
		if err != nil {
			warn(fmt.Sprintf("%s/%s: ipBlock %s: %v (skipped)", policy.Namespace, policy.Name, peer.IPBlock.CIDR, err))
		}
		return cidrs
	}
	var sources []string
	for _, pod := range peerPods(s, namespaceLabels, policy, peer, warn) {
		sources = append(sources, podIPv4(pod)+"/32")
	}
	return sources
}

// peerPods lists the pods (with an address) one podSelector/namespaceSelector peer selects.
func peerPods(
	s state, namespaceLabels map[string]map[string]string, policy *networkingv1.NetworkPolicy,
	peer networkingv1.NetworkPolicyPeer, warn func(string),
) []*corev1.Pod {
	if peer.PodSelector == nil && peer.NamespaceSelector == nil {
		return nil
	}
	var selected []*corev1.Pod
	for _, pod := range s.Pods {
		ip := podIPv4(pod)
		if ip == "" {
			continue
		}
		if peer.NamespaceSelector == nil {
			if pod.Namespace != policy.Namespace {
				continue
			}
		} else if !selects(peer.NamespaceSelector, namespaceLabels[pod.Namespace], warn) {
			continue
		}
		if peer.PodSelector != nil && !selects(peer.PodSelector, pod.Labels, warn) {
			continue
		}
		selected = append(selected, pod)
	}
	return selected
}

// resolvePort turns a policy port into iptables terms for target: the protocol (TCP when unset),
// and a number, a range (endPort) or a named port of target's containers. A named port the pod
// does not have allows nothing.
func resolvePort(port networkingv1.NetworkPolicyPort, target *corev1.Pod) (allowRule, bool) {
	protocol := corev1.ProtocolTCP
	if port.Protocol != nil {
		protocol = *port.Protocol
	}
	result := allowRule{Protocol: strings.ToLower(string(protocol))}
	if port.Port == nil {
		return result, true
	}
	number := port.Port.IntValue()
	if port.Port.Type == intstr.String { // a named port (target is never nil here)
		number = 0
		for _, container := range target.Spec.Containers {
			for _, containerPort := range container.Ports {
				containerProtocol := containerPort.Protocol
				if containerProtocol == "" {
					containerProtocol = corev1.ProtocolTCP
				}
				if containerPort.Name == port.Port.StrVal && containerProtocol == protocol {
					number = int(containerPort.ContainerPort)
				}
			}
		}
		if number == 0 {
			return allowRule{}, false
		}
	}
	result.Port = strconv.Itoa(number)
	if port.EndPort != nil && int(*port.EndPort) > number {
		result.Port = fmt.Sprintf("%d:%d", number, *port.EndPort)
	}
	return result, true
}

// cidrExcept returns cidr minus every prefix of except, as a sorted list of IPv4 CIDRs.
// iptables has no "except" in one rule, so the block is split into the prefixes that remain.
func cidrExcept(cidr string, except []string) ([]string, error) {
	block, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, err
	}
	if !block.Addr().Is4() {
		return nil, fmt.Errorf("not IPv4: only IPv4 is enforced")
	}
	remaining := []netip.Prefix{block.Masked()}
	for _, text := range except {
		hole, err := netip.ParsePrefix(text)
		if err != nil {
			return nil, err
		}
		hole = hole.Masked()
		var next []netip.Prefix
		for _, prefix := range remaining {
			next = append(next, subtract(prefix, hole)...)
		}
		remaining = next
	}
	result := make([]string, 0, len(remaining))
	for _, prefix := range remaining {
		result = append(result, prefix.String())
	}
	sort.Strings(result)
	return result, nil
}

// subtract returns prefix minus hole: prefix itself when they do not overlap, nothing when hole
// covers it, otherwise the sibling halves on the way down to hole.
func subtract(prefix, hole netip.Prefix) []netip.Prefix {
	if !prefix.Overlaps(hole) {
		return []netip.Prefix{prefix}
	}
	if hole.Bits() <= prefix.Bits() {
		return nil
	}
	var result []netip.Prefix
	for bits := prefix.Bits() + 1; bits <= hole.Bits(); bits++ {
		onPath, _ := hole.Addr().Prefix(bits)
		result = append(result, sibling(onPath))
	}
	return result
}

// sibling is the other half of the prefix one bit shorter than p.
func sibling(p netip.Prefix) netip.Prefix {
	bytes := p.Addr().As4()
	bit := p.Bits() - 1
	bytes[bit/8] ^= 0x80 >> (bit % 8)
	return netip.PrefixFrom(netip.AddrFrom4(bytes), p.Bits())
}

func dedupe(rules []allowRule) []allowRule {
	seen := map[allowRule]bool{}
	var result []allowRule
	for _, rule := range rules {
		if !seen[rule] {
			seen[rule] = true
			result = append(result, rule)
		}
	}
	sort.Slice(result, func(i, j int) bool {
		a, b := result[i], result[j]
		if a.Peer != b.Peer {
			return a.Peer < b.Peer
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return a.Port < b.Port
	})
	return result
}

// render is the iptables-restore input (for --noflush) that replaces both chains with r: declaring
// a chain flushes it, and the table commits at once, so no packet sees half a rule set.
func render(r ruleset) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n", chainName)
	fmt.Fprintf(&b, ":%s - [0:0]\n", egressChainName)
	fmt.Fprintf(&b, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN\n", chainName)
	for _, pod := range r.Pods {
		comment := fmt.Sprintf("-m comment --comment \"%s/%s\"", pod.Namespace, pod.Name)
		// A pod reaching itself through its own Service (hairpin) is never blocked.
		fmt.Fprintf(&b, "-A %s -s %s/32 -d %s/32 %s -j RETURN\n", chainName, pod.IP, pod.IP, comment)
		for _, rule := range pod.Allow {
			fmt.Fprintf(&b, "-A %s", chainName)
			if rule.Peer != "" {
				fmt.Fprintf(&b, " -s %s", rule.Peer)
			}
			fmt.Fprintf(&b, " -d %s/32", pod.IP)
			writePort(&b, rule)
			fmt.Fprintf(&b, " %s -j RETURN\n", comment)
		}
		fmt.Fprintf(&b, "-A %s -d %s/32 %s -j DROP\n", chainName, pod.IP, comment)
	}
	fmt.Fprintf(&b, "-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN\n", egressChainName)
	for _, pod := range r.EgressPods {
		comment := fmt.Sprintf("-m comment --comment \"%s/%s egress\"", pod.Namespace, pod.Name)
		fmt.Fprintf(&b, "-A %s -s %s/32 -d %s/32 %s -j RETURN\n", egressChainName, pod.IP, pod.IP, comment)
		for _, rule := range pod.Allow {
			fmt.Fprintf(&b, "-A %s -s %s/32", egressChainName, pod.IP)
			if rule.Peer != "" {
				fmt.Fprintf(&b, " -d %s", rule.Peer)
			}
			writePort(&b, rule)
			fmt.Fprintf(&b, " %s -j RETURN\n", comment)
		}
		fmt.Fprintf(&b, "-A %s -s %s/32 %s -j DROP\n", egressChainName, pod.IP, comment)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func writePort(b *strings.Builder, rule allowRule) {
	if rule.Protocol != "" {
		fmt.Fprintf(b, " -p %s", rule.Protocol)
		if rule.Port != "" {
			fmt.Fprintf(b, " -m %s --dport %s", rule.Protocol, rule.Port)
		}
	}
}
