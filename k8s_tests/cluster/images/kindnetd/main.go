// Command kindnetd is a small stand-in for kind's kindnetd, built here because kind's own
// kindnetd module cannot be fetched from the Go module proxy. It does what a kind cluster needs
// of its CNI daemon set, and nothing more:
//   - writes the node's CNI config (ptp + host-local over the node's pod CIDRs, portmap);
//   - routes every other node's pod CIDRs via that node's InternalIP.
//
// It does not masquerade pod traffic leaving the cluster, nor enforce NetworkPolicies.
// Environment (as in kind's manifest): HOST_IP, the node's IP; POD_SUBNET, for the log only.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	cniConfigPath = "/etc/cni/net.d/10-kindnet.conflist"
	resyncPeriod  = 10 * time.Second
)

func main() {
	hostIP := os.Getenv("HOST_IP")
	if hostIP == "" {
		log.Fatal("HOST_IP is not set; kind's manifest passes it from status.hostIP")
	}
	log.Printf("kindnetd stand-in: host %s, cluster pod subnet %s", hostIP, os.Getenv("POD_SUBNET"))
	config, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	for {
		if err := sync(client, hostIP); err != nil {
			log.Printf("sync failed, retrying in %s: %v", resyncPeriod, err)
		}
		time.Sleep(resyncPeriod)
	}
}

func sync(client kubernetes.Interface, hostIP string) error {
	ctx, cancel := context.WithTimeout(context.Background(), resyncPeriod)
	defer cancel()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		node := &nodes.Items[i]
		nodeIP := internalIP(node)
		if nodeIP == nil || len(node.Spec.PodCIDRs) == 0 {
			continue
		}
		if nodeIP.String() == hostIP {
			if err := writeCNIConfig(node.Spec.PodCIDRs); err != nil {
				return err
			}
			continue
		}
		if err := routePodCIDRs(node, nodeIP); err != nil {
			return err
		}
	}
	return nil
}

func internalIP(node *corev1.Node) net.IP {
	for _, address := range node.Status.Addresses {
		if address.Type == corev1.NodeInternalIP {
			if ip := net.ParseIP(address.Address); ip != nil && ip.To4() != nil {
				return ip
			}
		}
	}
	return nil
}

func routePodCIDRs(node *corev1.Node, via net.IP) error {
	for _, cidr := range node.Spec.PodCIDRs {
		_, dst, err := net.ParseCIDR(cidr)
		if err != nil || dst.IP.To4() == nil {
			continue
		}
		route := &netlink.Route{Dst: dst, Gw: via}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("route %s via %s (node %s): %w", cidr, via, node.Name, err)
		}
	}
	return nil
}

type ipRange struct {
	Subnet string `json:"subnet"`
}

// writeCNIConfig writes the config only when it changes, atomically, so the runtime never
// reads half a file.
func writeCNIConfig(podCIDRs []string) error {
	ranges := [][]ipRange{}
	for _, cidr := range podCIDRs {
		if _, n, err := net.ParseCIDR(cidr); err == nil && n.IP.To4() != nil {
			ranges = append(ranges, []ipRange{{Subnet: cidr}})
		}
	}
	config := map[string]any{
		"cniVersion": "0.3.1",
		"name":       "kindnet",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false,
				"mtu":    1500,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": "/run/cni-ipam-state",
					"routes":  []any{map[string]string{"dst": "0.0.0.0/0"}},
					"ranges":  ranges,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return err
	}
	if current, err := os.ReadFile(cniConfigPath); err == nil && bytes.Equal(current, data) {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(cniConfigPath), ".10-kindnet.conflist.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write CNI config: %w", err)
	}
	if err := os.Rename(tmp, cniConfigPath); err != nil {
		return fmt.Errorf("write CNI config: %w", err)
	}
	log.Printf("wrote %s for pod CIDRs %v", cniConfigPath, podCIDRs)
	return nil
}
