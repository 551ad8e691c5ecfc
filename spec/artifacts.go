package spec

import (
	"fmt"
	"path"
	"strings"
)

// Artifact is one download of a bake, resolved for a guest architecture.
type Artifact struct {
	// Name says what it is: "elasticsearch", "plugin/discovery-ec2",
	// "elastichq", "cloudwatch-agent" or "java".
	Name string `json:"name"`
	// URL to fetch.
	URL string `json:"url"`
	// FileName is the artifact's name on disk and on a mirror.
	FileName string `json:"file_name"`
	// SHA512 is the expected sum, or "file:<url>" of a checksum file to read
	// it from.
	SHA512 string `json:"sha512"`
}

// Official download locations. The bake never downloads anything else unless
// the spec says so.
const (
	ElasticArtifactsURL = "https://artifacts.elastic.co/downloads"
	ElasticHQReleaseURL = "https://github.com/ElasticHQ/elasticsearch-HQ/archive/refs/tags/v{version}.tar.gz"
	CloudWatchAgentURL  = "https://amazoncloudwatch-agent.s3.amazonaws.com/debian/{arch}/{version}/amazon-cloudwatch-agent.deb"
)

// Arches are the guest architectures, in Debian's names.
var Arches = []string{"amd64", "arm64"}

// Artifacts lists every download of a defaulted, valid spec for a guest
// architecture, in install order.
func (n *Node) Artifacts(arch string) ([]Artifact, error) {
	if arch != "amd64" && arch != "arm64" {
		return nil, fmt.Errorf("architecture %q has no Elasticsearch packages; use an amd64 or arm64 source image", arch)
	}
	ver, err := ParseVersion(n.Elasticsearch.Version)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch.version: %w", err)
	}
	var out []Artifact
	add := func(name, rawURL, official, sum string, officialSums bool) {
		a := Artifact{Name: name, SHA512: sum}
		src := rawURL
		if src == "" {
			src = official
		}
		src = strings.NewReplacer("{arch}", arch, "{version}", versionFor(name, n)).Replace(src)
		a.FileName = path.Base(src)
		switch {
		case n.MirrorURL != "":
			a.URL = strings.TrimSuffix(n.MirrorURL, "/") + "/" + a.FileName
		default:
			a.URL = src
		}
		if a.SHA512 == "" && officialSums && rawURL == "" && n.MirrorURL == "" {
			a.SHA512 = "file:" + a.URL + ".sha512"
		}
		out = append(out, a)
	}
	if ver.Major < 7 && n.Java.URL != "" {
		add("java", n.Java.URL, "", n.Java.SHA512, false)
	}
	es := n.Elasticsearch
	add("elasticsearch", es.URL, elasticsearchURL(ver), es.SHA512, true)
	for _, p := range n.Plugins {
		official := fmt.Sprintf("%s/elasticsearch-plugins/%s/%s-%s.zip", ElasticArtifactsURL, p.Name, p.Name, ver)
		add("plugin/"+p.Name, p.URL, official, p.SHA512, officialPlugins[p.Name])
	}
	if n.ElasticHQ.Enabled {
		hq := n.ElasticHQ
		add("elastichq", hq.URL, ElasticHQReleaseURL, hq.SHA512, false)
		// GitHub names every tag archive v<version>.tar.gz; keep it recognisable.
		if hq.URL == "" {
			out[len(out)-1].FileName = "elasticsearch-HQ-" + hq.Version + ".tar.gz"
			if n.MirrorURL != "" {
				out[len(out)-1].URL = strings.TrimSuffix(n.MirrorURL, "/") + "/" + out[len(out)-1].FileName
			}
		}
	}
	if n.CloudWatchAgent.Enabled {
		cw := n.CloudWatchAgent
		add("cloudwatch-agent", cw.URL, CloudWatchAgentURL, cw.SHA512, false)
	}
	return out, nil
}

func versionFor(name string, n *Node) string {
	switch name {
	case "elastichq":
		return n.ElasticHQ.Version
	case "cloudwatch-agent":
		return n.CloudWatchAgent.Version
	}
	return n.Elasticsearch.Version
}

// elasticsearchURL is the official package: 6.x packages are architecture
// independent, 7.0 and later bundle a JDK per architecture.
func elasticsearchURL(v Version) string {
	if v.Major < 7 {
		return fmt.Sprintf("%s/elasticsearch/elasticsearch-%s.deb", ElasticArtifactsURL, v)
	}
	return fmt.Sprintf("%s/elasticsearch/elasticsearch-%s-{arch}.deb", ElasticArtifactsURL, v)
}
