package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// First-cluster bootstrap of an auto-scaling group (Elasticsearch 7 and
// later).
//
// Elasticsearch forms a new cluster only from cluster.initial_master_nodes
// once discovery is configured (ClusterBootstrapService), and every node
// that lists it must list the same names, or two clusters can form. Nodes
// launched from one launch template do not know each other's names
// (instance ids), so boot fixes the list once, atomically, in Parameter
// Store:
//
//   - the spec's cluster.master_nodes (N) says how many master-eligible
//     nodes the cluster starts with; there are N slot parameters
//     <BootstrapPrefix>/<cluster>/master-1 ... master-N;
//   - a master-eligible node that has never joined a cluster claims the
//     first free slot with PutParameter(Overwrite=false): Parameter Store
//     creates a name once, so each slot has exactly one owner;
//   - a node that owns a slot waits until all N slots are owned, then writes
//     the N instance ids, sorted, as cluster.initial_master_nodes: every
//     owner reads the same N parameters, so all write the same list;
//   - a node that finds all slots owned by others (a node launched later, a
//     replacement) writes no initial_master_nodes: it only joins;
//   - once the node has joined (esnode joined sees its cluster UUID), the
//     line is removed and /etc/esnode/cluster.json records the UUID, so no
//     later boot writes it again.
//
// Instance ids are never reused, so a list fixed once names only the nodes
// launched first: no node launched later can match it and bootstrap.

// BootstrapPrefix is the Parameter Store path of the slot parameters.
const BootstrapPrefix = "/esnode/bootstrap"

// JoinedPath records the cluster the node joined (written by esnode joined).
const JoinedPath = "/etc/esnode/cluster.json"

// Joined is JoinedPath's content.
type Joined struct {
	ClusterName string    `json:"cluster_name"`
	ClusterUUID string    `json:"cluster_uuid"`
	NodeName    string    `json:"node_name"`
	JoinedAt    time.Time `json:"joined_at"`
}

// ReadJoined reads JoinedPath under root; missing is (nil, nil).
func ReadJoined(root string) (*Joined, error) {
	b, err := os.ReadFile(filepath.Join(rootDir(root), JoinedPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", JoinedPath, err)
	}
	var j Joined
	if err := json.Unmarshal(b, &j); err != nil || j.ClusterUUID == "" {
		return nil, fmt.Errorf("%s is not a joined-cluster record (%v); delete it only if this node never joined a cluster", JoinedPath, err)
	}
	return &j, nil
}

// SlotStore is the part of Parameter Store the bootstrap uses.
type SlotStore interface {
	// GetSlots returns the values of the named parameters that exist.
	GetSlots(ctx context.Context, names []string) (map[string]string, error)
	// PutIfAbsent creates a parameter; created is false when it existed.
	PutIfAbsent(ctx context.Context, name, value string) (created bool, err error)
}

// GetSlots reads parameters by name (at most 10, Parameter Store's limit).
func (p *SSMParams) GetSlots(ctx context.Context, names []string) (map[string]string, error) {
	out, err := p.client.GetParameters(ctx, &ssm.GetParametersInput{Names: names})
	if err != nil {
		return nil, fmt.Errorf("read the bootstrap slots %s.. (the instance profile needs ssm:GetParameters on %s/*): %w", names[0], BootstrapPrefix, err)
	}
	m := map[string]string{}
	for _, prm := range out.Parameters {
		m[aws.ToString(prm.Name)] = aws.ToString(prm.Value)
	}
	return m, nil
}

// PutIfAbsent creates a String parameter unless it exists.
func (p *SSMParams) PutIfAbsent(ctx context.Context, name, value string) (bool, error) {
	_, err := p.client.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeString,
		Overwrite:   aws.Bool(false),
		Description: aws.String("esnode first-cluster bootstrap slot: the instance that owns it; delete all slots of a cluster only to bootstrap it anew"),
	})
	var exists *ssmtypes.ParameterAlreadyExists
	switch {
	case errors.As(err, &exists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("claim bootstrap slot %s (the instance profile needs ssm:PutParameter on %s/*): %w", name, BootstrapPrefix, err)
	}
	return true, nil
}

// SlotNames are the N slot parameter names of a cluster.
func SlotNames(cluster string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s/%s/master-%d", BootstrapPrefix, cluster, i+1)
	}
	return out
}

// BootstrapDecision is what the bootstrap step decided, recorded in boot.json.
type BootstrapDecision struct {
	// Mode: "joined" (the node joined a cluster before), "userdata" or
	// "spec" (a fixed list), "slots" (this node owns a slot), "join-only"
	// (all slots owned by others, or not master-eligible), "off" (no
	// cluster.master_nodes in the spec) or "zen" (6.x).
	Mode               string   `json:"mode"`
	Slot               string   `json:"slot,omitempty"`
	InitialMasterNodes []string `json:"initial_master_nodes,omitempty"`
	MinimumMasterNodes int      `json:"minimum_master_nodes,omitempty"`
	Reason             string   `json:"reason"`
}

