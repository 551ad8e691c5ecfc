// Package version is the release of the plugin, esnode and esaudit, set at
// link time by make (-X .../version.Version=... -X .../version.Prerelease=...).
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

var (
	// Version is the release, without a leading v.
	Version = "0.1.0"
	// Prerelease is "dev" for local builds and empty for releases.
	Prerelease = "dev"
	// Metadata is build metadata, such as a commit.
	Metadata = ""
)

// PluginVersion is what Packer reads from `describe`.
var PluginVersion = version.NewPluginVersion(Version, Prerelease, Metadata)

// String is the human-readable version.
func String() string { return PluginVersion.String() }
