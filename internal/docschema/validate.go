package docschema

import (
	"bytes"
	"fmt"
	"os"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ValidateJSONSchema validates doc against the JSON Schema in schemaFile
// (formats asserted), for SARIF logs and esbake's own documents.
func ValidateJSONSchema(doc []byte, schemaFile string) error {
	schemaDoc, err := os.ReadFile(schemaFile)
	if err != nil {
		return err
	}
	sd, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaDoc))
	if err != nil {
		return fmt.Errorf("schema %s: %w", schemaFile, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	url := "https://example.com/" + schemaFile
	if err := c.AddResource(url, sd); err != nil {
		return err
	}
	sch, err := c.Compile(url)
	if err != nil {
		return fmt.Errorf("compile %s: %w", schemaFile, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("document is not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("document does not validate against %s:\n%w", schemaFile, err)
	}
	return nil
}
