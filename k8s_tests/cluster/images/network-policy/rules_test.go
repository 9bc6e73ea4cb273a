package main

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const node = "worker"

func pod(namespace, name, ip string, podLabels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: podLabels},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "main", Ports: ports}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func namespace(name string, namespaceLabels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: namespaceLabels}}
}

func policy(namespace, name string, selector metav1.LabelSelector, rules ...networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: selector,
			Ingress:     rules,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
}

func tcp(port intstr.IntOrString) networkingv1.NetworkPolicyPort {
	protocol := corev1.ProtocolTCP
	return networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &port}
}

func matchLabels(pairs ...string) metav1.LabelSelector {
	selector := metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i < len(pairs); i += 2 {
		selector.MatchLabels[pairs[i]] = pairs[i+1]
	}
	return selector
}

func ptr[T any](value T) *T { return &value }

// The chart's two policies, in small: PostgreSQL from the release's pods, gRPC from some components.
func releaseState() state {
	release := map[string]string{"app.kubernetes.io/name": "chart", "app.kubernetes.io/instance": "dagster"}
	with := func(component string) map[string]string {
		result := map[string]string{"app.kubernetes.io/component": component}
		for key, value := range release {
			result[key] = value
		}
		return result
	}
	return state{
		Pods: []*corev1.Pod{
			pod("dagster", "postgresql-0", "10.244.1.10", with("postgresql"), corev1.ContainerPort{Name: "postgresql", ContainerPort: 5432}),
			pod("dagster", "code-1", "10.244.1.11", with("code-location"), corev1.ContainerPort{Name: "grpc", ContainerPort: 4000}),
			pod("dagster", "daemon", "10.244.1.12", with("daemon")),
			pod("dagster", "run", "10.244.1.13", with("run-worker")),
			pod("other", "intruder", "10.244.1.14", map[string]string{"app": "x"}),
		},
		Namespaces: []*corev1.Namespace{namespace("dagster", nil), namespace("other", nil)},
		Policies: []*networkingv1.NetworkPolicy{
			policy("dagster", "postgresql", matchLabels("app.kubernetes.io/component", "postgresql"),
				networkingv1.NetworkPolicyIngressRule{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: ptr(matchLabels("app.kubernetes.io/instance", "dagster"))}},
					Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromString("postgresql"))},
				}),
			policy("dagster", "code", matchLabels("app.kubernetes.io/component", "code-location"),
				networkingv1.NetworkPolicyIngressRule{
					From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
						MatchExpressions: []metav1.LabelSelectorRequirement{{
							Key: "app.kubernetes.io/component", Operator: metav1.LabelSelectorOpIn,
							Values: []string{"daemon", "run-worker"},
						}},
					}}},
					Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromInt32(4000))},
				}),
		},
	}
}

func TestReleasePolicies(t *testing.T) {
	got := compute(releaseState(), node)
	want := []restrictedPod{
		{Namespace: "dagster", Name: "postgresql-0", IP: "10.244.1.10", Allow: []allowRule{
			{Peer: "10.244.1.10/32", Protocol: "tcp", Port: "5432"},
			{Peer: "10.244.1.11/32", Protocol: "tcp", Port: "5432"},
			{Peer: "10.244.1.12/32", Protocol: "tcp", Port: "5432"},
			{Peer: "10.244.1.13/32", Protocol: "tcp", Port: "5432"},
		}},
		{Namespace: "dagster", Name: "code-1", IP: "10.244.1.11", Allow: []allowRule{
			{Peer: "10.244.1.12/32", Protocol: "tcp", Port: "4000"},
			{Peer: "10.244.1.13/32", Protocol: "tcp", Port: "4000"},
		}},
	}
	if !reflect.DeepEqual(got.Pods, want) {
		t.Fatalf("compute:\n got %+v\nwant %+v", got.Pods, want)
	}
	if len(got.Warnings) != 0 {
		t.Fatalf("warnings: %v", got.Warnings)
	}
}

