// Package target finds the nodes an audit checks: EC2 instances by tag (with
// their security groups' ingress), an inventory file, the local machine, or
// captured facts files.
package target

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Transports a target can be audited over.
const (
	SSH   = "ssh"
	SSM   = "ssm"
	Local = "local"
	File  = "file"
)

// Target is one node to audit.
type Target struct {
	// Name identifies the node in reports (inventory name, EC2 Name tag or
	// instance id, host, or facts file).
	Name string
	// Host is the address to connect and probe (no port).
	Host string
	// Port is the SSH port (default 22).
	Port int
	// User is the SSH user ("" = the --ssh-user default).
	User       string
	InstanceID string
	Tags       map[string]string
	// SecurityGroups are the instance's groups with their ingress (EC2 only).
	SecurityGroups []SecurityGroup
	// SubnetCIDR and VPCCIDRs are the instance's network (EC2 only), so
	// policies can judge firewall sources on nodes without esnode boot state.
	SubnetCIDR string
	VPCCIDRs   []string
	// AutoScaling is the instance's group and its lifecycle hooks (EC2
	// only; nil when the auditor could not read them).
	AutoScaling *AutoScaling
	// Transport is ssh, ssm, local or file.
	Transport string
	// FactsFile is the captured facts document (transport file).
	FactsFile string
}

// SecurityGroup is an EC2 security group and its ingress rules.
type SecurityGroup struct {
	ID      string
	Name    string
	Ingress []IngressRule
}

// IngressRule is one ingress permission. Proto is tcp, udp, icmp or "-1"
// (all traffic, ports -1).
type IngressRule struct {
	Proto     string
	FromPort  int
	ToPort    int
	CIDRs     []string
	IPv6CIDRs []string
}

// SSHAddress is host:port for dialing.
func (t Target) SSHAddress() string {
	p := t.Port
	if p == 0 {
		p = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(p))
}

// ParseInventory reads an inventory: YAML (a list of {host, port, user,
// name, instance_id, tags} or a map with `hosts:`), or plain text with one
// host a line, `host[:port] [user=U] [name=N] [instance_id=I] [tag:K=V]`;
// `#` starts a comment. IPv6 hosts with a port are written [addr]:port.
func ParseInventory(r io.Reader) ([]Target, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	trim := bytes.TrimSpace(data)
	if bytes.HasPrefix(trim, []byte("-")) || bytes.HasPrefix(trim, []byte("hosts:")) || bytes.HasPrefix(trim, []byte("---")) {
		return parseYAMLInventory(data)
	}
	var out []Target
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		t, err := hostPort(fields[0])
		if err != nil {
			return nil, fmt.Errorf("inventory line %d: %w", line, err)
		}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok || v == "" {
				return nil, fmt.Errorf("inventory line %d: %q is not key=value: write `host[:port] [user=U] [name=N] [instance_id=I] [tag:K=V]`", line, f)
			}
			switch {
			case k == "user":
				t.User = v
			case k == "name":
				t.Name = v
			case k == "instance_id":
				t.InstanceID = v
			case k == "port":
				p, err := parsePort(v)
				if err != nil {
					return nil, fmt.Errorf("inventory line %d: %w", line, err)
				}
				t.Port = p
			case strings.HasPrefix(k, "tag:") && len(k) > 4:
				if t.Tags == nil {
					t.Tags = map[string]string{}
				}
				t.Tags[k[4:]] = v
			default:
				return nil, fmt.Errorf("inventory line %d: unknown key %q: use user, name, port, instance_id or tag:KEY", line, k)
			}
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return finish(out)
}

type yamlHost struct {
	Host       string            `yaml:"host"`
	Port       int               `yaml:"port"`
	User       string            `yaml:"user"`
	Name       string            `yaml:"name"`
	InstanceID string            `yaml:"instance_id"`
	Tags       map[string]string `yaml:"tags"`
}

func parseYAMLInventory(data []byte) ([]Target, error) {
	var list []yamlHost
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil {
		var wrapped struct {
			Hosts []yamlHost `yaml:"hosts"`
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err2 := dec.Decode(&wrapped); err2 != nil {
			return nil, fmt.Errorf("YAML inventory: %w: write a list of {host, port, user, name, instance_id, tags}", err)
		}
		list = wrapped.Hosts
	}
	var out []Target
	for i, h := range list {
		if h.Host == "" {
			return nil, fmt.Errorf("YAML inventory entry #%d has no host", i+1)
		}
		t, err := hostPort(h.Host)
		if err != nil {
			return nil, fmt.Errorf("YAML inventory entry #%d: %w", i+1, err)
		}
		if h.Port != 0 {
			if h.Port < 1 || h.Port > 65535 {
				return nil, fmt.Errorf("YAML inventory entry #%d: port %d out of range", i+1, h.Port)
			}
			t.Port = h.Port
		}
		t.User, t.Name, t.InstanceID, t.Tags = h.User, h.Name, h.InstanceID, h.Tags
		out = append(out, t)
	}
	return finish(out)
}

// finish fills names and the transport and refuses duplicate names, which
// would merge two nodes in reports and history.
func finish(ts []Target) ([]Target, error) {
	seen := map[string]int{}
	for i := range ts {
		t := &ts[i]
		t.Transport = SSH
		if t.Name == "" {
			t.Name = t.Host
			if t.Port != 0 && t.Port != 22 {
				t.Name = t.SSHAddress()
			}
		}
		if j, dup := seen[t.Name]; dup {
			return nil, fmt.Errorf("inventory names node %q twice (entries %d and %d): give each a distinct name=", t.Name, j+1, i+1)
		}
		seen[t.Name] = i
	}
	return ts, nil
}

func hostPort(s string) (Target, error) {
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return Target{}, fmt.Errorf("host %q: %w", s, err)
		}
		port, err := parsePort(p)
		if err != nil {
			return Target{}, err
		}
		if h == "" {
			return Target{}, fmt.Errorf("host %q has no name or address", s)
		}
		return Target{Host: h, Port: port}, nil
	}
	return Target{Host: s}, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return p, nil
}

// LoadInventory reads an inventory file.
func LoadInventory(file string) ([]Target, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open inventory: %w", err)
	}
	defer f.Close()
	ts, err := ParseInventory(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return ts, nil
}

// FactsFiles turns captured facts documents into targets (globs expanded).
func FactsFiles(patterns []string) ([]Target, error) {
	var out []Target
	seen := map[string]bool{}
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("facts pattern %q: %w", p, err)
		}
		if len(matches) == 0 {
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("facts file %s: %w", p, err)
			}
			matches = []string{p}
		}
		sort.Strings(matches)
		for _, m := range matches {
			if seen[m] {
				continue
			}
			seen[m] = true
			name := strings.TrimSuffix(filepath.Base(m), filepath.Ext(m))
			out = append(out, Target{Name: name, Transport: File, FactsFile: m})
		}
	}
	// Same base name in two directories: fall back to the path.
	names := map[string]int{}
	for _, t := range out {
		names[t.Name]++
	}
	for i := range out {
		if names[out[i].Name] > 1 {
			out[i].Name = out[i].FactsFile
		}
	}
	return out, nil
}

// LocalTarget is this machine.
func LocalTarget() Target {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "localhost"
	}
	return Target{Name: name, Host: "127.0.0.1", Transport: Local}
}
