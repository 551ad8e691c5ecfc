package report

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// sarifSchemaFile is the SARIF 2.1.0 JSON schema (draft-04), release
// 2.1.0-rtm.5, vendored from the MIT-licensed npm package
// @microsoft/jest-sarif 1.0.0-beta.0 (lib/schemas/sarif-2.1.0-rtm.5.json).
const sarifSchemaFile = "testdata/sarif-schema-2.1.0-rtm.5.json"

// validateSARIF fails the test when log does not validate.
func validateSARIF(t *testing.T, log []byte) {
	t.Helper()
	if err := sarifSchemaErr(log); err != nil {
		t.Fatal(err)
	}
}

// sarifSchemaErr checks a log against the vendored schema.
func sarifSchemaErr(log []byte) error {
	schemaDoc, err := os.ReadFile(sarifSchemaFile)
	if err != nil {
		return err
	}
	sd, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaDoc))
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const url = "https://example.com/sarif-schema-2.1.0.json"
	if err := c.AddResource(url, sd); err != nil {
		return err
	}
	sch, err := c.Compile(url)
	if err != nil {
		return fmt.Errorf("compile SARIF schema: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(log))
	if err != nil {
		return fmt.Errorf("SARIF log is not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("SARIF log does not validate against the 2.1.0 schema:\n%w", err)
	}
	return nil
}

// TestSARIFSchemaCatchesErrors proves the validator is live: a log with a
// wrong version and an unknown level must fail.
func TestSARIFSchemaCatchesErrors(t *testing.T) {
	good := render(t, "sarif", sample())
	if err := sarifSchemaErr(good); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"version": {`"version": "2.1.0"`, `"version": "2.0.0"`},
		"level":   {`"level": "error"`, `"level": "fatal"`},
		"unknown": {`"ruleId":`, `"ruleNumber": 1, "ruleId":`},
	} {
		bad := bytes.Replace(good, []byte(edit[0]), []byte(edit[1]), 1)
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: edit did not apply", name)
		}
		if err := sarifSchemaErr(bad); err == nil {
			t.Errorf("%s: schema validation accepted a broken log", name)
		}
	}
}