// bootstrapOptions: Wait bounds how long boot waits for all slots to be
// owned; zero waits until ctx ends (esnode-boot.service has no start
// timeout: the node has nothing to join until the slots are owned).
type bootstrapOptions struct {
	Store    SlotStore
	Poll     time.Duration
	Wait     time.Duration
	DryRun   bool
	Progress func(format string, args ...any)
}

// MasterEligible reports whether roles make a node master-eligible; empty
// roles mean Elasticsearch's default, every role.
func MasterEligible(roles []string) bool {
	if len(roles) == 0 {
		return true
	}
	for _, r := range roles {
		if r == "master" {
			return true
		}
	}
	return false
}

// decideBootstrap picks the node's cluster.initial_master_nodes (7+) or
// minimum_master_nodes (6.x).
func decideBootstrap(ctx context.Context, in *gathered, roles, fixed []string, fixedSource string, o bootstrapOptions) (*BootstrapDecision, error) {
	n := in.node.Cluster.MasterNodes
	if in.ver.Major < 7 {
		q := spec.MasterQuorum(n)
		return &BootstrapDecision{Mode: "zen", MinimumMasterNodes: q,
			Reason: fmt.Sprintf("Elasticsearch 6.x elects a master only with a quorum of the %d master-eligible nodes (cluster.master_nodes): %d", n, q)}, nil
	}
	if in.joined != nil {
		return &BootstrapDecision{Mode: "joined", Reason: fmt.Sprintf("the node joined cluster %s (uuid %s) on %s; it never bootstraps again", in.joined.ClusterName, in.joined.ClusterUUID, in.joined.JoinedAt.Format(time.RFC3339))}, nil
	}
	if len(fixed) > 0 {
		return &BootstrapDecision{Mode: fixedSource, InitialMasterNodes: fixed, Reason: "initial_master_nodes from " + fixedSource}, nil
	}
	if n == 0 {
		return &BootstrapDecision{Mode: "off", Reason: "the spec sets no cluster.master_nodes: this node only joins an existing cluster"}, nil
	}
	if !MasterEligible(roles) {
		return &BootstrapDecision{Mode: "join-only", Reason: "the node is not master-eligible: it joins the cluster the master-eligible nodes form"}, nil
	}
	if o.DryRun {
		return &BootstrapDecision{Mode: "dry-run", Reason: fmt.Sprintf("dry run: a real boot claims one of the %d bootstrap slots %s/%s/* (or joins if others own them all)", n, BootstrapPrefix, in.cluster)}, nil
	}
	if o.Store == nil {
		return nil, errors.New("no Parameter Store client for the bootstrap slots")
	}
	names := SlotNames(in.cluster, n)
	id := in.md.InstanceID
	poll := o.Poll
	if poll == 0 {
		poll = 2 * time.Second
	}
	var deadline time.Time
	if o.Wait > 0 {
		deadline = time.Now().Add(o.Wait)
	}
	mine := ""
	lastSay := time.Time{}
	for {
		owners, err := o.Store.GetSlots(ctx, names)
		if err != nil {
			return nil, err
		}
		if mine == "" {
			for _, nm := range names {
				if owners[nm] == id {
					mine = nm
				}
			}
		}
		if mine == "" {
			for _, nm := range names {
				if _, taken := owners[nm]; taken {
					continue
				}
				created, err := o.Store.PutIfAbsent(ctx, nm, id)
				if err != nil {
					return nil, err
				}
				if created {
					mine = nm
					owners[nm] = id
					break
				}
				// Another node won this slot: re-read them all.
				owners = nil
				break
			}
			if owners == nil {
				continue
			}
		}
		if mine == "" {
			return &BootstrapDecision{Mode: "join-only", Reason: fmt.Sprintf("all %d bootstrap slots (%s/%s/*) are owned by other instances (%s): the first cluster is theirs, this node joins it", n, BootstrapPrefix, in.cluster, strings.Join(ownerList(owners, names), ", "))}, nil
		}
		list := ownerList(owners, names)
		if len(list) == n {
			sort.Strings(list)
			return &BootstrapDecision{Mode: "slots", Slot: mine, InitialMasterNodes: list,
				Reason: fmt.Sprintf("this node owns bootstrap slot %s; the %d slot owners bootstrap the first cluster together", mine, n)}, nil
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return nil, fmt.Errorf("waited %s for %d master-eligible nodes of cluster %s to claim the bootstrap slots, and only %d did (%s); launch the missing nodes (the auto-scaling group's desired capacity must be at least cluster.master_nodes = %d)", o.Wait, n, in.cluster, len(list), strings.Join(list, ", "), n)
		}
		if o.Progress != nil && time.Since(lastSay) >= 30*time.Second {
			o.Progress("owns bootstrap slot %s; waiting for %d more master-eligible node(s) of cluster %s to claim the other slots (owned: %s) before writing cluster.initial_master_nodes", mine, n-len(list), in.cluster, strings.Join(list, ", "))
			lastSay = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the bootstrap slots of cluster %s (%d of %d owned): %w", in.cluster, len(list), n, ctx.Err())
		case <-time.After(poll):
		}
	}
}

func ownerList(owners map[string]string, names []string) []string {
	var out []string
	for _, nm := range names {
		if v, ok := owners[nm]; ok {
			out = append(out, v)
		}
	}
	return out
}