func TestPodsOfOtherNodesHostNetworkAndFinishedAreLeftAlone(t *testing.T) {
	s := releaseState()
	s.Pods[0].Spec.NodeName = "other-node" // PostgreSQL: enforced by its own node
	s.Pods[1].Spec.HostNetwork = true
	s.Pods[3].Status.Phase = corev1.PodSucceeded // the run pod's address may be reused: no source
	s.Policies[1].Spec.PodSelector = matchLabels()
	got := compute(s, node)
	var names []string
	for _, restricted := range got.Pods {
		names = append(names, restricted.Name)
		for _, rule := range restricted.Allow {
			if rule.Peer == "10.244.1.13/32" {
				t.Errorf("%s allows the finished pod's address: %+v", restricted.Name, rule)
			}
		}
	}
	// The empty selector selects every pod of the namespace: the daemon, not the hostNetwork code
	// server, not the finished run pod, not PostgreSQL (another node).
	if !reflect.DeepEqual(names, []string{"daemon"}) {
		t.Fatalf("restricted pods: %v", names)
	}
}

// An egress-only policy restricts no ingress (its own test below: what it restricts going out).
func TestUnselectedPodAndEgressOnlyPolicyRestrictNoIngress(t *testing.T) {
	s := releaseState()
	s.Policies = append(s.Policies, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "egress"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}},
	})
	for _, restricted := range compute(s, node).Pods {
		if restricted.Namespace == "other" || restricted.Name == "daemon" {
			t.Errorf("%s/%s restricted", restricted.Namespace, restricted.Name)
		}
	}
}

func TestNoPolicyTypesMeansIngress(t *testing.T) {
	s := releaseState()
	s.Policies = []*networkingv1.NetworkPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "deny"},
		Spec:       networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{}}},
	}}
	got := compute(s, node)
	if len(got.Pods) != 1 || got.Pods[0].Name != "intruder" || len(got.Pods[0].Allow) != 0 {
		t.Fatalf("want intruder denied everything, got %+v", got.Pods)
	}
}

func TestEmptyFromAndNoPortsAllowEverything(t *testing.T) {
	s := releaseState()
	s.Policies = []*networkingv1.NetworkPolicy{
		policy("other", "any-source", matchLabels("app", "x"), networkingv1.NetworkPolicyIngressRule{
			Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromInt32(80))},
		}),
		policy("other", "any-port", matchLabels("app", "x"), networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16"}}},
		}),
	}
	got := compute(s, node).Pods[0].Allow
	want := []allowRule{{Protocol: "tcp", Port: "80"}, {Peer: "192.168.0.0/16"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
}

func TestNamespaceSelectorAloneAndCombined(t *testing.T) {
	s := releaseState()
	s.Namespaces[1].Labels = map[string]string{"team": "x"}
	s.Pods = append(s.Pods, pod("other", "bystander", "10.244.2.20", map[string]string{"app": "y"}))
	s.Policies = []*networkingv1.NetworkPolicy{
		policy("dagster", "from-team", matchLabels("app.kubernetes.io/component", "daemon"), networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: ptr(matchLabels("team", "x"))}},
		}),
		policy("dagster", "from-team-app-x", matchLabels("app.kubernetes.io/component", "run-worker"), networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: ptr(matchLabels("team", "x")), PodSelector: ptr(matchLabels("app", "x")),
			}},
		}),
	}
	got := compute(s, node).Pods
	if len(got) != 2 {
		t.Fatalf("want daemon and run restricted, got %+v", got)
	}
	sources := func(p restrictedPod) []string {
		var result []string
		for _, rule := range p.Allow {
			result = append(result, rule.Peer)
		}
		return result
	}
	if daemon := sources(got[0]); !reflect.DeepEqual(daemon, []string{"10.244.1.14/32", "10.244.2.20/32"}) {
		t.Errorf("daemon: namespace selector alone: %v", daemon)
	}
	if run := sources(got[1]); !reflect.DeepEqual(run, []string{"10.244.1.14/32"}) {
		t.Errorf("run: both selectors: %v", run)
	}
}

func TestPortsNamedRangedUDPAndUnknownName(t *testing.T) {
	target := pod("a", "p", "10.0.0.1", nil,
		corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		corev1.ContainerPort{Name: "web", ContainerPort: 8080})
	udp := corev1.ProtocolUDP
	cases := []struct {
		port networkingv1.NetworkPolicyPort
		want allowRule
		ok   bool
	}{
		{tcp(intstr.FromString("web")), allowRule{Protocol: "tcp", Port: "8080"}, true},
		{networkingv1.NetworkPolicyPort{Protocol: &udp, Port: ptr(intstr.FromString("dns"))}, allowRule{Protocol: "udp", Port: "53"}, true},
		{tcp(intstr.FromString("dns")), allowRule{}, false}, // dns is UDP
		{tcp(intstr.FromString("nope")), allowRule{}, false},
		{networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(9000)), EndPort: ptr(int32(9100))}, allowRule{Protocol: "tcp", Port: "9000:9100"}, true},
		{networkingv1.NetworkPolicyPort{Protocol: &udp}, allowRule{Protocol: "udp"}, true},
	}
	for _, c := range cases {
		got, ok := resolvePort(c.port, target)
		if ok != c.ok || got != c.want {
			t.Errorf("%+v: got %+v, %v; want %+v, %v", c.port, got, ok, c.want, c.ok)
		}
	}
}

