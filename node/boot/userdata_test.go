package boot

import (
	"bytes"
	"compress/gzip"
	"reflect"
	"strings"
	"testing"
)

func TestParseUserdataForms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Userdata
	}{
		{"empty", "", Userdata{Form: FormNone}},
		{"blank", " \n\t\n", Userdata{Form: FormNone}},
		{"key=value", "# esnode\ncluster_name=logs-prod\nnode_roles = master, data\nheap_percent=60\n",
			Userdata{Form: FormKeyValue, ClusterName: "logs-prod", NodeRoles: []string{"master", "data"}, HeapPercent: 60}},
		{"key=value quoted and comment", "cluster_name=\"logs-prod\"  \ncors_allow_origin='https://app.example.com'\nheap_mb=2048 # two gig\n",
			Userdata{Form: FormKeyValue, ClusterName: "logs-prod", CORSAllowOrigin: "https://app.example.com", HeapMB: 2048}},
		{"key=value list in brackets", "initial_master_nodes=[i-1, i-2]\n",
			Userdata{Form: FormKeyValue, InitialMasterNodes: []string{"i-1", "i-2"}}},
		{"yaml", "# esnode settings\ncluster_name: logs-prod\nnode_roles: [master, data]\ncors_allow_origin: https://app.example.com\n",
			Userdata{Form: FormYAML, ClusterName: "logs-prod", NodeRoles: []string{"master", "data"}, CORSAllowOrigin: "https://app.example.com"}},
		{"yaml block list and comma string", "node_roles:\n  - ingest\ninitial_master_nodes: i-1,i-2\n",
			Userdata{Form: FormYAML, NodeRoles: []string{"ingest"}, InitialMasterNodes: []string{"i-1", "i-2"}}},
		{"yaml esnode wrapper without header", "esnode:\n  cluster_name: c1\n", Userdata{Form: FormYAML, ClusterName: "c1"}},
		{"yaml ssm params", "discovery_access_key_param: /es/discovery/access\ndiscovery_secret_key_param: /es/discovery/secret\n",
			Userdata{Form: FormYAML, DiscoveryAccessKeyParam: "/es/discovery/access", DiscoverySecretKeyParam: "/es/discovery/secret"}},
		{"cloud-config with esnode", "#cloud-config\npackage_update: true\nesnode:\n  cluster_name: logs-prod\n  heap_mb: 4096\n",
			Userdata{Form: FormCloudConfig, ClusterName: "logs-prod", HeapMB: 4096}},
		{"cloud-config without esnode", "#cloud-config\npackages: [htop]\n", Userdata{Form: FormIgnored}},
		{"shell script", "#!/bin/bash\necho cluster_name=x > /tmp/y\n", Userdata{Form: FormIgnored}},
		{"mime", "Content-Type: multipart/mixed; boundary=\"x\"\nMIME-Version: 1.0\n\n--x\n", Userdata{Form: FormIgnored}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUserdata([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseUserdata: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseUserdataGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("cluster_name=zipped\n"))
	zw.Close()
	got, err := ParseUserdata(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.ClusterName != "zipped" || got.Form != FormKeyValue {
		t.Errorf("got %+v", got)
	}
}

func TestParseUserdataErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{"unknown keys kv", "cluster_name=a\nclustr=b\nheap=3\n", []string{"unknown key(s) clustr, heap", "known keys are cluster_name, node_roles"}},
		{"unknown keys yaml", "cluster_name: a\nbogus: 1\n", []string{"unknown key(s) bogus", "initial_master_nodes"}},
		{"unknown keys cloud-config", "#cloud-config\nesnode:\n  nope: 1\n", []string{"unknown key(s) nope"}},
		{"cors star", "cors_allow_origin=*\n", []string{"lets every web origin"}},
		{"cors regex all", "cors_allow_origin: /.*/\n", []string{"admits", "pages of domains you do not own"}},
		{"heap both", "heap_percent=50\nheap_mb=2048\n", []string{"both set"}},
		{"heap percent range", "heap_percent=90\n", []string{"1-75"}},
		{"heap mb oops", "heap_mb=32768\n", []string{`line 1: heap_mb "32768" is not a heap size in MiB from 256 to 31744 (the JVM stops compressing object pointers near 32 GiB)`}},
		{"heap mb just over the cap", "heap_mb=31745\n", []string{"from 256 to 31744"}},
		{"duplicate initial masters", "initial_master_nodes=i-0a,i-0b,i-0a\n", []string{"line 1: initial_master_nodes lists i-0a more than once; Elasticsearch refuses duplicate entries: list each node once"}},
		{"voting_only without master", "node_roles: [voting_only, data]\n", []string{"line 1: node_roles voting_only needs the master role too: Elasticsearch refuses to start a voting-only node that is not master-eligible; add master or remove voting_only"}},
		{"ssm only one", "discovery_access_key_param=/a\n", []string{"both (SSM parameter names) or neither"}},
		{"bad role", "node_roles=master,chef\n", []string{`"chef" is not an Elasticsearch node role`}},
		{"bad cluster", "cluster_name=a b\n", []string{"not a usable cluster name"}},
		{"empty value", "cluster_name=\n", []string{"is empty"}},
		{"duplicate", "cluster_name=a\ncluster_name=b\n", []string{"set twice"}},
		{"scalar yaml", "1234,john,reboot,true\n", []string{"not a key=value list nor a YAML mapping"}},
		{"broken yaml", "cluster_name: [a\n", []string{"neither key=value lines nor valid YAML"}},
		{"script with esnode", "#!/bin/sh\nesnode:\n  cluster_name: x\n", []string{"shell script"}},
		{"mapping value", "cluster_name:\n  a: b\n", []string{"not a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseUserdata([]byte(tt.in))
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzParseUserdata(f *testing.F) {
	for _, s := range []string{"", "cluster_name=a", "#cloud-config\nesnode:\n  heap_mb: 1024\n", "a: [b", "#!/bin/sh\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUserdata(b)
		if err == nil && u == nil {
			t.Fatal("nil userdata without error")
		}
	})
}
