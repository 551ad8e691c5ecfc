package boot

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// TestBootRemovesDiscoveryKeysNoLongerNamed: a boot whose userdata no
// longer names the discovery keys' SSM parameters removes the keys an
// earlier boot put in the keystore (a move to the instance profile must
// not keep using old long-lived keys); keys esnode never added stay.
func TestBootRemovesDiscoveryKeysNoLongerNamed(t *testing.T) {
	n, secrets := withTransportTLS(t, spec.Node{Elasticsearch: spec.Elasticsearch{Version: "8.15.3"}, Cluster: spec.Cluster{Name: "spec-cluster"}})
	root := testRoot(t, n, 8*1024*1024)
	list := KeystoreTool + " list"
	boot := func(userdata string, keystore string) *RecordingRunner {
		t.Helper()
		rr := &RecordingRunner{Output: map[string][]byte{list: []byte(keystore)}}
		var out bytes.Buffer
		_, err := Run(context.Background(), Options{Root: root, IMDSEndpoint: fakeIMDSv2(t, baseMetadata(userdata)), IMDSTimeout: 20 * time.Second,
			Out: &out, Runner: rr, Firewall: &RecordingFirewall{}, Params: fakeParams{"/es/ak": "AKIDSTANDIN0000", "/es/sk": "stand-in-secret"}, Secrets: secrets})
		if err != nil {
			t.Fatalf("boot: %v\n%s", err, out.String())
		}
		return rr
	}
	ran := func(rr *RecordingRunner) []string {
		var s []string
		for _, c := range rr.Commands {
			s = append(s, c.String())
		}
		return s
	}
	remove := KeystoreTool + " remove discovery.ec2.access_key discovery.ec2.secret_key"

	// Boot 1 adds the keys and records them as esnode's.
	rr := boot("discovery_access_key_param=/es/ak\ndiscovery_secret_key_param=/es/sk\n", "keystore.seed\n")
	if st, err := ReadState(root); err != nil || !slices.Equal(st.KeystoreKeys, discoveryKeystoreKeys) {
		t.Fatalf("boot.json keystore_keys = %v, %v", st, err)
	}
	if slices.Contains(ran(rr), remove) {
		t.Error("removed the keys it was adding")
	}
	// Boot 2: userdata moved to the instance profile; the keys go.
	rr = boot("", "keystore.seed\ndiscovery.ec2.access_key\ndiscovery.ec2.secret_key\n")
	if !slices.Contains(ran(rr), remove) {
		t.Errorf("ran %q, want the stale discovery keys removed", ran(rr))
	}
	if st, _ := ReadState(root); st.KeystoreKeys == nil || len(st.KeystoreKeys) != 0 {
		t.Errorf("boot.json keystore_keys = %v, want recorded as none", st.KeystoreKeys)
	}
	// Boot 3: a key a user added by hand since is not esnode's: it stays.
	rr = boot("", "keystore.seed\ndiscovery.ec2.access_key\ndiscovery.ec2.secret_key\n")
	for _, c := range ran(rr) {
		if c == list || c == remove {
			t.Errorf("touched keys esnode does not own: %s", c)
		}
	}
}

func TestStaleKeystoreKeys(t *testing.T) {
	// A boot.json from before keystore_keys: the userdata it recorded says.
	old := &State{Userdata: &Userdata{DiscoveryAccessKeyParam: "/es/ak", DiscoverySecretKeyParam: "/es/sk"}}
	if got := staleKeystoreKeys(old, nil); !slices.Equal(got, discoveryKeystoreKeys) {
		t.Errorf("stale from an old state = %v", got)
	}
	if got := staleKeystoreKeys(old, discoveryKeystoreKeys); len(got) != 0 {
		t.Errorf("still wanted, yet stale: %v", got)
	}
	if keystoreRemoveCommand(discoveryKeystoreKeys, []byte("keystore.seed\n")) != nil {
		t.Error("remove of keys the keystore no longer holds (it fails on a missing setting)")
	}
}

func TestBatchKeystoreAdds(t *testing.T) {
	cmds := []Command{keystoreAdd("a.b", "one"), cwFetchConfig(), keystoreAdd("c.d", "two"), keystoreAdd("e.f", "multi\nline"), keystoreList()}
	v := func(s string) spec.Version {
		ver, err := spec.ParseVersion(s)
		if err != nil {
			t.Fatal(err)
		}
		return ver
	}
	got := batchKeystoreAdds(cmds, v("8.15.3"))
	want := []Command{
		{Name: KeystoreTool, Args: []string{"add", "--stdin", "--force", "a.b", "c.d"}, Env: []string{"ES_PATH_CONF=/etc/elasticsearch"}, Stdin: []byte("one\ntwo")},
		cwFetchConfig(), keystoreAdd("e.f", "multi\nline"), keystoreList(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("8.x batch:\n got %+v\nwant %+v", got, want)
	}
	// Before 7.8 `add` takes one setting: unchanged.
	for _, old := range []string{"7.6.2", "6.8.23"} {
		if got := batchKeystoreAdds(cmds, v(old)); !reflect.DeepEqual(got, cmds) {
			t.Errorf("%s: %+v", old, got)
		}
	}
}