func TestCIDRExcept(t *testing.T) {
	got, err := cidrExcept("10.0.0.0/8", []string{"10.0.0.0/10", "10.128.0.0/9"})
	if err != nil || !reflect.DeepEqual(got, []string{"10.64.0.0/10"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	got, _ = cidrExcept("192.168.0.0/24", []string{"192.168.0.7/32"})
	want := []string{
		"192.168.0.0/30", "192.168.0.128/25", "192.168.0.16/28", "192.168.0.32/27",
		"192.168.0.4/31", "192.168.0.6/32", "192.168.0.64/26", "192.168.0.8/29",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if got, _ = cidrExcept("10.1.2.3/16", []string{"172.16.0.0/12"}); !reflect.DeepEqual(got, []string{"10.1.0.0/16"}) {
		t.Fatalf("an except outside the block: got %v", got)
	}
	if _, err = cidrExcept("fd00::/8", nil); err == nil {
		t.Fatal("IPv6 accepted")
	}
}

func TestBadSelectorMatchesNothingAndWarns(t *testing.T) {
	s := releaseState()
	s.Policies[0].Spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "app", Operator: "Sometimes",
	}}}
	got := compute(s, node)
	if len(got.Warnings) == 0 {
		t.Fatal("no warning for an invalid selector")
	}
	for _, restricted := range got.Pods {
		if restricted.Name == "postgresql-0" {
			t.Fatal("an invalid selector selected PostgreSQL")
		}
	}
}

func TestRender(t *testing.T) {
	got := render(ruleset{Pods: []restrictedPod{{
		Namespace: "dagster", Name: "postgresql-0", IP: "10.244.1.10",
		Allow: []allowRule{{Peer: "10.244.1.12/32", Protocol: "tcp", Port: "5432"}, {Peer: "192.168.0.0/16"}},
	}}, EgressPods: []restrictedPod{{
		Namespace: "dagster", Name: "run", IP: "10.244.1.13",
		Allow: []allowRule{{Protocol: "udp", Port: "53"}, {Peer: "10.244.1.10/32", Protocol: "tcp", Port: "5432"}},
	}}})
	want := strings.Join([]string{
		"*filter",
		":NETPOL-INGRESS - [0:0]",
		":NETPOL-EGRESS - [0:0]",
		"-A NETPOL-INGRESS -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
		`-A NETPOL-INGRESS -s 10.244.1.10/32 -d 10.244.1.10/32 -m comment --comment "dagster/postgresql-0" -j RETURN`,
		`-A NETPOL-INGRESS -s 10.244.1.12/32 -d 10.244.1.10/32 -p tcp -m tcp --dport 5432 -m comment --comment "dagster/postgresql-0" -j RETURN`,
		`-A NETPOL-INGRESS -s 192.168.0.0/16 -d 10.244.1.10/32 -m comment --comment "dagster/postgresql-0" -j RETURN`,
		`-A NETPOL-INGRESS -d 10.244.1.10/32 -m comment --comment "dagster/postgresql-0" -j DROP`,
		"-A NETPOL-EGRESS -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
		`-A NETPOL-EGRESS -s 10.244.1.13/32 -d 10.244.1.13/32 -m comment --comment "dagster/run egress" -j RETURN`,
		`-A NETPOL-EGRESS -s 10.244.1.13/32 -p udp -m udp --dport 53 -m comment --comment "dagster/run egress" -j RETURN`,
		`-A NETPOL-EGRESS -s 10.244.1.13/32 -d 10.244.1.10/32 -p tcp -m tcp --dport 5432 -m comment --comment "dagster/run egress" -j RETURN`,
		`-A NETPOL-EGRESS -s 10.244.1.13/32 -m comment --comment "dagster/run egress" -j DROP`,
		"COMMIT",
		"",
	}, "\n")
	if got != want {
		t.Fatalf("render:\n%s\nwant:\n%s", got, want)
	}
	if empty := render(ruleset{}); !strings.Contains(empty, ":NETPOL-INGRESS - [0:0]\n:NETPOL-EGRESS - [0:0]\n-A NETPOL-INGRESS -m conntrack") {
		t.Fatalf("an empty rule set must still flush both chains: %s", empty)
	}
}

