package install

import (
	"archive/zip"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// pluginDescriptor is the part of plugin-descriptor.properties install checks.
type pluginDescriptor struct {
	Name                 string
	Version              string
	ElasticsearchVersion string
}

func parseProperties(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			k, v, ok = strings.Cut(line, ":")
		}
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

func descriptorFrom(data []byte) pluginDescriptor {
	p := parseProperties(data)
	return pluginDescriptor{Name: p["name"], Version: p["version"], ElasticsearchVersion: p["elasticsearch.version"]}
}

// zipDescriptor reads plugin-descriptor.properties from a plugin zip: at the
// top (7.x and later) or under elasticsearch/ (6.x).
func zipDescriptor(file string) (pluginDescriptor, error) {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return pluginDescriptor{}, fmt.Errorf("%s is not a plugin zip: %w", path.Base(file), err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		name := strings.TrimPrefix(f.Name, "./")
		if name != "plugin-descriptor.properties" && name != "elasticsearch/plugin-descriptor.properties" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return pluginDescriptor{}, fmt.Errorf("%s: %w", path.Base(file), err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			return pluginDescriptor{}, fmt.Errorf("%s: read %s: %w", path.Base(file), f.Name, err)
		}
		return descriptorFrom(data), nil
	}
	return pluginDescriptor{}, fmt.Errorf("%s holds no plugin-descriptor.properties; it is not an Elasticsearch plugin zip", path.Base(file))
}

// checkPlugin refuses a zip built for another plugin or another
// Elasticsearch version: elasticsearch-plugin would refuse it later, after
// other things were installed.
func checkPlugin(name, esVersion, file string) (pluginDescriptor, error) {
	d, err := zipDescriptor(file)
	if err != nil {
		return d, fmt.Errorf("plugin %s: %w", name, err)
	}
	if d.Name != "" && d.Name != name {
		return d, fmt.Errorf("plugin %s: %s is the plugin %q; point the plugin's url at %s", name, path.Base(file), d.Name, name)
	}
	if d.ElasticsearchVersion != esVersion {
		return d, fmt.Errorf("plugin %s: %s is built for Elasticsearch %q, not %s; use the plugin release for %s", name, path.Base(file), d.ElasticsearchVersion, esVersion, esVersion)
	}
	return d, nil
}

// installedPlugin reads an installed plugin's descriptor; ok is false when
// it is not installed.
func (f fsys) installedPlugin(name string) (pluginDescriptor, bool) {
	b, err := os.ReadFile(f.host(path.Join(ESPluginsDir, name, "plugin-descriptor.properties")))
	if err != nil {
		return pluginDescriptor{}, false
	}
	return descriptorFrom(b), true
}
