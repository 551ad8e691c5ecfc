package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// RefreshResult says what a security refresh did.
type RefreshResult struct {
	// Written lists the material files that changed.
	Written []string
	// Ran lists the keystore commands run, without their stdin.
	Ran []string
	// NeedsBoot is set when elasticsearch.yml would change too (a layer
	// turned on or off, PEM replaced by PKCS#12): run `esnode boot` and
	// restart Elasticsearch.
	NeedsBoot bool
}

// RefreshSecurity re-fetches the cluster's TLS material and passwords and
// replaces the files and keystore entries that changed, without touching
// anything else: Elasticsearch 8 reloads changed certificate and key files
// on its own (resource.reload.interval.high, 5s), so a rotation needs no
// restart. It is `esnode security-refresh`, for an operator or SSM Run
// Command. Fails closed like boot: when AWS does not answer nothing
// changes.
func RefreshSecurity(ctx context.Context, o Options) (*RefreshResult, error) {
	e := newBootEnv(o)
	in, err := gather(ctx, e)
	if err != nil {
		return nil, err
	}
	if in.prev == nil {
		return nil, fmt.Errorf("no %s: this node never booted with esnode; run esnode boot", StatePath)
	}
	sp, err := planSecurity(ctx, e, in)
	if err != nil {
		return nil, err
	}
	if sp == nil {
		return nil, fmt.Errorf("no security material is configured (node spec security or userdata security_*); nothing to refresh")
	}
	if sp.kept {
		return nil, fmt.Errorf("AWS did not answer; the node keeps its current material (see the warning above)")
	}
	res := &RefreshResult{}
	old, _, err := readExisting(e.root, ElasticsearchYML)
	if err != nil {
		return nil, err
	}
	for _, st := range sp.settings {
		if !strings.Contains(string(old), st.key+": "+st.value+"\n") {
			res.NeedsBoot = true
		}
	}
	for _, f := range sp.files {
		cur, exists, _ := readExisting(e.root, f.Path)
		if !exists || string(cur) != string(f.Data) {
			res.Written = append(res.Written, f.Path)
		}
	}
	if e.o.DryRun {
		return res, nil
	}
	if err := writeSecurityFiles(e, sp); err != nil {
		return nil, err
	}
	sp.elasticPassword = "" // bootstrap.password is for the first boot only
	for _, c := range batchKeystoreAdds(sp.keystoreCommands(), in.ver) {
		if b, err := e.runner.Run(ctx, c); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", c, err, strings.TrimSpace(string(b)))
		}
		res.Ran = append(res.Ran, c.String())
	}
	st := *in.prev
	st.Security = sp.record
	b, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(e.root, StatePath), append(b, '\n'), 0o644, false, 0o755); err != nil {
		return nil, err
	}
	return res, nil
}
