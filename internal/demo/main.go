// Command demo is `make demo`: the offline main job. For now it validates
// example.pkr.hcl through the built plugin, over the same plugin protocol
// Packer uses (magic cookie, handshake, the SDK's RPC client), and says so.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/esbake/packer-plugin-elasticsearch/internal/plugintest"
)

func main() {
	plugin := flag.String("plugin", "bin/packer-plugin-elasticsearch", "the built plugin binary")
	template := flag.String("template", "example.pkr.hcl", "the template to validate")
	flag.Parse()
	if err := run(*plugin, *template); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(name string, fn func() error) error {
	start := time.Now()
	fmt.Printf("==> %s\n", name)
	err := fn()
	fmt.Printf("    %s (%s)\n", map[bool]string{true: "ok", false: "FAILED"}[err == nil], time.Since(start).Round(time.Millisecond))
	return err
}

func run(bin, file string) error {
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	// A real build reads these from checksums.pkrvars.hcl; Prepare checks
	// only their form, so the demo passes placeholders and says so.
	vars := map[string]cty.Value{
		"elastichq_sha512":        cty.StringVal(strings.Repeat("0", 128)),
		"cloudwatch_agent_sha512": cty.StringVal(strings.Repeat("0", 128)),
	}
	fmt.Println("No Packer >= 1.10 can be installed offline here, so this drives the plugin binary")
	fmt.Println("directly over Packer's plugin protocol: the same handshake, RPC and HCL2 decoding.")
	fmt.Println("The two checksum variables get placeholder values (a real build takes them from -var-file).")
	tmpl, err := plugintest.ParseTemplate(file, src, vars)
	if err != nil {
		return err
	}
	check := func(kind, name string, body func() (hcl.Body, error)) error {
		return step(fmt.Sprintf("%s %q: ConfigSpec + Prepare through %s", kind, name, bin), func() error {
			client, stop, err := plugintest.StartPlugin(bin, kind, name)
			if err != nil {
				return err
			}
			defer stop()
			b, err := body()
			if err != nil {
				return err
			}
			if kind == "builder" {
				comp := client.Builder()
				val, diags := hcldec.Decode(b, hcldec.ObjectSpec(comp.ConfigSpec()), tmpl.Ctx)
				if diags.HasErrors() {
					return diags
				}
				_, warns, err := comp.Prepare(val, plugintest.PackerVars("elasticsearch-ami"))
				for _, w := range warns {
					fmt.Println("    warning:", w)
				}
				return err
			}
			comp := client.Provisioner()
			val, diags := hcldec.Decode(b, hcldec.ObjectSpec(comp.ConfigSpec()), tmpl.Ctx)
			if diags.HasErrors() {
				return diags
			}
			return comp.Prepare(val, plugintest.PackerVars("elasticsearch-ami"))
		})
	}
	if err := check("builder", "ami", func() (hcl.Body, error) { return tmpl.SourceBody("elasticsearch-ami", "node") }); err != nil {
		return err
	}
	if err := check("provisioner", "node", func() (hcl.Body, error) { return tmpl.ProvisionerBody("elasticsearch-node") }); err != nil {
		return err
	}
	fmt.Printf("%s is valid for elasticsearch-ami and elasticsearch-node.\n", file)
	fmt.Println("Not yet in this demo: the bake, the three-node cluster and the audit on the local test cloud.")
	return nil
}
