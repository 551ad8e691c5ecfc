package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"gopkg.in/yaml.v3"

	"github.com/esbake/packer-plugin-elasticsearch/builder"
	"github.com/esbake/packer-plugin-elasticsearch/node/boot"
	"github.com/esbake/packer-plugin-elasticsearch/spec"
)

// checkImage checks what the bake left in the cloud: an available image
// tagged with its node manifest's summary, and its id published to the
// example's SSM parameter. The spec hash is kept to compare with each
// node's own manifest.
func (d *demo) checkImage(ctx context.Context) error {
	out, err := d.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{d.ami}})
	if err != nil || len(out.Images) != 1 {
		return fmt.Errorf("describe the baked image %s: %v", d.ami, err)
	}
	img := out.Images[0]
	tags := map[string]string{}
	for _, t := range img.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	var problems []string
	if img.State != "available" {
		problems = append(problems, fmt.Sprintf("state %s, want available", img.State))
	}
	if v := tags[builder.TagESVersion]; v != esVersion {
		problems = append(problems, fmt.Sprintf("tag %s = %q, want %q", builder.TagESVersion, v, esVersion))
	}
	if v := tags[builder.TagPlugins]; v != spec.PluginDiscoveryEC2 {
		problems = append(problems, fmt.Sprintf("tag %s = %q, want %q", builder.TagPlugins, v, spec.PluginDiscoveryEC2))
	}
	d.specHash = tags[builder.TagSpecHash]
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(d.specHash) {
		problems = append(problems, fmt.Sprintf("tag %s = %q, want a SHA-256", builder.TagSpecHash, d.specHash))
	}
	sc := ssm.New(ssm.Options{Region: region, BaseEndpoint: aws.String(d.lc.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(testCreds["AWS_ACCESS_KEY_ID"], testCreds["AWS_SECRET_ACCESS_KEY"], "")})
	p, err := sc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(ssmParam)})
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("SSM parameter %s: %v", ssmParam, err))
	case aws.ToString(p.Parameter.Value) != d.ami:
		problems = append(problems, fmt.Sprintf("SSM parameter %s = %q, want %s", ssmParam, aws.ToString(p.Parameter.Value), d.ami))
	}
	if len(problems) > 0 {
		return fmt.Errorf("baked image %s: %s", d.ami, strings.Join(problems, "; "))
	}
	fmt.Printf("    image %s available, tagged %s=%s %s=%s %s=%s\n", d.ami,
		builder.TagESVersion, esVersion, builder.TagPlugins, tags[builder.TagPlugins], builder.TagSpecHash, d.specHash[:12]+"…")
	fmt.Printf("    SSM parameter %s = %s\n", ssmParam, d.ami)
	return nil
}

// checkNode checks the per-boot configuration esnode boot wrote on node
// num against what the cloud says about the instance: network.host is its
// private IP, the heap its share of its own memory, and the ES ports open
// to its VPC only. It also checks the node runs the baked manifest.
func (d *demo) checkNode(ctx context.Context, num int, id string) error {
	inst := d.lc.Instance(id)
	sh := func(cmd string) (string, error) {
		out, err := inst.Exec(ctx, cmd)
		if err != nil {
			return "", fmt.Errorf("node %d: %s: %w", num, cmd, err)
		}
		return strings.TrimSpace(out), nil
	}
	var problems []string

	mf, err := sh("cat " + spec.ManifestPath)
	if err != nil {
		return err
	}
	m, err := spec.ParseManifest([]byte(mf))
	if err != nil {
		return fmt.Errorf("node %d: %s: %w", num, spec.ManifestPath, err)
	}
	if m.SpecHash != d.specHash {
		problems = append(problems, fmt.Sprintf("manifest spec hash %s, the image's tag says %s", m.SpecHash, d.specHash))
	}

	ip := inst.PrivateIP()
	ymlText, err := sh("cat " + boot.ElasticsearchYML)
	if err != nil {
		return err
	}
	var yml map[string]any
	if err := yaml.Unmarshal([]byte(ymlText), &yml); err != nil {
		return fmt.Errorf("node %d: %s: %w", num, boot.ElasticsearchYML, err)
	}
	if got := fmt.Sprint(yml["network.host"]); got != ip {
		problems = append(problems, fmt.Sprintf("network.host = %q, want its private IP %s", got, ip))
	}

	memKB, err := sh("awk '/^MemTotal:/ {print $2}' /proc/meminfo")
	if err != nil {
		return err
	}
	kb, err := strconv.Atoi(memKB)
	if err != nil {
		return fmt.Errorf("node %d: MemTotal %q: %w", num, memKB, err)
	}
	pct := heapPercent
	wantMB := min(max(kb/1024*pct/100, spec.DefaultHeapMinMB), spec.DefaultHeapMaxMB)
	heap, err := sh("grep -E '^-Xm[sx]' " + boot.HeapFile)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("-Xms%dm\n-Xmx%dm", wantMB, wantMB); heap != want {
		problems = append(problems, fmt.Sprintf("%s has %q, want %q (%d%% of %d MiB)", boot.HeapFile, heap, want, pct, kb/1024))
	}

	// Elasticsearch's ports are open to the VPC the node's metadata reports
	// (nodes span AZs, a subnet is one), as boot recorded it.
	stJSON, err := sh("cat " + boot.StatePath)
	if err != nil {
		return err
	}
	var st boot.State
	if err := json.Unmarshal([]byte(stJSON), &st); err != nil || len(st.VPCCIDRs) == 0 {
		return fmt.Errorf("node %d: %s: %v", num, boot.StatePath, err)
	}
	cidr := strings.Join(st.VPCCIDRs, ",")
	rules, err := sh("iptables -S " + boot.Chain)
	if err != nil {
		return err
	}
	for _, port := range []int{spec.DefaultHTTPPort, spec.DefaultTransportPort} {
		var got []string
		for _, l := range strings.Split(rules, "\n") {
			if strings.Contains(l, fmt.Sprintf("--dport %d ", port)) {
				got = append(got, l)
			}
		}
		var want []string
		for _, c := range st.VPCCIDRs {
			want = append(want, fmt.Sprintf("-A %s -s %s -p tcp -m tcp --dport %d -j ACCEPT", boot.Chain, c, port))
		}
		want = append(want, fmt.Sprintf("-A %s -p tcp -m tcp --dport %d -j DROP", boot.Chain, port))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			problems = append(problems, fmt.Sprintf("port %d rules %q, want %q", port, got, want))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("node %d (%s): %s", num, id, strings.Join(problems, "; "))
	}
	fmt.Printf("      checked: manifest = the image's spec hash; network.host = %s (its private IP); heap %dm = %d%% of %d MiB; ports %d/%d open to %s (its VPC) only\n",
		ip, wantMB, pct, kb/1024, spec.DefaultHTTPPort, spec.DefaultTransportPort, cidr)
	return nil
}
