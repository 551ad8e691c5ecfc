package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
)

// TestPackerTemplateAppliesTheDemoOverrides: the copy of the example a real
// Packer bakes decodes, through the plugin's own specs, to the example's
// values with exactly the demo's overrides, and both components accept it.
func TestPackerTemplateAppliesTheDemoOverrides(t *testing.T) {
	src, err := os.ReadFile("../../example.pkr.hcl")
	if err != nil {
		t.Fatal(err)
	}
	ep := cty.StringVal("http://127.0.0.1:4566")
	sha := func(c string) cty.Value { return cty.StringVal(strings.Repeat(c, 128)) }
	source := []override{
		{[]string{"ec2_endpoint"}, ep, ""},
		{[]string{"ssm_endpoint"}, ep, ""},
		{[]string{"sts_endpoint"}, ep, ""},
		{[]string{"polling", "delay_seconds"}, cty.NumberIntVal(1), ""},
	}
	prov := []override{
		{[]string{"mirror_url"}, cty.StringVal("http://10.213.0.1:8080"), ""},
		{[]string{"elasticsearch", "sha512"}, sha("a"), ""},
		{[]string{"plugin", "0", "sha512"}, sha("b"), ""},
	}
	out, err := packerTemplate("example.pkr.hcl", src, source, prov)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]cty.Value{"elastichq_sha512": sha("c"), "cloudwatch_agent_sha512": sha("d"), "builder_cidr": cty.StringVal("10.213.0.0/24")}
	tmpl, err := plugintest.ParseTemplate("rewritten.pkr.hcl", out, vars)
	if err != nil {
		t.Fatalf("the rewritten template does not parse: %v\n%s", err, out)
	}
	bin := plugintest.Binary(t)

	sbody, err := tmpl.SourceBody("elasticsearch-ami", "node")
	if err != nil {
		t.Fatal(err)
	}
	client, stop, err := plugintest.StartPlugin(bin, "builder", "ami")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	b := client.Builder()
	sv, diags := hcldec.Decode(sbody, hcldec.ObjectSpec(b.ConfigSpec()), tmpl.Ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for path, want := range map[string]cty.Value{
		"ec2_endpoint":          ep,
		"sts_endpoint":          ep,
		"polling.delay_seconds": cty.NumberIntVal(1),
		"instance_type":         cty.StringVal("m6i.large"), // as written
		"ssm_parameter_name":    cty.StringVal("/elasticsearch/aardvark-cluster/ami-id"),
	} {
		if got := at(t, sv, path); !got.RawEquals(want) {
			t.Errorf("source %s = %#v, want %#v", path, got, want)
		}
	}
	if _, _, err := b.Prepare(sv, plugintest.PackerVars("elasticsearch-ami")); err != nil {
		t.Errorf("builder Prepare of the rewritten source: %v", err)
	}

	pbody, err := tmpl.ProvisionerBody("elasticsearch-node")
	if err != nil {
		t.Fatal(err)
	}
	pclient, pstop, err := plugintest.StartPlugin(bin, "provisioner", "node")
	if err != nil {
		t.Fatal(err)
	}
	defer pstop()
	p := pclient.Provisioner()
	pv, diags := hcldec.Decode(pbody, hcldec.ObjectSpec(p.ConfigSpec()), tmpl.Ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for path, want := range map[string]cty.Value{
		"mirror_url":            cty.StringVal("http://10.213.0.1:8080"),
		"elasticsearch.sha512":  sha("a"),
		"elasticsearch.version": cty.StringVal("8.15.3"), // as written
		"plugin.0.sha512":       sha("b"),
		"plugin.0.name":         cty.StringVal("discovery-ec2"),
		"elastichq.sha512":      sha("c"),
	} {
		if got := at(t, pv, path); !got.RawEquals(want) {
			t.Errorf("provisioner %s = %#v, want %#v", path, got, want)
		}
	}
	if err := p.Prepare(pv, plugintest.PackerVars("elasticsearch-ami")); err != nil {
		t.Errorf("provisioner Prepare of the rewritten block: %v", err)
	}

	if _, err := packerTemplate("example.pkr.hcl", src, nil, []override{{[]string{"plugin", "3", "sha512"}, sha("b"), ""}}); err == nil || !strings.Contains(err.Error(), `"plugin" block`) {
		t.Errorf("an override of a fourth plugin block the example lacks: %v, want an error naming the blocks", err)
	}
	if _, err := packerTemplate("other.pkr.hcl", []byte(`source "amazon-ebs" "x" {}`), source, prov); err == nil || !strings.Contains(err.Error(), "elasticsearch-ami") {
		t.Errorf("a template without the elasticsearch-ami source: %v", err)
	}
}

// at follows a dotted path (numbers index lists) in a decoded block.
func at(t *testing.T, v cty.Value, path string) cty.Value {
	t.Helper()
	for _, p := range strings.Split(path, ".") {
		if v.IsNull() {
			t.Fatalf("%s: null before %q", path, p)
		}
		if v.Type().IsListType() || v.Type().IsTupleType() {
			v = v.Index(cty.NumberIntVal(int64(p[0] - '0')))
			continue
		}
		v = v.GetAttr(p)
	}
	return v
}

func TestReadPackerOutput(t *testing.T) {
	out := strings.Join([]string{
		`1764050000,,ui,say,==> elasticsearch-ami.node: Prevalidating the AMI name and regions...`,
		`1764050001,,ui,message,    elasticsearch-ami.node: esnode install: download: verified a%!(PACKER_COMMA) b\nsecond line`,
		`1764050002,elasticsearch-ami.node,artifact-count,1`,
		`1764050002,elasticsearch-ami.node,artifact,0,builder-id,esbake.elasticsearch-ami`,
		`1764050002,elasticsearch-ami.node,artifact,0,id,eu-west-2:ami-0123456789abcdef0%!(PACKER_COMMA)eu-west-1:ami-0fedcba9876543210`,
		`not machine readable`,
	}, "\n") + "\n"
	var w bytes.Buffer
	id, err := readPackerOutput(strings.NewReader(out), &w)
	if err != nil {
		t.Fatal(err)
	}
	if id != "eu-west-2:ami-0123456789abcdef0,eu-west-1:ami-0fedcba9876543210" {
		t.Errorf("artifact id %q", id)
	}
	want := "    | ==> elasticsearch-ami.node: Prevalidating the AMI name and regions...\n" +
		"    |     elasticsearch-ami.node: esnode install: download: verified a, b\n" +
		"    | second line\n" +
		"    | not machine readable\n"
	if w.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", w.String(), want)
	}
}
