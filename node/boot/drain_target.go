package boot

import (
	"fmt"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// DrainTarget is what `esnode drain` needs to know about the local node,
// read from boot.json and the baked spec: boot decided all of it.
type DrainTarget struct {
	// Name is the node's node.name (the instance id).
	Name           string
	URL            string
	Region         string
	InstanceID     string
	Version        spec.Version
	MasterEligible bool
	Lifecycle      spec.Lifecycle
	// Cluster and Security name the cluster's secrets as boot resolved
	// them (spec plus userdata overrides), for DrainAccess.
	Cluster  string
	Security spec.Security
}

// ReadDrainTarget reads the drain target of the node under root.
func ReadDrainTarget(root string) (*DrainTarget, error) {
	root = rootDir(root)
	st, err := ReadState(root)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%s is missing: esnode boot has not run successfully on this node", StatePath)
	}
	n, err := readSpec(root)
	if err != nil {
		return nil, err
	}
	ver, err := spec.ParseVersion(st.ElasticsearchVersion)
	if err != nil {
		return nil, fmt.Errorf("%s: elasticsearch_version: %w", StatePath, err)
	}
	roles := n.Cluster.Roles
	if st.Userdata != nil && st.Userdata.NodeRoles != nil {
		roles = st.Userdata.NodeRoles
	}
	var ud spec.Security
	if st.Userdata != nil {
		ud = st.Userdata.Security
	}
	scheme := "http"
	if st.Security != nil && st.Security.HTTP {
		scheme = "https"
	}
	return &DrainTarget{
		Name:           st.InstanceID,
		URL:            fmt.Sprintf("%s://%s:%d", scheme, st.LocalIPv4, n.Elasticsearch.HTTPPort),
		Region:         st.Region,
		InstanceID:     st.InstanceID,
		Version:        ver,
		MasterEligible: MasterEligible(roles),
		Lifecycle:      n.Lifecycle,
		Cluster:        st.ClusterName,
		Security:       effectiveSecurity(n.Security, ud),
	}, nil
}
