package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/template/config"
)

// validRaw is a complete, minimal valid template for the builder.
func validRaw() map[string]interface{} {
	return map[string]interface{}{
		"region": "eu-west-2",
		"source_ami_filter": map[string]interface{}{
			"filters":     map[string]interface{}{"name": "debian-12-amd64-*", "root-device-type": "ebs"},
			"owners":      []interface{}{"123456789012"},
			"most_recent": true,
		},
		"instance_type":                         "m6i.large",
		"temporary_security_group_source_cidrs": []interface{}{"203.0.113.0/24"},
		"ami_name":                              "es-8-{{timestamp}}",
		"ssh_username":                          "admin",
	}
}

func TestPrepareValidAppliesDefaults(t *testing.T) {
	var b Builder
	raw := validRaw()
	raw["launch_block_device_mappings"] = []interface{}{
		map[string]interface{}{"device_name": "/dev/sdf", "volume_size": 100},
	}
	raw["tags"] = map[string]interface{}{"Name": "{{ .SourceAMIName }}"}
	generated, warns, err := b.Prepare(raw)
	if err != nil {
		t.Fatalf("Prepare on a valid config: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("unexpected warnings: %v", warns)
	}
	for _, want := range []string{"SourceAMI", "SourceAMIName", "BuildRegion"} {
		if !contains(generated, want) {
			t.Errorf("generated data %v lacks %q", generated, want)
		}
	}
	c := b.Config()
	checks := []struct {
		name      string
		got, want interface{}
	}{
		{"max_retries", c.MaxRetries, DefaultMaxRetries},
		{"max attempts", c.MaxAttempts(), DefaultMaxRetries + 1},
		{"polling.delay_seconds", c.Polling.DelaySeconds, DefaultPollDelaySeconds},
		{"polling.max_attempts", c.Polling.MaxAttempts, DefaultPollMaxAttempts},
		{"http_tokens", c.Metadata.HttpTokens, "required"},
		{"hop limit", c.Metadata.HttpPutResponseHopLimit, int64(1)},
		{"instance_metadata_tags", c.Metadata.InstanceMetadataTags, "enabled"},
		{"ssh_interface", c.SSHInterface, "public_ip"},
		{"shutdown_behavior", c.InstanceInitiatedShutdownBehavior, "terminate"},
		{"self_terminate_after", c.SelfTerminateDuration(), 2 * time.Hour},
		{"imds_support", c.IMDSSupport, "v2.0"},
		{"encrypt_boot", c.AMIEncryptBootVolume, config.TriTrue},
		{"temporary_key_pair_type", c.Comm.SSHTemporaryKeyPairType, "ed25519"},
		{"communicator", c.Comm.Type, "ssh"},
		{"ssh_port", c.Comm.SSHPort, 22},
		{"policy_gate on", c.PolicyGate.On(), true},
		{"policy_gate.fail_on", c.PolicyGate.FailOn, "high"},
		{"volume_type", c.LaunchMappings[0].VolumeType, "gp3"},
		{"encrypted", c.LaunchMappings[0].Encrypted, config.TriTrue},
		{"delete_on_termination", c.LaunchMappings[0].DeleteOnTermination, config.TriTrue},
		{"force_deregister", c.AMIForceDeregister, false},
		// Tags are rendered at build time, not now.
		{"tags kept raw", c.AMITags["Name"], "{{ .SourceAMIName }}"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if strings.Contains(c.AMIName, "{{") || !strings.HasPrefix(c.AMIName, "es-8-") {
		t.Errorf("ami_name %q was not interpolated", c.AMIName)
	}
}

func TestPrepareOptionalFieldsAccepted(t *testing.T) {
	dir := t.TempDir()
	ud := filepath.Join(dir, "user-data.sh")
	if err := os.WriteFile(ud, []byte("#!/bin/sh\ntrue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw := validRaw()
	delete(raw, "source_ami_filter")
	delete(raw, "temporary_security_group_source_cidrs")
	for k, v := range map[string]interface{}{
		"source_ami":              "ami-0123456789abcdef0",
		"profile":                 "build",
		"assume_role":             map[string]interface{}{"role_arn": "arn:aws:iam::123456789012:role/esbake", "external_id": "ci-1"},
		"ec2_endpoint":            "http://127.0.0.1:4566",
		"ssm_endpoint":            "http://127.0.0.1:4566",
		"sts_endpoint":            "https://127.0.0.1:4567/",
		"max_retries":             -1,
		"polling":                 map[string]interface{}{"delay_seconds": 2, "max_attempts": 10},
		"subnet_filter":           map[string]interface{}{"filters": map[string]interface{}{"tag:Tier": "build"}, "most_free": true},
		"vpc_id":                  "vpc-0123456789abcdef0",
		"iam_instance_profile":    "esbake-build",
		"ssh_interface":           "session_manager",
		"metadata_options":        map[string]interface{}{"http_put_response_hop_limit": 2},
		"self_terminate_after":    "90m",
		"user_data_file":          ud,
		"ami_regions":             []interface{}{"eu-west-1", "eu-west-2", "eu-west-1"},
		"ami_users":               []interface{}{"210987654321"},
		"ami_org_arns":            []interface{}{"arn:aws:organizations::123456789012:organization/o-abcdefghij"},
		"ami_ou_arns":             []interface{}{"arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-cdefgh34"},
		"deprecate_at":            time.Now().Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339),
		"ssm_parameter_name":      "/esbake/aardvark-cluster/ami",
		"kms_key_id":              "alias/esbake",
		"region_kms_key_ids":      map[string]interface{}{"eu-west-1": "alias/esbake"},
		"temporary_key_pair_type": "rsa",
		"policy_gate":             map[string]interface{}{"fail_on": "medium", "policies_dir": dir},
		"packer_force":            true,
		"launch_block_device_mappings": []interface{}{
			map[string]interface{}{"device_name": "/dev/xvda", "volume_size": 30},
			map[string]interface{}{"device_name": "/dev/sdf", "volume_size": 200, "iops": 6000, "throughput": 500},
			map[string]interface{}{"device_name": "/dev/sdg", "volume_size": 200, "volume_type": "io2", "iops": 20000},
		},
	} {
		raw[k] = v
	}
	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	c := b.Config()
	if got := c.AMIRegions; len(got) != 1 || got[0] != "eu-west-1" {
		t.Errorf("ami_regions = %v, want [eu-west-1] (deduplicated, build region dropped)", got)
	}
	if c.MaxAttempts() != 1 {
		t.Errorf("max_retries -1: MaxAttempts = %d, want 1", c.MaxAttempts())
	}
	if !c.AMIForceDeregister {
		t.Error("packer_force did not set force_deregister")
	}
	if c.AssumeRole.SessionName != DefaultAssumeRoleSession || c.AssumeRole.DurationSeconds != DefaultAssumeRoleDuration {
		t.Errorf("assume_role defaults not applied: %+v", c.AssumeRole)
	}
	if c.DeprecateAt().IsZero() {
		t.Error("deprecate_at was not parsed")
	}
	if c.UsesTemporarySG() {
		t.Error("session_manager should not create a temporary security group")
	}
	if c.PolicyGate.FailsOn("low") || !c.PolicyGate.FailsOn("medium") || !c.PolicyGate.FailsOn("critical") {
		t.Error("fail_on = medium ranks severities wrongly")
	}
}

func TestPrepareInvalid(t *testing.T) {
	past := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	far := time.Now().Add(11 * 365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	set := func(kv ...interface{}) func(map[string]interface{}) {
		return func(m map[string]interface{}) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(m, kv[i].(string))
				} else {
					m[kv[i].(string)] = kv[i+1]
				}
			}
		}
	}
	vol := func(kv ...interface{}) map[string]interface{} {
		m := map[string]interface{}{"device_name": "/dev/sdf", "volume_size": 100}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name   string
		mutate func(map[string]interface{})
		field  string // must appear in the error
	}{
		{"missing region", set("region", nil), "`region` is required"},
		{"bad region", set("region", "Europe"), "`region`"},
		{"both source_ami and filter", set("source_ami", "ami-0123456789abcdef0"), "`source_ami` and `source_ami_filter`"},
		{"neither source_ami nor filter", set("source_ami_filter", nil), "`source_ami` or `source_ami_filter` is required"},
		{"bad source_ami", set("source_ami_filter", nil, "source_ami", "ubuntu"), "`source_ami`"},
		{"filter without owners", set("source_ami_filter", map[string]interface{}{"filters": map[string]interface{}{"name": "x"}}), "`source_ami_filter.owners`"},
		{"missing instance_type", set("instance_type", nil), "`instance_type` is required"},
		{"missing ami_name", set("ami_name", nil), "`ami_name` is required"},
		{"bad ami_name", set("ami_name", "x!"), "`ami_name`"},
		{"unknown ssh_interface", set("ssh_interface", "ipv6"), "`ssh_interface`"},
		{"session_manager without profile", set("ssh_interface", "session_manager", "temporary_security_group_source_cidrs", nil), "`iam_instance_profile`"},
		{"session_manager_port without session_manager", set("session_manager_port", 2222), "`session_manager_port` is set"},
		{"session_manager_plugin_path without session_manager", set("session_manager_plugin_path", "/opt/smp"), "`session_manager_plugin_path` is set"},
		{"session_manager_port out of range", set("ssh_interface", "session_manager", "iam_instance_profile", "esbake-build", "temporary_security_group_source_cidrs", nil, "session_manager_port", 70000), "`session_manager_port` 70000"},
		{"shutdown_behavior stop", set("shutdown_behavior", "stop"), "`shutdown_behavior`"},
		{"http_tokens optional", set("metadata_options", map[string]interface{}{"http_tokens": "optional"}), "`metadata_options.http_tokens`"},
		{"hop limit 5", set("metadata_options", map[string]interface{}{"http_put_response_hop_limit": 5}), "`metadata_options.http_put_response_hop_limit`"},
		{"instance_metadata_tags bogus", set("metadata_options", map[string]interface{}{"instance_metadata_tags": "yes"}), "`metadata_options.instance_metadata_tags`"},
		{"bad CIDR", set("temporary_security_group_source_cidrs", []interface{}{"203.0.113.0/33"}), "`temporary_security_group_source_cidrs[0]`"},
		{"no CIDR for temporary SG", set("temporary_security_group_source_cidrs", nil), "`temporary_security_group_source_cidrs` is required"},
		{"CIDRs with security_group_ids", set("security_group_ids", []interface{}{"sg-0123456789abcdef0"}), "`temporary_security_group_source_cidrs`"},
		{"bad security group id", set("temporary_security_group_source_cidrs", nil, "security_group_ids", []interface{}{"default"}), "`security_group_ids[0]`"},
		{"deprecate_at in the past", set("deprecate_at", past), "`deprecate_at`"},
		{"deprecate_at bad format", set("deprecate_at", "next tuesday"), "`deprecate_at`"},
		{"deprecate_at too far", set("deprecate_at", far), "`deprecate_at`"},
		{"gp2 with throughput", set("launch_block_device_mappings", []interface{}{vol("volume_type", "gp2", "throughput", 250)}), "`launch_block_device_mappings[0].throughput`"},
		{"gp3 iops out of range", set("launch_block_device_mappings", []interface{}{vol("iops", 100)}), "`launch_block_device_mappings[0].iops`"},
		{"gp3 throughput out of range", set("launch_block_device_mappings", []interface{}{vol("throughput", 5000)}), "`launch_block_device_mappings[0].throughput`"},
		{"iops on gp2", set("launch_block_device_mappings", []interface{}{vol("volume_type", "gp2", "iops", 3000)}), "`launch_block_device_mappings[0].iops`"},
		{"io2 without iops", set("launch_block_device_mappings", []interface{}{vol("volume_type", "io2")}), "`launch_block_device_mappings[0].iops`"},
		{"unknown volume type", set("launch_block_device_mappings", []interface{}{vol("volume_type", "gp9")}), "`launch_block_device_mappings[0].volume_type`"},
		{"duplicate device", set("launch_block_device_mappings", []interface{}{vol(), vol()}), "`launch_block_device_mappings[1].device_name`"},
		{"kms key on unencrypted volume", set("launch_block_device_mappings", []interface{}{vol("encrypted", false, "kms_key_id", "alias/x")}), "`launch_block_device_mappings[0].kms_key_id`"},
		{"imds_support v1", set("imds_support", "v1"), "`imds_support`"},
		{"unknown key", set("instance_typo", "m6i.large"), "instance_typo"},
		{"ssm name with bad chars", set("ssm_parameter_name", "/esbake/ami id"), "`ssm_parameter_name`"},
		{"ssm name reserved prefix", set("ssm_parameter_name", "/aws/esbake"), "`ssm_parameter_name`"},
		{"ssm hierarchy without leading slash", set("ssm_parameter_name", "esbake/ami"), "`ssm_parameter_name`"},
		{"temporary_key_pair_type dsa", set("temporary_key_pair_type", "dsa"), "`temporary_key_pair_type`"},
		{"self_terminate_after garbage", set("self_terminate_after", "soon"), "`self_terminate_after`"},
		{"self_terminate_after too short", set("self_terminate_after", "1m"), "`self_terminate_after`"},
		{"max_retries too many", set("max_retries", 500), "`max_retries`"},
		{"bad ec2_endpoint", set("ec2_endpoint", "ec2.local"), "`ec2_endpoint`"},
		{"assume_role without role_arn", set("assume_role", map[string]interface{}{"session_name": "x1"}), "`assume_role.role_arn`"},
		{"assume_role duration", set("assume_role", map[string]interface{}{"role_arn": "arn:aws:iam::123456789012:role/r", "duration_seconds": 60}), "`assume_role.duration_seconds`"},
		{"polling negative", set("polling", map[string]interface{}{"delay_seconds": -1}), "`polling.delay_seconds`"},
		{"subnet id and filter", set("subnet_id", "subnet-0123456789abcdef0", "subnet_filter", map[string]interface{}{"filters": map[string]interface{}{"tag:a": "b"}}), "`subnet_id` and `subnet_filter`"},
		{"bad ami_users", set("ami_users", []interface{}{"alice"}), "`ami_users[0]`"},
		{"bad ami_org_arns", set("ami_org_arns", []interface{}{"o-abcdefghij"}), "`ami_org_arns[0]`"},
		{"region key outside ami_regions", set("region_kms_key_ids", map[string]interface{}{"us-east-1": "alias/k"}), "`region_kms_key_ids`"},
		{"encrypt_boot false", set("encrypt_boot", false), "`encrypt_boot`"},
		{"force_delete_snapshot alone", set("force_delete_snapshot", true), "`force_delete_snapshot`"},
		{"reserved tag prefix", set("tags", map[string]interface{}{"esbake:es-version": "9"}), "`tags`"},
		{"aws tag prefix", set("run_tags", map[string]interface{}{"aws:x": "y"}), "`run_tags`"},
		{"both user_data and file", set("user_data", "x", "user_data_file", "/etc/hostname"), "`user_data` and `user_data_file`"},
		{"missing user_data_file", set("user_data_file", "/nonexistent/user-data"), "`user_data_file`"},
		{"fail_on bogus", set("policy_gate", map[string]interface{}{"fail_on": "severe"}), "`policy_gate.fail_on`"},
		{"policies_dir missing", set("policy_gate", map[string]interface{}{"policies_dir": "/nonexistent/policies"}), "`policy_gate.policies_dir`"},
		{"winrm communicator", set("communicator", "winrm"), "`communicator`"},
		{"missing ssh_username", set("ssh_username", nil), "ssh_username"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := validRaw()
			tc.mutate(raw)
			var b Builder
			_, _, err := b.Prepare(raw)
			if err == nil {
				t.Fatalf("Prepare accepted an invalid config; want an error naming %s", tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error does not name %s:\n%v", tc.field, err)
			}
			t.Log(err)
		})
	}
}

// Every problem is reported at once, not just the first.
func TestPrepareCollectsAllErrors(t *testing.T) {
	raw := validRaw()
	delete(raw, "region")
	raw["shutdown_behavior"] = "stop"
	raw["imds_support"] = "v1"
	var b Builder
	_, _, err := b.Prepare(raw)
	if err == nil {
		t.Fatal("Prepare accepted an invalid config")
	}
	for _, f := range []string{"`region`", "`shutdown_behavior`", "`imds_support`"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error lacks %s:\n%v", f, err)
		}
	}
}

func TestSSMParameterNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"esbake-ami":                         true,
		"/esbake/aardvark-cluster/ami":       true,
		"/a.b_c-d":                           true,
		"/esbake/":                           false,
		"/esbake//ami":                       false,
		"ssm-ami":                            false,
		"/AWS/ami":                           false,
		"/" + strings.Repeat("a/", 16) + "x": false,
		strings.Repeat("a", 1012):            false,
	} {
		if err := validateSSMParameterName(name); (err == nil) != ok {
			t.Errorf("validateSSMParameterName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestCleanResourceName(t *testing.T) {
	f := TemplateFuncs["clean_resource_name"].(func(string) string)
	if got := f("es 8.15:{x}"); got != "es 8.15--x-" {
		t.Errorf("clean_resource_name = %q", got)
	}
}

func TestRunFailsEarlyWithoutSessionManagerPlugin(t *testing.T) {
	raw := validRaw()
	delete(raw, "temporary_security_group_source_cidrs")
	raw["ssh_interface"] = "session_manager"
	raw["iam_instance_profile"] = "esbake-build"
	raw["session_manager_plugin_path"] = filepath.Join(t.TempDir(), "no-such-plugin")
	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	// No driver, no endpoint: the check has to come before any AWS call.
	if _, err := b.Run(t.Context(), nil, nil); err == nil || !strings.Contains(err.Error(), "session_manager_plugin_path") {
		t.Fatalf("Run = %v, want the missing plugin reported before anything is created", err)
	}
}

// TestPrepareWarnsOnInternetWideSSHSources: any /0, not only the literal
// 0.0.0.0/0 and ::/0, opens SSH to the internet; so does a very wide
// public prefix.
func TestPrepareWarnsOnInternetWideSSHSources(t *testing.T) {
	for cidr, want := range map[string]string{
		"0.0.0.0/0":      "the whole internet",
		"1.2.3.4/0":      "the whole internet",
		"::/0":           "the whole internet",
		"2001:db8::1/0":  "the whole internet",
		"128.0.0.0/1":    "a large part of the internet",
		"2000::/3":       "a large part of the internet",
		"203.0.113.0/24": "",
		"10.0.0.0/8":     "",
	} {
		var b Builder
		raw := validRaw()
		raw["temporary_security_group_source_cidrs"] = []interface{}{cidr}
		_, warns, err := b.Prepare(raw)
		if err != nil {
			t.Fatalf("%s: %v", cidr, err)
		}
		got := strings.Join(warns, "\n")
		if want == "" && strings.Contains(got, "temporary_security_group_source_cidrs") || want != "" && !strings.Contains(got, want) {
			t.Errorf("%s: warnings %q, want %q", cidr, warns, want)
		}
	}
}
