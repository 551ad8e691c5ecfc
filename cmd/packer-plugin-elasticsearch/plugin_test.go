package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
)

// testSums stand in for the checksums a user keeps in checksums.pkrvars.hcl;
// Prepare only checks their form.
var testVars = map[string]cty.Value{
	"elastichq_sha512":        cty.StringVal(strings.Repeat("ab", 64)),
	"cloudwatch_agent_sha512": cty.StringVal(strings.Repeat("cd", 64)),
}

func readExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../example.pkr.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDescribeListsComponents(t *testing.T) {
	out, err := exec.Command(plugintest.Binary(t), "describe").Output()
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var d struct {
		Version      string   `json:"version"`
		SDKVersion   string   `json:"sdk_version"`
		APIVersion   string   `json:"api_version"`
		Builders     []string `json:"builders"`
		Provisioners []string `json:"provisioners"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("describe output %q: %v", out, err)
	}
	if strings.Join(d.Builders, ",") != "ami" || strings.Join(d.Provisioners, ",") != "node" {
		t.Fatalf("describe lists builders %v and provisioners %v; want [ami] and [node]", d.Builders, d.Provisioners)
	}
	if d.Version == "" || d.APIVersion != "x5.0" {
		t.Fatalf("describe: version %q api %q", d.Version, d.APIVersion)
	}
}

// mutation turns the example into an invalid template by replacing text.
type mutation struct {
	name      string
	old, new  string
	wantField string
}

func TestExampleProvisionerThroughPlugin(t *testing.T) {
	client := plugintest.Start(t, plugintest.Binary(t), "provisioner", "node")
	prov := client.Provisioner()
	spec := prov.ConfigSpec()
	prepare := func(t *testing.T, src string) error {
		t.Helper()
		tmpl := plugintest.LoadTemplate(t, "example.pkr.hcl", []byte(src), testVars)
		val, diags := hcldec.Decode(tmpl.Provisioner(t, "elasticsearch-node"), hcldec.ObjectSpec(spec), tmpl.Ctx)
		if diags.HasErrors() {
			t.Fatalf("decode provisioner block: %s", diags.Error())
		}
		return prov.Prepare(val, plugintest.PackerVars("elasticsearch-ami"))
	}
	example := readExample(t)
	if err := prepare(t, example); err != nil {
		t.Fatalf("example.pkr.hcl's provisioner is refused: %v", err)
	}

	cases := []mutation{
		{"unknown ES version", "version = var.elasticsearch_version", `version = "5.6.16"`, "elasticsearch.version"},
		{"ES version not a release", "version = var.elasticsearch_version", `version = "8.x"`, "elasticsearch.version"},
		{"mirror without checksum", "heap {\n", "mirror_url = \"https://mirror.example.com/elastic\"\n    heap {\n", "elasticsearch.sha512"},
		{"HQ port clash", "port    = 5000", "port    = 9200", "elastichq.port"},
		{"HQ as root", "port    = 5000", "port = 5000\n      user = \"root\"", "elastichq.user"},
		{"HQ without checksum", "sha512  = var.elastichq_sha512", "", "elastichq.sha512"},
		{"bad CIDR", `http_sources      = ["vpc"]`, `http_sources = ["10.0.0.0/33"]`, "firewall.http_sources[0]"},
		{"tag key ES refuses", `discovery_tag_key = "es_cluster"`, `discovery_tag_key = "team/es"`, "cluster.discovery_tag_key"},
		{"heap percent over 75", "percent = 50", "percent = 80", "heap.percent"},
		{"heap at compressed oops", "percent = 50", "percent = 50\n      max_mb = 32768", "heap.max_mb"},
		{"repository-s3 bundled in 8", `name = "discovery-ec2"`, `name = "repository-s3"`, "plugin[0].name"},
		{"CORS everything", `discovery_tag_key = "es_cluster"`, "discovery_tag_key = \"es_cluster\"\n      cors_allow_origin = \"*\"", "cluster.cors_allow_origin"},
		{"Java with ES 8", "heap {\n", "java {\n      package = \"openjdk-17-jre-headless\"\n    }\n    heap {\n", "java"},
		{"reserved tag key", `discovery_tag_key = "es_cluster"`, `discovery_tag_key = "aws:cluster"`, "cluster.discovery_tag_key"},
		{"unknown role", `discovery_tag_key = "es_cluster"`, "discovery_tag_key = \"es_cluster\"\n      roles = [\"boss\"]", "cluster.roles[0]"},
		{"remote_dir on noexec tmp", "heap {\n", "remote_dir = \"/tmp/bake\"\n    heap {\n", "remote_dir"},
		{"execute_command without command", "heap {\n", "execute_command = \"sudo -n true\"\n    heap {\n", "execute_command"},
		{"fail_on unknown", "heap {\n", "policy_gate {\n      fail_on = \"severe\"\n    }\n    heap {\n", "policy_gate.fail_on"},
		{"nofile below bootstrap check", "heap {\n", "system {\n      nofile = 1024\n    }\n    heap {\n", "system.nofile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(example, c.old, c.new, 1)
			if src == example {
				t.Fatalf("mutation did not apply: %q not in example", c.old)
			}
			err := prepare(t, src)
			if err == nil {
				t.Fatalf("Prepare accepted an invalid config")
			}
			if !strings.Contains(err.Error(), c.wantField+":") {
				t.Fatalf("error does not name %s:\n%v", c.wantField, err)
			}
		})
	}

	t.Run("unknown key", func(t *testing.T) {
		err := prov.Prepare(map[string]interface{}{"elasticsearch": map[string]interface{}{"version": "8.15.3"}, "colour": "blue"})
		if err == nil || !strings.Contains(err.Error(), "colour") {
			t.Fatalf("unknown key: got %v", err)
		}
	})
}

func TestExampleBuilderThroughPlugin(t *testing.T) {
	client := plugintest.Start(t, plugintest.Binary(t), "builder", "ami")
	b := client.Builder()
	spec := b.ConfigSpec()
	prepare := func(t *testing.T, src string) error {
		t.Helper()
		tmpl := plugintest.LoadTemplate(t, "example.pkr.hcl", []byte(src), testVars)
		val, diags := hcldec.Decode(tmpl.Source(t, "elasticsearch-ami", "node"), hcldec.ObjectSpec(spec), tmpl.Ctx)
		if diags.HasErrors() {
			t.Fatalf("decode source block: %s", diags.Error())
		}
		_, _, err := b.Prepare(val, plugintest.PackerVars("elasticsearch-ami"))
		return err
	}
	example := readExample(t)
	if err := prepare(t, example); err != nil {
		t.Fatalf("example.pkr.hcl's source is refused: %v", err)
	}
	cases := []mutation{
		{"deprecate_at in the past", `imds_support    = "v2.0"`, "imds_support = \"v2.0\"\n  deprecate_at = \"2020-01-01T00:00:00Z\"", "deprecate_at"},
		{"unknown ssh_interface", `ssh_interface                         = "private_ip"`, `ssh_interface = "ipv6"`, "ssh_interface"},
		{"shutdown stop", `shutdown_behavior                     = "terminate"`, `shutdown_behavior = "stop"`, "shutdown_behavior"},
		{"IMDSv1 allowed", `http_tokens                 = "required"`, `http_tokens = "optional"`, "http_tokens"},
		{"bad source CIDR", `default     = "10.0.0.0/8"`, `default     = "10.0.0.0/40"`, "temporary_security_group_source_cidrs"},
		{"no region", `region        = var.region`, "", "region"},
		{"imds_support v1", `imds_support    = "v2.0"`, `imds_support = "v1.0"`, "imds_support"},
		{"both AMI sources", `instance_type = "m6i.large"`, "instance_type = \"m6i.large\"\n  source_ami = \"ami-0123456789abcdef0\"", "source_ami"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(example, c.old, c.new, 1)
			if src == example {
				t.Fatalf("mutation did not apply: %q not in example", c.old)
			}
			err := prepare(t, src)
			if err == nil {
				t.Fatalf("Prepare accepted an invalid config")
			}
			if !strings.Contains(err.Error(), c.wantField) {
				t.Fatalf("error does not name %s:\n%v", c.wantField, err)
			}
		})
	}
}