func egressPolicy(namespace, name string, selector metav1.LabelSelector, rules ...networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: selector,
			Egress:      rules,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
}

// The chart's shape: default-deny with DNS for every pod of the release, then the run pod's own
// allows (PostgreSQL by named port, the code server, an extra CIDR); ingress untouched by them.
func TestEgressDefaultDenyAndAllows(t *testing.T) {
	s := releaseState()
	udp := corev1.ProtocolUDP
	s.Policies = append(s.Policies,
		egressPolicy("dagster", "default-deny", matchLabels("app.kubernetes.io/instance", "dagster"),
			networkingv1.NetworkPolicyEgressRule{Ports: []networkingv1.NetworkPolicyPort{
				{Protocol: &udp, Port: ptr(intstr.FromInt32(53))}, tcp(intstr.FromInt32(53)),
			}}),
		egressPolicy("dagster", "run", matchLabels("app.kubernetes.io/component", "run-worker"),
			networkingv1.NetworkPolicyEgressRule{
				To:    []networkingv1.NetworkPolicyPeer{{PodSelector: ptr(matchLabels("app.kubernetes.io/component", "postgresql"))}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromString("postgresql"))},
			},
			networkingv1.NetworkPolicyEgressRule{
				To:    []networkingv1.NetworkPolicyPeer{{PodSelector: ptr(matchLabels("app.kubernetes.io/component", "code-location"))}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromString("grpc"))},
			},
			networkingv1.NetworkPolicyEgressRule{
				To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24"}}},
				// A named port on an ipBlock has no pod to name it: allows nothing.
				Ports: []networkingv1.NetworkPolicyPort{tcp(intstr.FromInt32(443)), tcp(intstr.FromString("grpc"))},
			}),
	)
	got := compute(s, node)
	dns := []allowRule{{Protocol: "tcp", Port: "53"}, {Protocol: "udp", Port: "53"}}
	var run *restrictedPod
	names := []string{}
	for i, pod := range got.EgressPods {
		names = append(names, pod.Name)
		if pod.Name == "run" {
			run = &got.EgressPods[i]
		} else if !reflect.DeepEqual(pod.Allow, dns) {
			t.Errorf("%s: egress %+v, want DNS only", pod.Name, pod.Allow)
		}
	}
	if want := []string{"postgresql-0", "code-1", "daemon", "run"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("egress-restricted pods %v, want %v (not the other namespace's)", names, want)
	}
	wantRun := []allowRule{
		{Protocol: "tcp", Port: "53"},
		{Protocol: "udp", Port: "53"},
		{Peer: "10.244.1.10/32", Protocol: "tcp", Port: "5432"},
		{Peer: "10.244.1.11/32", Protocol: "tcp", Port: "4000"},
		{Peer: "192.0.2.0/24", Protocol: "tcp", Port: "443"},
	}
	if !reflect.DeepEqual(run.Allow, wantRun) {
		t.Fatalf("run pod egress:\n got %+v\nwant %+v", run.Allow, wantRun)
	}
	// Ingress is what the ingress policies alone make it.
	if !reflect.DeepEqual(got.Pods, compute(releaseState(), node).Pods) {
		t.Fatalf("egress policies changed ingress: %+v", got.Pods)
	}
}

// No policyTypes and egress rules: the API defaults the type to Ingress and Egress.
func TestEgressRulesWithoutPolicyTypesRestrictEgress(t *testing.T) {
	s := releaseState()
	p := egressPolicy("dagster", "daemon", matchLabels("app.kubernetes.io/component", "daemon"),
		networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{PodSelector: ptr(matchLabels("app.kubernetes.io/component", "postgresql"))}}})
	p.Spec.PolicyTypes = nil
	s.Policies = append(s.Policies, p)
	got := compute(s, node).EgressPods
	want := []restrictedPod{{Namespace: "dagster", Name: "daemon", IP: "10.244.1.12", Allow: []allowRule{{Peer: "10.244.1.10/32"}}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("egress:\n got %+v\nwant %+v", got, want)
	}
}
